"""Synthetic post-ISR CCD images with a known truth (stars, galaxies, PSF, WCS, reference catalog).

For algorithm tests and benchmarks of single-frame processing; the survey simulator (`opendrp.sim`) makes
the realistic raw data.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning, Sip

from ..image import Exposure, mask_bit

__all__ = ["SyntheticField", "make_synthetic_field", "make_wcs", "moffat_psf_params", "render_moffat"]


def make_wcs(
    shape: tuple[int, int],
    *,
    ra: float = 150.0,
    dec: float = 2.0,
    pixel_scale_arcsec: float = 0.168,
    rotation_deg: float = 0.0,
    sip_strength: float = 2e-6,
) -> WCS:
    """A TAN-SIP WCS centred on the image: ``pixel_scale_arcsec``, north rotated by ``rotation_deg``, and a
    SIP distortion whose second/third-order terms move corners by ~``sip_strength * r**2`` pixels."""
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.crpix = [(nx - 1) / 2.0 + 1.0, (ny - 1) / 2.0 + 1.0]
    w.wcs.crval = [ra, dec]
    s = pixel_scale_arcsec / 3600.0
    c, sn = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    w.wcs.cd = s * np.array([[-c, sn], [sn, c]])
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[0, 2], a[1, 1] = sip_strength, -0.5 * sip_strength, 0.3 * sip_strength
    b[0, 2], b[2, 0], b[1, 1] = sip_strength, 0.4 * sip_strength, -0.2 * sip_strength
    a[3, 0], b[0, 3] = 1e-4 * sip_strength, -1e-4 * sip_strength
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w.wcs.set()
    return w


def moffat_psf_params(
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, int],
    *,
    fwhm: float = 3.6,
    fwhm_slope: float = 0.4,
    e_amp: float = 0.06,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A spatially varying PSF: FWHM (pixels) and ellipticity (e1, e2) as smooth functions of position."""
    ny, nx = shape
    u = 2 * np.asarray(x, float) / max(nx - 1, 1) - 1
    v = 2 * np.asarray(y, float) / max(ny - 1, 1) - 1
    f = fwhm * (1 + 0.5 * fwhm_slope * (0.5 * u + 0.3 * v + 0.4 * u * v))
    e1 = e_amp * (0.6 * u - 0.4 * v**2)
    e2 = e_amp * (0.5 * v + 0.3 * u * v)
    return f, e1, e2


def render_moffat(
    image: np.ndarray,
    x: float,
    y: float,
    flux: float,
    fwhm: float,
    e1: float,
    e2: float,
    *,
    beta: float = 3.5,
    half: int = 20,
    oversample: int = 3,
) -> None:
    """Add a pixel-integrated elliptical Moffat profile (total ``flux`` within the stamp) to ``image``."""
    ny, nx = image.shape
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    gx = (np.arange(ix - half, ix + half + 1)[:, None] + sub[None, :]).ravel() - x
    gy = (np.arange(iy - half, iy + half + 1)[:, None] + sub[None, :]).ravel() - y
    dx, dy = gx[None, :], gy[:, None]
    # shear the circular profile: r2 = q^T M^-1 q with M = s^2 [[1+e1, e2],[e2, 1-e1]]
    alpha = fwhm / (2.0 * np.sqrt(2 ** (1.0 / beta) - 1.0))
    det = 1 - e1 * e1 - e2 * e2
    r2 = ((1 - e1) * dx * dx - 2 * e2 * dx * dy + (1 + e1) * dy * dy) / det / alpha**2
    prof = (1.0 + r2) ** (-beta)
    n = 2 * half + 1
    prof = prof.reshape(n, oversample, n, oversample).sum(axis=(1, 3))
    prof *= flux / prof.sum()
    image[y0:y1, x0:x1] += prof[y0 - (iy - half) : y1 - (iy - half), x0 - (ix - half) : x1 - (ix - half)]


@dataclasses.dataclass
class SyntheticField:
    """A synthetic calexp-like exposure (not background-subtracted) with its truth."""

    exposure: Exposure  # electrons, sky included, initial (perturbed) WCS attached
    truth: Table  # x, y, flux (e-), ra, dec, is_star, fwhm, e1, e2
    refcat: Table  # coord_ra, coord_dec, {band}_flux, {band}_fluxErr (nJy), stars only
    true_wcs: WCS
    calibration: float  # nJy per electron
    sky: float  # electrons per pixel


