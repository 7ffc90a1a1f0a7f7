"""Catalog matching and accuracy statistics: the plain functions on arrays that `opendrp.verify` builds its
checks from (matching one-to-one and to the nearest, completeness curves, photometric and astrometric
statistics, star/galaxy separation, single-visit source statistics, blind-insertion scores, footprints).

Every function takes matched arrays or tables (the caller selects the rows) and returns plain numbers or small
frozen dataclasses; statistics ignore non-finite values and an empty selection gives NaN, never an error.  The
report that used to be written here (``opendrp qa``) is part of ``opendrp verify`` now.
"""

from ._blind import blind_metrics
from ._footprint import OccupancyFootprint, PolygonFootprint
from ._match import match_catalogs, radec_to_unit_vectors
from ._sources import match_to_nearest, repeatability_mmag, source_metrics
from ._stats import flux_to_mag, robust_scatter, sky_offsets_mas
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

__all__ = [
    "AstrometryStats",
    "CompletenessCurve",
    "OccupancyFootprint",
    "PhotometryStats",
    "PolygonFootprint",
    "StarGalaxyStats",
    "astrometry_stats",
    "blind_metrics",
    "completeness_curve",
    "completeness_limit",
    "flux_to_mag",
    "magnitude_bins",
    "match_catalogs",
    "match_to_nearest",
    "photometry_stats",
    "radec_to_unit_vectors",
    "repeatability_mmag",
    "robust_scatter",
    "sky_offsets_mas",
    "source_metrics",
    "star_galaxy_stats",
]
