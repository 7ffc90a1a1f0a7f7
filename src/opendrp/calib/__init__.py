"""Calibration products: master bias, dark and flat."""

from .combine import clipped_mean, combine_bias, combine_dark, combine_flat, find_flat_defects

__all__ = ["clipped_mean", "combine_bias", "combine_dark", "combine_flat", "find_flat_defects"]
