"""The simulated PSF: a sheared Moffat profile whose FWHM and ellipticity vary over the focal plane.

The FWHM grows as ``(1 + fwhm_radial_variation * rho**2)`` with ``rho`` the focal-plane radius in units of
the field radius; the ellipticity is a visit-wide constant plus a tangential pattern ``ellipticity_radial *
rho**2``.  Ellipticities are distortions ``(a^2-b^2)/(a^2+b^2)`` (GalSim's ``e1, e2``) in the pixel frame.

Stars are drawn with `moffat_stamp` (numpy, integrated over pixels by sub-sampling); galaxies are convolved
with the equivalent `galsim.Moffat` (see `opendrp.sim.render`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "VisitPsf",
    "add_stamp",
    "local_psf",
    "moffat_alpha",
    "moffat_stamp",
    "moffat_stamp_radius",
    "shear_matrix",
]


@dataclasses.dataclass(frozen=True)
class VisitPsf:
    """PSF parameters of one visit.

    Attributes
    ----------
    fwhm_arcsec : `float`
        FWHM at the optical axis (arcsec).
    beta : `float`
        Moffat beta.
    e1, e2 : `float`
        Visit-wide ellipticity (focal-plane frame).
    fwhm_radial_variation : `float`
        Fractional FWHM increase at ``field_radius_mm``.
    ellipticity_radial : `float`
        Tangential ellipticity at ``field_radius_mm``.
    field_radius_mm : `float`
        Scale radius of the variations (mm on the focal plane).
    """

    fwhm_arcsec: float
    beta: float
    e1: float
    e2: float
    fwhm_radial_variation: float
    ellipticity_radial: float
    field_radius_mm: float


def local_psf(
    psf: VisitPsf, fx: np.ndarray, fy: np.ndarray, *, pixel_scale: float, detector_rotation_deg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSF FWHM (pixels) and ellipticity (pixel frame) at focal-plane positions.

    Parameters
    ----------
    psf : `VisitPsf`
        The visit's PSF parameters.
    fx, fy : `numpy.ndarray`
        Focal-plane positions (mm).
    pixel_scale : `float`
        Nominal pixel scale (arcsec/pixel).
    detector_rotation_deg : `float`
        Rotation of the detector's pixel grid on the focal plane (deg).

    Returns
    -------
    fwhm, e1, e2 : `numpy.ndarray`
        FWHM in pixels and ellipticity components in the detector's pixel frame.
    """
    fx = np.asarray(fx, float)
    fy = np.asarray(fy, float)
    rho2 = (fx * fx + fy * fy) / psf.field_radius_mm**2
    fwhm = psf.fwhm_arcsec / pixel_scale * (1.0 + psf.fwhm_radial_variation * rho2)
    # tangential pattern: elongated perpendicular to the radius vector
    phi = np.arctan2(fy, fx)
    e1 = psf.e1 - psf.ellipticity_radial * rho2 * np.cos(2.0 * phi)
    e2 = psf.e2 - psf.ellipticity_radial * rho2 * np.sin(2.0 * phi)
    # rotate the spin-2 quantity into the pixel frame
    t = np.radians(2.0 * detector_rotation_deg)
    c, s = np.cos(t), np.sin(t)
    return fwhm, c * e1 + s * e2, -s * e1 + c * e2


def shear_matrix(e1: float, e2: float) -> np.ndarray:
    """The area-preserving matrix of a GalSim shear given as a distortion ``(e1, e2)``.

    A profile ``f`` sheared by ``S`` is ``f(S^-1 x)``;
    ``S`` equals ``galsim.Shear(e1=e1, e2=e2).getMatrix()``.
    """
    e = float(np.hypot(e1, e2))
    if e >= 1.0:
        raise ValueError(f"ellipticity {e} >= 1")
    if e == 0.0:
        return np.eye(2)
    g = e / (1.0 + np.sqrt(1.0 - e * e))
    g1, g2 = g * e1 / e, g * e2 / e
    return np.array([[1.0 + g1, g2], [g2, 1.0 - g1]]) / np.sqrt(1.0 - g * g)


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat scale radius ``alpha`` (same unit as ``fwhm``): ``I ~ (1 + (r/alpha)^2)^-beta``."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_stamp_radius(
    flux: float, fwhm: float, beta: float, *, lost_flux: float = 3.0, max_radius: int = 256
) -> int:
    """Stamp half-size (pixels) such that less than ``min(lost_flux, 1e-3 * flux)`` falls outside.

    The flux of a Moffat profile outside radius ``R`` is ``flux * (1 + (R/alpha)^2)^(1 - beta)``.
    """
    alpha = moffat_alpha(fwhm, beta)
    eps = min(1e-3, lost_flux / max(flux, 1e-12))
    radius = alpha * np.sqrt(eps ** (1.0 / (1.0 - beta)) - 1.0)
    return int(np.clip(np.ceil(radius), np.ceil(2.0 * fwhm), max_radius))


