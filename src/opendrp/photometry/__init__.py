"""Photometric calibration: zero point against a reference catalog, with colour terms."""

from .colour_terms import ColourTerm, reference_colour
from .zero_point import ZeroPointResult, fit_zero_point

__all__ = ["ColourTerm", "ZeroPointResult", "fit_zero_point", "reference_colour"]
