"""Light paths beyond the PSF: optical ghosts of bright stars and transparency varying across the field.

Ghosts: a bright star's light reflected between the filter, the corrector lenses and the dewar window
reaches the focal plane out of focus, as a doughnut (the pupil with its central obscuration) near the
star, displaced radially: centre = star focal-plane position times ``1 + optics.ghost_radial_shift``.

Clouds: each visit has an extinction gradient across the field (``ExposurePlan.cloud_gradient``, mag/deg,
zero at the optical axis) on top of its grey extinction ``transparency_mag``; it dims sky and sources.
"""

from __future__ import annotations

import numpy as np

from ..instrument import Camera
from ..instrument.geometry import sky_to_pixel
from .artifacts import add_ghost
from .catalog import TruthCatalog
from .config import OpticsConfig
from .survey import ExposurePlan

__all__ = ["cloud_factor", "draw_ghosts"]


def cloud_factor(camera: Camera, detector: int, exposure: ExposurePlan) -> np.ndarray | None:
    """Transmission ``(ny, nx)`` of the extinction gradient of a visit on a CCD, or `None` if none.

    ``10**(-0.4 * (gx * fx + gy * fy) / mm_per_deg)`` with ``(gx, gy)`` the visit's gradient (mag/deg)
    and ``(fx, fy)`` the pixel's focal-plane position (mm).
    """
    gx, gy = exposure.cloud_gradient
    if gx == 0.0 and gy == 0.0:
        return None
    det = camera.detector(detector)
    mm_per_deg = 3600.0 / camera.plate_scale_arcsec_per_mm
    xs = np.arange(det.nx, dtype=np.float64)
    ys = np.arange(det.ny, dtype=np.float64)
    fx0, fy0 = det.pixel_to_focal_plane(np.array([0.0]), np.array([0.0]), camera.pixel_size_mm)
    fxx, fyx = det.pixel_to_focal_plane(np.array([1.0]), np.array([0.0]), camera.pixel_size_mm)
    fxy, fyy = det.pixel_to_focal_plane(np.array([0.0]), np.array([1.0]), camera.pixel_size_mm)
    # the focal-plane position is affine in (x, y): the transmission is separable, an outer product
    row = (gx * fx0[0] + gy * fy0[0] + (gx * (fxx[0] - fx0[0]) + gy * (fyx[0] - fy0[0])) * xs) / mm_per_deg
    col = (gx * (fxy[0] - fx0[0]) + gy * (fyy[0] - fy0[0])) * ys / mm_per_deg
    return np.outer((10.0 ** (-0.4 * col)).astype(np.float32), (10.0 ** (-0.4 * row)).astype(np.float32))


def draw_ghosts(
    image: np.ndarray,
    camera: Camera,
    detector: int,
    exposure: ExposurePlan,
    truth: TruthCatalog,
    optics: OpticsConfig,
) -> list[tuple[int, float, float, float, float]]:
    """Add the ghosts of the exposure's bright stars that fall on a CCD (in place).

    Parameters
    ----------
    image : `numpy.ndarray`
        Expected electrons of the CCD ``(ny, nx)`` before the flat response.
    camera, detector, exposure, truth, optics
        The geometry, the visit (pointing, zero point, exposure time), the sources and the ghost model.

    Returns
    -------
    ghosts : `list` [`tuple`]
        ``(source_id, x, y, radius, electrons)`` of every ghost touching the CCD: centre and outer radius
        (pixels) and total charge of the whole doughnut (electrons).
    """
    if optics.ghost_mag_max <= 0.0 or exposure.psf is None:
        return []
    mags = truth.mags[exposure.band]
    bright = np.flatnonzero(truth.is_star & (mags < optics.ghost_mag_max))
    if bright.size == 0:
        return []
    det = camera.detector(detector)
    x, y = sky_to_pixel(camera, detector, truth.ra[bright], truth.dec[bright], exposure.pointing)
    fx, fy = det.pixel_to_focal_plane(x, y, camera.pixel_size_mm)
    gx, gy = det.focal_plane_to_pixel(
        fx * (1.0 + optics.ghost_radial_shift), fy * (1.0 + optics.ghost_radial_shift), camera.pixel_size_mm
    )
    radius = optics.ghost_radius_arcsec / camera.pixel_scale_arcsec
    out = []
    for k, sid in enumerate(bright):
        if gx[k] < -radius or gx[k] > det.nx + radius or gy[k] < -radius or gy[k] > det.ny + radius:
            continue
        electrons = (
            optics.ghost_flux_fraction
            * 10.0 ** (-0.4 * (mags[sid] - exposure.zero_point))
            * exposure.exposure_time
        )
        add_ghost(
            image,
            float(gx[k]),
            float(gy[k]),
            electrons=electrons,
            radius_pixels=radius,
            inner_fraction=optics.ghost_inner_fraction,
        )
        out.append((int(truth.id[sid]), float(gx[k]), float(gy[k]), float(radius), float(electrons)))
    return out
