"""Single-frame processing: characterization and calibration of a post-ISR exposure."""

from .calibrate import FLUX_COLUMNS, CalibrateConfig, CalibrateResult, calibrate_exposure, source_id_base
from .star_selection import select_psf_stars, stellar_size_locus

__all__ = [
    "FLUX_COLUMNS",
    "CalibrateConfig",
    "CalibrateResult",
    "calibrate_exposure",
    "select_psf_stars",
    "source_id_base",
    "stellar_size_locus",
]
