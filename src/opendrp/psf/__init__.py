"""PSF models and their fitting."""

from .model import PixelPsf, monomial_terms, shift_image

__all__ = ["PixelPsf", "monomial_terms", "shift_image"]
