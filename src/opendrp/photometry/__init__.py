"""Photometric calibration: zero point against a reference catalog."""

from .zero_point import ZeroPointResult, fit_zero_point

__all__ = ["ZeroPointResult", "fit_zero_point"]
