"""openDRP: a Data Release Production system for wide-field imaging surveys."""

__all__ = ["__version__"]

__version__ = "0.1.0"
