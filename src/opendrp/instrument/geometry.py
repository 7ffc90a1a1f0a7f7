"""Where a detector's pixels fall on the sky, from the camera geometry and a pointing.

The chain is: assembled pixel -> focal plane (mm, detector placement) -> tangent-plane offset about the
boresight (plate scale and radial distortion) -> rotation by the position angle ``rotation`` of the focal
plane's +y axis (degrees east of north; +x then points west at rotation 0, as on the sky seen from inside)
-> gnomonic deprojection about (ra, dec).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.wcs import WCS

from ..astrometry.fit_wcs import fit_tan_sip
from ..astrometry.tangent import sky_to_tangent, tangent_to_sky
from .camera import Camera

__all__ = ["Pointing", "detector_corners_sky", "detector_wcs", "pixel_to_sky", "sky_to_pixel"]


@dataclasses.dataclass(frozen=True)
class Pointing:
    """Boresight position (deg) and rotation (deg, position angle of the focal-plane +y axis)."""

    ra: float
    dec: float
    rotation: float = 0.0


def _rotate_to_sky(u: np.ndarray, v: np.ndarray, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    return -u * c + v * s, u * s + v * c


def _rotate_from_sky(xi: np.ndarray, eta: np.ndarray, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    return -xi * c + eta * s, xi * s + eta * c


def pixel_to_sky(
    camera: Camera, detector: int, x: np.ndarray, y: np.ndarray, pointing: Pointing
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) of 0-based assembled pixel positions on a detector."""
    det = camera.detector(detector)
    fx, fy = det.pixel_to_focal_plane(x, y, camera.pixel_size_mm)
    u, v = camera.focal_plane_to_sky_offset(fx, fy)
    xi, eta = _rotate_to_sky(u, v, pointing.rotation)
    return tangent_to_sky(xi / 3600.0, eta / 3600.0, pointing.ra, pointing.dec)


def sky_to_pixel(
    camera: Camera, detector: int, ra: np.ndarray, dec: np.ndarray, pointing: Pointing
) -> tuple[np.ndarray, np.ndarray]:
    """0-based assembled pixel positions of sky positions (deg) on a detector (may fall off the CCD)."""
    det = camera.detector(detector)
    xi, eta = sky_to_tangent(ra, dec, pointing.ra, pointing.dec)
    u, v = _rotate_from_sky(xi * 3600.0, eta * 3600.0, pointing.rotation)
    fx, fy = camera.sky_offset_to_focal_plane(u, v)
    px, py = det.focal_plane_to_pixel(fx, fy, camera.pixel_size_mm)
    return px, py


def detector_wcs(camera: Camera, detector: int, pointing: Pointing, *, order: int = 3, grid: int = 12) -> WCS:
    """A TAN-SIP WCS approximating `pixel_to_sky` on a detector (sub-mas for HSC-like distortion)."""
    det = camera.detector(detector)
    gx = np.linspace(-0.5, det.nx - 0.5, grid)
    gy = np.linspace(-0.5, det.ny - 0.5, grid)
    xx, yy = np.meshgrid(gx, gy)
    ra, dec = pixel_to_sky(camera, detector, xx.ravel(), yy.ravel(), pointing)
    return fit_tan_sip(
        xx.ravel(), yy.ravel(), ra, dec, order=order, crpix=((det.nx - 1) / 2.0, (det.ny - 1) / 2.0)
    )


def detector_corners_sky(
    camera: Camera, detector: int, pointing: Pointing, *, margin_pixels: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) of a detector's four outer corners, optionally grown by a margin."""
    det = camera.detector(detector)
    m = margin_pixels
    x = np.array([-0.5 - m, det.nx - 0.5 + m, det.nx - 0.5 + m, -0.5 - m])
    y = np.array([-0.5 - m, -0.5 - m, det.ny - 0.5 + m, det.ny - 0.5 + m])
    return pixel_to_sky(camera, detector, x, y, pointing)
