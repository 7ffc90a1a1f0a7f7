"""Calibration products: master bias, dark and flat, and defects."""

from .checks import check_bias, check_flat
from .combine import clipped_mean, combine_bias, combine_dark, combine_flat, find_flat_defects
from .defects import defects_from_calibs, defects_to_mask, find_dark_defects, mask_to_defects

__all__ = [
    "check_bias",
    "check_flat",
    "clipped_mean",
    "combine_bias",
    "combine_dark",
    "combine_flat",
    "defects_from_calibs",
    "defects_to_mask",
    "find_dark_defects",
    "find_flat_defects",
    "mask_to_defects",
]
