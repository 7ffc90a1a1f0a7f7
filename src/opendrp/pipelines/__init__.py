"""Pipeline definitions (``DRP.yaml``)."""