def _inverse_shear_matrix(e1: float, e2: float) -> np.ndarray:
    """Inverse of `shear_matrix` (analytic; the matrix has unit determinant)."""
    m = shear_matrix(e1, e2)
    return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]])


def _moffat_grid(
    dx: np.ndarray, dy: np.ndarray, inv: np.ndarray, alpha: float, beta: float, norm: float
) -> np.ndarray:
    """Moffat surface brightness on the grid ``dy[:, None], dx[None, :]`` (offsets from the centre)."""
    u = inv[0, 0] * dx[None, :] + inv[0, 1] * dy[:, None]
    v = inv[1, 0] * dx[None, :] + inv[1, 1] * dy[:, None]
    r2 = u * u
    r2 += v * v
    r2 *= 1.0 / (alpha * alpha)
    r2 += 1.0
    return norm * r2 ** (-beta)


def moffat_stamp(
    flux: float,
    x: float,
    y: float,
    *,
    fwhm: float,
    beta: float,
    e1: float = 0.0,
    e2: float = 0.0,
    radius: int,
    oversampling: int = 3,
    core_fwhm: float = 1.5,
) -> tuple[np.ndarray, int, int]:
    """A pixel-integrated, sheared Moffat profile on a square stamp.

    Pixels within ``core_fwhm * fwhm`` of the centre are integrated by sub-sampling; the wings, where the
    profile is smooth on the pixel scale, are sampled at pixel centres (midpoint rule).

    Parameters
    ----------
    flux : `float`
        Total flux (electrons) of the untruncated profile.
    x, y : `float`
        Centre in image pixel coordinates (pixel centres at integers).
    fwhm : `float`
        FWHM (pixels) before shearing.
    beta : `float`
        Moffat beta (> 1).
    e1, e2 : `float`
        Shear as a distortion (GalSim convention).
    radius : `int`
        Stamp half-size: the stamp is ``2 * radius + 1`` pixels wide, centred on the nearest pixel.
    oversampling : `int`
        Sub-pixels per axis used to integrate over the core pixels.
    core_fwhm : `float`
        Half-size of the sub-sampled core, in units of the FWHM.

    Returns
    -------
    stamp : `numpy.ndarray`
        Electrons per pixel.
    x0, y0 : `int`
        Image coordinates of the stamp's pixel ``[0, 0]``.
    """
    ix, iy = int(np.rint(x)), int(np.rint(y))
    x0, y0 = ix - radius, iy - radius
    n = 2 * radius + 1
    inv = _inverse_shear_matrix(e1, e2)
    alpha = moffat_alpha(fwhm, beta)
    norm = flux * (beta - 1.0) / (np.pi * alpha * alpha)
    pix = np.arange(n, dtype=np.float64)
    stamp = _moffat_grid(pix + (x0 - x), pix + (y0 - y), inv, alpha, beta, norm)
    if oversampling > 1:
        core = min(radius, int(np.ceil(core_fwhm * fwhm)))
        c0, c1 = radius - core, radius + core + 1
        nc = c1 - c0
        sub = (np.arange(oversampling) + 0.5) / oversampling - 0.5
        grid = (np.arange(nc)[:, None] + sub[None, :]).ravel()
        fine = _moffat_grid(grid + (x0 + c0 - x), grid + (y0 + c0 - y), inv, alpha, beta, norm)
        stamp[c0:c1, c0:c1] = fine.reshape(nc, oversampling, nc, oversampling).mean(axis=(1, 3))
    return stamp, x0, y0


def add_stamp(image: np.ndarray, stamp: np.ndarray, x0: int, y0: int) -> None:
    """Add a stamp whose pixel ``[0, 0]`` is at image ``(x0, y0)``, clipping at the image edges (in place)."""
    ny, nx = image.shape
    sy, sx = stamp.shape
    ax0, ay0 = max(x0, 0), max(y0, 0)
    ax1, ay1 = min(x0 + sx, nx), min(y0 + sy, ny)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    image[ay0:ay1, ax0:ax1] += stamp[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
