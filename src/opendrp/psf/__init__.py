"""PSF models and their fitting."""

from .coadd_psf import CoaddPsf, pad_kernel, psf_from_hdul
from .model import PixelPsf, PsfModel, monomial_terms, shift_image

__all__ = ["CoaddPsf", "PixelPsf", "PsfModel", "monomial_terms", "pad_kernel", "psf_from_hdul", "shift_image"]
