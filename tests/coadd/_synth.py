"""Synthetic calexps with Gaussian stars at known sky positions, for the warp and coadd tests."""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.wcs import WCS, Sip

from opendrp.image.exposure import Exposure
from opendrp.image.photo_calib import PhotoCalib
from opendrp.psf import PixelPsf

PIXEL_SCALE_DEG = 0.168 / 3600.0
RA0, DEC0 = 150.0, 2.0


def target_wcs(shape: tuple[int, int] = (200, 200)) -> WCS:
    """A TAN patch WCS (no SIP, north up, east left), centred on (RA0, DEC0)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA0, DEC0]
    wcs.wcs.crpix = [shape[1] / 2.0 + 0.5, shape[0] / 2.0 + 0.5]
    wcs.wcs.cd = [[-PIXEL_SCALE_DEG, 0.0], [0.0, PIXEL_SCALE_DEG]]
    wcs.wcs.set()
    return wcs


def source_wcs(
    *,
    shape: tuple[int, int],
    rotation_deg: float,
    scale: float = 1.03,
    offset_pix: tuple[float, float] = (0.0, 0.0),
    sip: bool = True,
    flip: bool = False,
) -> WCS:
    """A rotated, rescaled TAN(-SIP) WCS centred ``offset_pix`` (target pixels) from (RA0, DEC0)."""
    ny, nx = shape
    t = np.radians(rotation_deg)
    s = PIXEL_SCALE_DEG * scale
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    cd = s * rot @ np.diag([-1.0 if not flip else 1.0, 1.0])
    wcs = WCS(naxis=2)
    wcs.wcs.crval = [
        RA0 - offset_pix[0] * PIXEL_SCALE_DEG / np.cos(np.radians(DEC0)),
        DEC0 + offset_pix[1] * PIXEL_SCALE_DEG,
    ]
    wcs.wcs.crpix = [nx / 2.0 + 0.5, ny / 2.0 + 0.5]
    wcs.wcs.cd = cd
    if sip:
        a = np.zeros((4, 4))
        b = np.zeros((4, 4))
        a[2, 0], a[1, 1], a[0, 2], a[3, 0] = 4e-6, -3e-6, 2e-6, 2e-8
        b[2, 0], b[1, 1], b[0, 2], b[0, 3] = -2e-6, 3e-6, 4e-6, -2e-8
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    else:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.set()
    return wcs


def gaussian_kernel(sigma_x: float, sigma_y: float, theta_deg: float, size: int = 31) -> np.ndarray:
    half = size // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    return normalized_gaussian(xx, yy, sigma_x, sigma_y, theta_deg)


def covariance(sigma_x: float, sigma_y: float, theta_deg: float) -> np.ndarray:
    t = np.radians(theta_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T


def normalized_gaussian(dx: np.ndarray, dy: np.ndarray, sx: float, sy: float, theta_deg: float) -> np.ndarray:
    cinv = np.linalg.inv(covariance(sx, sy, theta_deg))
    q = cinv[0, 0] * dx * dx + 2 * cinv[0, 1] * dx * dy + cinv[1, 1] * dy * dy
    return np.exp(-0.5 * q) / (2 * np.pi * sx * sy)


@dataclasses.dataclass
class Star:
    ra: float
    dec: float
    flux_counts: float
    x: float  # source pixels
    y: float
    inside: bool  # the whole star (+-15 px) is on the image


@dataclasses.dataclass
class SynthCalexp:
    exposure: Exposure
    stars: list[Star]
    psf_shape: tuple[float, float, float]


def star_field(
    tgt: WCS, shape: tuple[int, int], n_side: int = 4, margin: int = 30
) -> list[tuple[float, float]]:
    """Sky positions on a regular grid of target pixels (with sub-pixel offsets)."""
    ny, nx = shape
    us = np.linspace(margin, nx - 1 - margin, n_side) + 0.37
    vs = np.linspace(margin, ny - 1 - margin, n_side) + 0.21
    uu, vv = np.meshgrid(us, vs)
    ra, dec = tgt.all_pix2world(uu.ravel(), vv.ravel(), 0)
    return list(zip(ra.tolist(), dec.tolist()))


def make_calexp(
    wcs: WCS,
    shape: tuple[int, int],
    positions: list[tuple[float, float]],
    *,
    flux_counts: float = 20000.0,
    psf_shape: tuple[float, float, float] = (1.8, 1.4, 30.0),
    noise_sigma: float = 0.0,
    calibration: float = 0.5,
    seed: int = 0,
    visit: int = 1,
) -> SynthCalexp:
    """Stars (elliptical Gaussians, ``psf_shape = (sigma_x, sigma_y, theta)`` in source pixels) plus noise."""
    ny, nx = shape
    image = np.zeros(shape, np.float64)
    stars = []
    xs, ys = wcs.all_world2pix(np.array([p[0] for p in positions]), np.array([p[1] for p in positions]), 0)
    for (ra, dec), x, y in zip(positions, xs, ys):
        if not (-15 <= x <= nx + 14 and -15 <= y <= ny + 14):
            continue
        x0, y0 = int(round(x)), int(round(y))
        sl = (slice(max(y0 - 15, 0), min(y0 + 16, ny)), slice(max(x0 - 15, 0), min(x0 + 16, nx)))
        yy, xx = np.mgrid[sl]
        image[sl] += flux_counts * normalized_gaussian(xx - x, yy - y, *psf_shape)
        stars.append(Star(ra, dec, flux_counts, x, y, 15 <= x <= nx - 16 and 15 <= y <= ny - 16))
    rng = np.random.default_rng(seed)
    variance = np.full(shape, max(noise_sigma**2, 1e-6), np.float32)
    if noise_sigma > 0:
        image += rng.normal(0.0, noise_sigma, shape)
    psf = PixelPsf(gaussian_kernel(*psf_shape), degree=0, x_range=(0, nx - 1), y_range=(0, ny - 1))
    exposure = Exposure(
        image.astype(np.float32),
        np.zeros(shape, np.int32),
        variance,
        wcs=wcs,
        psf=psf,
        photo_calib=PhotoCalib(calibration),
        metadata={"visit": visit, "detector": 0, "band": "r", "exposure_time": 30.0, "GAIN": 1.0},
    )
    return SynthCalexp(exposure, stars, psf_shape)


def centroid_flux_moments(
    image: np.ndarray, u: float, v: float, radius: float = 10.0
) -> tuple[float, float, float, np.ndarray]:
    """Unweighted centroid, flux and second-moment matrix inside a circular aperture."""
    iu, iv = int(round(u)), int(round(v))
    r = int(np.ceil(radius)) + 1
    sl = (slice(iv - r, iv + r + 1), slice(iu - r, iu + r + 1))
    yy, xx = np.mgrid[sl].astype(float)
    inside = (xx - u) ** 2 + (yy - v) ** 2 <= radius**2
    img = np.where(inside, image[sl], 0.0).astype(np.float64)
    flux = img.sum()
    cx, cy = (img * xx).sum() / flux, (img * yy).sum() / flux
    dx, dy = xx - cx, yy - cy
    m = np.array(
        [[(img * dx * dx).sum(), (img * dx * dy).sum()], [(img * dx * dy).sum(), (img * dy * dy).sum()]]
    )
    return cx, cy, flux, m / flux
