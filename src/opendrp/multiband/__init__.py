"""Multi-band processing on coadds: merged detections, primary flags, the Object table."""

from .centroids import CENTROID_METHODS, coadd_centroids
from .objects import (
    BAND_COLUMNS,
    coadd_apcorr_stars,
    make_object_id,
    make_object_table,
    merge_detections,
    primary_flags,
    reference_band,
)

__all__ = [
    "BAND_COLUMNS",
    "CENTROID_METHODS",
    "coadd_apcorr_stars",
    "coadd_centroids",
    "make_object_id",
    "make_object_table",
    "merge_detections",
    "primary_flags",
    "reference_band",
]
