"""Multi-band processing on coadds: merged detections, primary flags, the Object table."""

from .objects import (
    BAND_COLUMNS,
    make_object_id,
    make_object_table,
    merge_detections,
    primary_flags,
    reference_band,
)

__all__ = [
    "BAND_COLUMNS",
    "make_object_id",
    "make_object_table",
    "merge_detections",
    "primary_flags",
    "reference_band",
]
