"""Quality assurance of data-release catalogs: match the Object table to the truth and a reference catalog,
compute completeness, photometric, astrometric and star/galaxy metrics, write metrics.json and an HTML page.

All metrics are plain functions on arrays (`opendrp.qa.metrics`); `run_qa` is the thin orchestration.
"""

from ._footprint import OccupancyFootprint
from ._match import match_catalogs
from ._stats import flux_to_mag, robust_scatter, sky_offsets_mas
from .config import QAConfig
from .metrics import (
    AstrometryStats,
    CompletenessCurve,
    PhotometryStats,
    StarGalaxyStats,
    astrometry_stats,
    completeness_curve,
    completeness_limit,
    magnitude_bins,
    photometry_stats,
    star_galaxy_stats,
)
from .report import METRICS_SCHEMA_VERSION, run_qa

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "AstrometryStats",
    "CompletenessCurve",
    "OccupancyFootprint",
    "PhotometryStats",
    "QAConfig",
    "StarGalaxyStats",
    "astrometry_stats",
    "completeness_curve",
    "completeness_limit",
    "flux_to_mag",
    "magnitude_bins",
    "match_catalogs",
    "photometry_stats",
    "robust_scatter",
    "run_qa",
    "sky_offsets_mas",
    "star_galaxy_stats",
]