def make_synthetic_field(
    shape: tuple[int, int] = (512, 512),
    *,
    n_stars: int = 150,
    n_galaxies: int = 50,
    band: str = "i",
    sky: float = 1000.0,
    read_noise: float = 4.5,
    noise: bool = True,
    flux_range: tuple[float, float] = (3e3, 5e5),
    calibration: float = 57.5,
    fwhm: float = 3.6,
    pointing_offset_arcsec: tuple[float, float] = (6.0, -8.0),
    rotation_error_deg: float = 0.1,
    n_saturated: int = 0,
    saturation: float = 150_000.0,
    refcat_extra: int = 30,
    n_cosmic_rays: int = 0,
    seed: int = 42,
) -> SyntheticField:
    """Render a field of Moffat stars and (broader, elliptical) galaxies with a spatially varying PSF.

    The exposure carries an initial WCS offset by ``pointing_offset_arcsec`` (east, north) and rotated by
    ``rotation_error_deg`` from the truth, as a telescope pointing would be.  The reference catalog holds the
    stars (exact positions, fluxes with 1% errors) plus ``refcat_extra`` stars outside the image.
    ``n_cosmic_rays`` tracks of 1-10 pixels (500-5000 e- per pixel) are added; their pixels are listed in
    ``truth.meta["cosmic_ray_pixels"]`` as ``(y, x)`` arrays.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    true_wcs = make_wcs(shape)
    n = n_stars + n_galaxies
    margin = 8
    xs = rng.uniform(margin, nx - 1 - margin, n)
    ys = rng.uniform(margin, ny - 1 - margin, n)
    lo, hi = np.log(flux_range[0]), np.log(flux_range[1])
    flux = np.exp(rng.uniform(lo, hi, n))
    is_star = np.arange(n) < n_stars
    f, e1, e2 = moffat_psf_params(xs, ys, shape, fwhm=fwhm)
    g_fwhm = np.where(is_star, f, f * rng.uniform(1.6, 2.5, n))
    g_e1 = np.where(is_star, e1, rng.uniform(-0.3, 0.3, n))
    g_e2 = np.where(is_star, e2, rng.uniform(-0.3, 0.3, n))
    if n_saturated:
        flux[:n_saturated] = saturation * 30.0
    image = np.zeros(shape, np.float64)
    for k in range(n):
        render_moffat(image, xs[k], ys[k], flux[k], g_fwhm[k], g_e1[k], g_e2[k])
    signal = image + sky
    variance = signal + read_noise**2
    if noise:
        signal = signal + rng.normal(0.0, 1.0, shape) * np.sqrt(variance)
    cr_y, cr_x = [], []
    for _ in range(n_cosmic_rays):
        length = int(rng.integers(1, 11))
        angle = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(0, nx - 1), rng.uniform(0, ny - 1)
        t = np.arange(length)
        xs_cr = np.clip(np.rint(x0 + t * np.cos(angle)).astype(int), 0, nx - 1)
        ys_cr = np.clip(np.rint(y0 + t * np.sin(angle)).astype(int), 0, ny - 1)
        signal[ys_cr, xs_cr] += rng.uniform(500, 5000)
        cr_y.append(ys_cr)
        cr_x.append(xs_cr)
    mask = np.zeros(shape, np.int32)
    sat = signal >= saturation
    signal[sat] = saturation
    mask[sat] |= mask_bit("SAT")
    ra, dec = true_wcs.all_pix2world(xs, ys, 0)
    truth = Table(
        {
            "x": xs,
            "y": ys,
            "flux": flux,
            "ra": ra,
            "dec": dec,
            "is_star": is_star,
            "fwhm": g_fwhm,
            "e1": g_e1,
            "e2": g_e2,
        }
    )
    if cr_y:
        truth.meta["cosmic_ray_pixels"] = (np.concatenate(cr_y), np.concatenate(cr_x))
    # reference catalog: the stars, plus stars beyond the image edges
    ex = rng.uniform(-300, nx + 300, refcat_extra * 4)
    ey = rng.uniform(-300, ny + 300, refcat_extra * 4)
    outside = (ex < 0) | (ex > nx) | (ey < 0) | (ey > ny)
    ex, ey = ex[outside][:refcat_extra], ey[outside][:refcat_extra]
    e_ra, e_dec = true_wcs.all_pix2world(ex, ey, 0)
    ref_flux = np.concatenate([flux[is_star], np.exp(rng.uniform(lo, hi, ex.size))]) * calibration
    ref_err = 0.01 * ref_flux
    refcat = Table(
        {
            "coord_ra": np.concatenate([ra[is_star], e_ra]),
            "coord_dec": np.concatenate([dec[is_star], e_dec]),
            f"{band}_flux": ref_flux * (1 + 0.01 * rng.normal(size=ref_flux.size)),
            f"{band}_fluxErr": ref_err,
        }
    )
    init = true_wcs.deepcopy()
    d_ra = pointing_offset_arcsec[0] / 3600.0 / np.cos(np.radians(init.wcs.crval[1]))
    init.wcs.crval = [init.wcs.crval[0] + d_ra, init.wcs.crval[1] + pointing_offset_arcsec[1] / 3600.0]
    c, s = np.cos(np.radians(rotation_error_deg)), np.sin(np.radians(rotation_error_deg))
    init.wcs.cd = np.array([[c, -s], [s, c]]) @ init.wcs.cd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        init.wcs.set()
    exposure = Exposure(
        signal.astype(np.float32),
        mask,
        variance.astype(np.float32),
        wcs=init,
        metadata={"EXPTIME": 30.0, "EXPID": 1234, "DET-ID": 5},
    )
    return SyntheticField(exposure, truth, refcat, true_wcs, calibration, sky)
