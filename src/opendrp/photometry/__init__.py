"""Photometric calibration: zero point against a reference catalog, with colour terms."""

from .colour_terms import COLOUR_TERM_LIBRARY, ColourTerm, library_colour_terms, reference_colour
from .zero_point import ZeroPointResult, fit_zero_point

__all__ = [
    "COLOUR_TERM_LIBRARY",
    "ColourTerm",
    "ZeroPointResult",
    "fit_zero_point",
    "library_colour_terms",
    "reference_colour",
]
