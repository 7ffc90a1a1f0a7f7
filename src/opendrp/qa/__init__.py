"""Quality assurance of data-release catalogs: match the Object table to the truth and a reference catalog,
compute completeness, photometric, astrometric and star/galaxy metrics, write metrics.json and an HTML page.

All metrics are plain functions on arrays (`opendrp.qa.metrics`); `run_qa` is the thin orchestration.

metrics.json (schema_version 1). Every number is ``{"value": v, "unit": u}`` (u in count, fraction, sigma,
mag, mmag, mas, arcsec, deg2, "" for pure numbers; NaN is written as null):

- ``schema_version``, ``opendrp_version``, ``created``, ``inputs`` {object_table, truth, refcat, sources},
  ``config`` (`QAConfig` fields), ``bands``.
- ``summary``: n_objects, n_primary, n_truth, n_truth_in_footprint, n_matched, matched_fraction (of primary
  objects), truth_matched_fraction (of truth in the footprint), footprint_area, match_radius.
- ``completeness[band]``: mag_bin_edges, and for ``star``/``galaxy``/``all``: n_truth, n_matched,
  completeness (lists per bin), mag_50, mag_90.
- ``photometry[band]`` (true stars, S/N > snr_min): n, snr_min, offset_median, offset_scatter,
  normalized_median, normalized_scatter, mag_offset_median.
- ``astrometry[band]`` (same stars): n, snr_min, dra_median, ddec_median, dra_scatter, ddec_scatter,
  coord_scatter.
- ``star_galaxy`` (or null): snr_min, n_star, n_galaxy, star_fraction_correct, galaxy_fraction_correct.
- ``refcat`` (or null): n_refcat, n_matched, bands, selection, photometry[band], astrometry[band].
- ``sources`` (or null): per band n_sources, n_matched, photometry, astrometry, repeatability.
- ``checks``: list of {name, band, metric, value, threshold, unit, comparison, status (pass/fail/no data),
  passed}; ``ok``: all checks passed; ``figures``: name -> PNG file beside metrics.json.
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
