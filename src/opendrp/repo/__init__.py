"""The data repository: our adapter over the Rubin Gen3 Butler, formatters, and raw ingest."""

from .butler import (
    calib_collection,
    create_repo,
    defaults_chain,
    get_camera,
    get_instrument_name,
    get_skymap,
    ingest_refcat,
    open_butler,
    raw_run,
)
from .ingest import IngestReport, ingest_raws

__all__ = [
    "IngestReport",
    "calib_collection",
    "create_repo",
    "defaults_chain",
    "get_camera",
    "get_instrument_name",
    "get_skymap",
    "ingest_raws",
    "ingest_refcat",
    "open_butler",
    "raw_run",
]
