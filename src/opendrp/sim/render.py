"""Draw the sources of one science exposure on one CCD (expected electrons, before flat and noise).

Sources are placed with the exact camera geometry (`opendrp.instrument.geometry.sky_to_pixel`), so the truth
catalogue is the sky position.  Stars are numpy Moffat stamps; galaxies are GalSim profiles defined on the
sky (arcsec, east/north axes), mapped to pixels with the local Jacobian of the geometry and convolved with
the local PSF, drawn by FFT on small stamps.  Sources near the CCD edges are drawn partially.
"""

from __future__ import annotations

import dataclasses

import galsim
import numpy as np

from ..instrument import Camera
from ..instrument.geometry import sky_to_pixel
from .catalog import TruthCatalog
from .config import GalaxyConfig
from .psf import add_stamp, local_psf, moffat_stamp, moffat_stamp_radius
from .survey import ExposurePlan

__all__ = ["RenderStats", "render_sources"]

#: Sources whose centre falls within this many pixels outside a CCD are still drawn.
EDGE_MARGIN_PIXELS = 120

_GSPARAMS = galsim.GSParams(folding_threshold=5e-3, maxk_threshold=1e-3, maximum_fft_size=8192)


@dataclasses.dataclass
class RenderStats:
    """What was drawn on a CCD."""

    n_stars: int = 0
    n_galaxies: int = 0


def _local_jacobian(
    camera: Camera, detector: int, exposure: ExposurePlan, ra: np.ndarray, dec: np.ndarray
) -> np.ndarray:
    """d(pixel x, y) / d(east, north) in pixels per arcsec at each position; shape ``(n, 2, 2)``."""
    step = 1.0 / 3600.0  # 1 arcsec
    cosd = np.cos(np.radians(dec))
    x0, y0 = sky_to_pixel(camera, detector, ra, dec, exposure.pointing)
    xe, ye = sky_to_pixel(camera, detector, ra + step / cosd, dec, exposure.pointing)
    xn, yn = sky_to_pixel(camera, detector, ra, dec + step, exposure.pointing)
    jac = np.empty((len(ra), 2, 2))
    jac[:, 0, 0] = xe - x0
    jac[:, 0, 1] = xn - x0
    jac[:, 1, 0] = ye - y0
    jac[:, 1, 1] = yn - y0
    return jac


def _galaxy_profile(
    flux: float, disk_hlr: float, bulge_hlr: float, bulge_fraction: float, e1: float, e2: float
) -> galsim.GSObject:
    """A bulge + disk galaxy on the sky (arcsec, axes east and north), total flux ``flux``."""
    disk = galsim.Exponential(half_light_radius=disk_hlr, gsparams=_GSPARAMS)
    if bulge_fraction > 0.0:
        bulge = galsim.DeVaucouleurs(half_light_radius=bulge_hlr, trunc=8.0 * bulge_hlr, gsparams=_GSPARAMS)
        gal = galsim.Add([disk * (1.0 - bulge_fraction), bulge * bulge_fraction])
    else:
        gal = disk
    return gal.shear(e1=e1, e2=e2).withFlux(flux)


def _galaxy_stamp_size(hlr_pix: float, fwhm_pix: float, max_size: int) -> int:
    half = int(np.ceil(6.0 * hlr_pix + 3.0 * fwhm_pix)) + 2
    return int(min(2 * half + 1, max_size if max_size % 2 else max_size - 1))


