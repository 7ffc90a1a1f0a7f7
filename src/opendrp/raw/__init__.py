"""The raw file format and its reader/writer."""

from .format import OBSERVATION_TYPES, RawHeader, RawImage, read_raw, read_raw_header, write_raw

__all__ = ["OBSERVATION_TYPES", "RawHeader", "RawImage", "read_raw", "read_raw_header", "write_raw"]
