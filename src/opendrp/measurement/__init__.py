"""Source measurement: centroids, shapes, PSF/aperture/Kron/Gaussian fluxes, flags (also forced)."""

from .measure import DEFAULT_APERTURE_RADII, aperture_column, measure_sources, psf_fwhm, psf_sigma
from .moments import AdaptiveMoments, adaptive_moments, moments_to_ellipse
from .psf_flux import PsfFluxResult, psf_flux, psf_stamps
from .stamps import gather_stamps, stamp_grid

__all__ = [
    "DEFAULT_APERTURE_RADII",
    "AdaptiveMoments",
    "PsfFluxResult",
    "adaptive_moments",
    "aperture_column",
    "gather_stamps",
    "measure_sources",
    "moments_to_ellipse",
    "psf_flux",
    "psf_fwhm",
    "psf_sigma",
    "psf_stamps",
    "stamp_grid",
]
