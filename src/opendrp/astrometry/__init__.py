"""Astrometry: tangent-plane geometry, matching to reference catalogs, WCS fitting."""

from .fit_wcs import fit_tan_sip, wcs_residuals_mas
from .tangent import angular_separation, sky_to_tangent, tangent_to_sky, unit_vectors

__all__ = [
    "angular_separation",
    "fit_tan_sip",
    "sky_to_tangent",
    "tangent_to_sky",
    "unit_vectors",
    "wcs_residuals_mas",
]