def render_sources(
    camera: Camera,
    detector: int,
    exposure: ExposurePlan,
    truth: TruthCatalog,
    *,
    oversampling: int,
    galaxy_config: GalaxyConfig,
    flux_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, RenderStats]:
    """Expected source electrons on one CCD for one science exposure.

    Parameters
    ----------
    camera : `Camera`
        The simulated camera.
    detector : `int`
        Detector id.
    exposure : `ExposurePlan`
        A science exposure (pointing, PSF, zero point, exposure time).
    truth : `TruthCatalog`
        The simulated sources.
    oversampling : `int`
        Sub-pixels per axis for the star profiles.
    galaxy_config : `GalaxyConfig`
        For the largest galaxy stamp.
    flux_scale : `numpy.ndarray`, optional
        Multiplier of each source's flux in this exposure (variable sources); sources scaled to 0 are skipped.

    Returns
    -------
    image : `numpy.ndarray`
        ``(ny, nx)`` float64 electrons, assembled frame.
    stats : `RenderStats`
    """
    det = camera.detector(detector)
    psf = exposure.psf
    assert psf is not None
    image = np.zeros((det.ny, det.nx), np.float64)
    stats = RenderStats()
    x, y = sky_to_pixel(camera, detector, truth.ra, truth.dec, exposure.pointing)
    m = EDGE_MARGIN_PIXELS
    on = (x > -0.5 - m) & (x < det.nx - 0.5 + m) & (y > -0.5 - m) & (y < det.ny - 0.5 + m)
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return image, stats
    x, y = x[idx], y[idx]
    mags = truth.mags[exposure.band][idx]
    electrons = 10.0 ** (-0.4 * (mags - exposure.zero_point)) * exposure.exposure_time
    if flux_scale is not None:
        electrons = electrons * flux_scale[idx]
    fx, fy = det.pixel_to_focal_plane(x, y, camera.pixel_size_mm)
    fwhm, pe1, pe2 = local_psf(
        psf, fx, fy, pixel_scale=camera.pixel_scale_arcsec, detector_rotation_deg=det.rotation_deg
    )
    is_star = truth.is_star[idx]
    # ---- stars: numpy Moffat stamps
    for k in np.flatnonzero(is_star & (electrons > 0.0)):
        radius = moffat_stamp_radius(electrons[k], fwhm[k], psf.beta)
        if (
            x[k] < -0.5 - radius
            or x[k] > det.nx - 0.5 + radius
            or y[k] < -0.5 - radius
            or y[k] > det.ny - 0.5 + radius
        ):
            continue
        stamp, x0, y0 = moffat_stamp(
            electrons[k],
            x[k],
            y[k],
            fwhm=fwhm[k],
            beta=psf.beta,
            e1=pe1[k],
            e2=pe2[k],
            radius=radius,
            oversampling=oversampling,
        )
        add_stamp(image, stamp, x0, y0)
        stats.n_stars += 1
    # ---- galaxies: GalSim, FFT-convolved with the local PSF
    gal = np.flatnonzero(~is_star)
    if gal.size:
        jac = _local_jacobian(camera, detector, exposure, truth.ra[idx[gal]], truth.dec[idx[gal]])
        scale = np.sqrt(np.abs(np.linalg.det(jac)))  # pixels per arcsec
        inv_jac = np.linalg.inv(jac)  # arcsec per pixel
        for j, k in enumerate(gal):
            gi = idx[k]
            hlr_pix = float(truth.disk_hlr[gi] * scale[j])
            size = _galaxy_stamp_size(hlr_pix, fwhm[k], galaxy_config.max_stamp_pixels)
            half = size // 2
            ix, iy = int(np.rint(x[k])), int(np.rint(y[k]))
            if ix + half < 0 or ix - half >= det.nx or iy + half < 0 or iy - half >= det.ny:
                continue
            profile = _galaxy_profile(
                float(electrons[k]),
                float(truth.disk_hlr[gi]),
                float(truth.bulge_hlr[gi]),
                float(truth.bulge_fraction[gi]),
                float(truth.e1[gi]),
                float(truth.e2[gi]),
            )
            # world (east, north arcsec) -> pixel: the inverse Jacobian maps pixels to arcsec
            inv = inv_jac[j]
            wcs = galsim.JacobianWCS(inv[0, 0], inv[0, 1], inv[1, 0], inv[1, 1])
            psf_obj = galsim.Moffat(beta=psf.beta, fwhm=float(fwhm[k]), gsparams=_GSPARAMS).shear(
                e1=float(pe1[k]), e2=float(pe2[k])
            )
            final = galsim.Convolve([wcs.toImage(profile), psf_obj], gsparams=_GSPARAMS)
            bounds = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half)
            stamp = galsim.ImageD(bounds, scale=1.0)
            final.drawImage(image=stamp, center=galsim.PositionD(float(x[k]), float(y[k])), method="auto")
            add_stamp(image, stamp.array, ix - half, iy - half)
            stats.n_galaxies += 1
    return image, stats
