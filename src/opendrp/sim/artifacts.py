"""Detector and sky artefacts: dark current and hot pixels, bad columns, dust rings, cosmic rays, satellite
trails, optical ghosts.

All are off by default (their rates are zero in the presets' ``instrument`` and ``conditions`` sections);
each is a plain function on numpy arrays.
"""

from __future__ import annotations

import numpy as np

from ..astrometry.tangent import tangent_to_sky
from ..instrument import Camera, DetectorSpec
from ..instrument.geometry import Pointing, sky_to_pixel

__all__ = [
    "add_cosmic_rays",
    "add_ghost",
    "bad_column_response",
    "bad_column_segments",
    "dark_rate_map",
    "deposit_bilinear",
    "dust_ring_response",
    "dust_rings",
    "hot_pixels",
    "satellite_trail",
]

#: Mean charge a minimum-ionizing particle leaves in silicon (electrons per micron).
ELECTRONS_PER_MICRON = 80.0


def hot_pixels(
    shape: tuple[int, int], fraction: float, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hot pixels of a detector: flat indices into ``shape`` and extra dark current (electrons/s).

    Each hot pixel has ``rate`` times a log-uniform factor in [0.3, 3].
    """
    n_hot = int(rng.binomial(shape[0] * shape[1], fraction)) if fraction > 0 else 0
    if not n_hot:
        return np.zeros(0, np.int64), np.zeros(0)
    flat_idx = rng.choice(shape[0] * shape[1], n_hot, replace=False)
    return flat_idx.astype(np.int64), rate * 10.0 ** rng.uniform(-0.5, 0.5, n_hot)


def dark_rate_map(
    shape: tuple[int, int],
    *,
    dark_current: float,
    hot_pixel_fraction: float,
    hot_pixel_rate: float,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Dark current (electrons/s) of every pixel, or `None` if there is none.

    Parameters
    ----------
    shape : `tuple` [`int`, `int`]
        ``(ny, nx)``.
    dark_current : `float`
        Uniform dark current (e-/s/pixel).
    hot_pixel_fraction : `float`
        Fraction of hot pixels.
    hot_pixel_rate : `float`
        Dark current of a hot pixel (e-/s), times a log-uniform factor in [0.3, 3] (see `hot_pixels`).
    rng : `numpy.random.Generator`
        A fixed (per-detector) generator.
    """
    if dark_current <= 0.0 and hot_pixel_fraction <= 0.0:
        return None
    rate = np.full(shape, dark_current, np.float32)
    idx, rates = hot_pixels(shape, hot_pixel_fraction, hot_pixel_rate, rng)
    rate.ravel()[idx] += rates.astype(np.float32)
    return rate


def bad_column_segments(
    shape: tuple[int, int], n_bad_columns: int, rng: np.random.Generator
) -> list[tuple[int, int, int, float]]:
    """Dead column segments ``(x, y0, y1, response)``: rows ``y0..y1`` inclusive keep ``response`` (2-10%)."""
    ny, nx = shape
    out = []
    for _ in range(max(n_bad_columns, 0)):
        x = int(rng.integers(0, nx))
        y = int(rng.integers(0, ny))
        y0, y1 = (y, ny - 1) if rng.random() < 0.5 else (0, y)
        out.append((x, y0, y1, float(rng.uniform(0.02, 0.1))))
    return out


def bad_column_response(
    shape: tuple[int, int], n_bad_columns: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Response factor of dead column segments (from a random row to one CCD edge), or `None`.

    A dead segment keeps 2-10% of its response; it appears in dome flats as in science exposures.
    """
    if n_bad_columns <= 0:
        return None
    factor = np.ones(shape, np.float32)
    for x, y0, y1, response in bad_column_segments(shape, n_bad_columns, rng):
        factor[y0 : y1 + 1, x] = response
    return factor


def dust_rings(
    shape: tuple[int, int], n_rings: int, max_depth: float, rng: np.random.Generator
) -> list[tuple[float, float, float, float, float]]:
    """Dust-grain shadows on a detector: ``(x, y, radius, width, depth)`` in pixels and fractional loss.

    A grain on the filter or dewar window casts an out-of-focus ring (the pupil's image) of 20-80 px
    radius; the ring absorbs up to ``max_depth`` of the light.
    """
    ny, nx = shape
    out = []
    for _ in range(max(n_rings, 0)):
        radius = float(rng.uniform(20.0, 80.0))
        out.append(
            (
                float(rng.uniform(0.0, nx - 1)),
                float(rng.uniform(0.0, ny - 1)),
                radius,
                float(radius * rng.uniform(0.15, 0.3)),
                float(max_depth * rng.uniform(0.3, 1.0)),
            )
        )
    return out


def dust_ring_response(
    shape: tuple[int, int], rings: list[tuple[float, float, float, float, float]]
) -> np.ndarray | None:
    """Response factor ``(ny, nx)`` of dust rings (Gaussian ring profiles), or `None` if there are none."""
    if not rings:
        return None
    factor = np.ones(shape, np.float32)
    ny, nx = shape
    for x, y, radius, width, depth in rings:
        half = int(np.ceil(radius + 4.0 * width))
        x0, x1 = max(int(x) - half, 0), min(int(x) + half + 1, nx)
        y0, y1 = max(int(y) - half, 0), min(int(y) + half + 1, ny)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r = np.hypot(xx - x, yy - y)
        factor[y0:y1, x0:x1] *= (1.0 - depth * np.exp(-0.5 * ((r - radius) / width) ** 2)).astype(np.float32)
    return factor


def deposit_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, charge: float) -> None:
    """Add ``charge`` at each point ``(xs, ys)`` (pixels), shared bilinearly among its four pixels, in place.

    Points off the image lose the share that falls off it.
    """
    ny, nx = image.shape
    ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - ix, ys - iy
    for dx, dy, wt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        px, py = ix + dx, iy + dy
        ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        np.add.at(image, (py[ok], px[ok]), (charge * wt[ok]).astype(image.dtype))


def add_cosmic_rays(
    electrons: np.ndarray,
    *,
    rate_per_cm2_s: float,
    exposure_time: float,
    pixel_size_mm: float,
    thickness_um: float,
    rng: np.random.Generator,
    records: list[tuple[float, float, float, float, float]] | None = None,
) -> int:
    """Add cosmic-ray tracks to an image of electrons (in place); returns their number.

    Particles arrive uniformly on the CCD with a ``cos^2`` zenith-angle distribution; a track crosses the
    depleted thickness, leaving `ELECTRONS_PER_MICRON` per micron of path (times 0.7-1.5, Landau-like
    scatter), spread along its projection on the pixel grid (bilinear deposit).  If ``records`` is given,
    ``(x0, y0, x1, y1, electrons)`` of every track (pixels, total charge deposited on the CCD) is appended.
    """
    ny, nx = electrons.shape
    area_cm2 = nx * ny * (pixel_size_mm / 10.0) ** 2
    n = int(rng.poisson(max(rate_per_cm2_s, 0.0) * exposure_time * area_cm2))
    pixel_um = pixel_size_mm * 1000.0
    for _ in range(n):
        # cos^2(theta) sin(theta) d(theta): cos(theta) = u^(1/3)
        cos_t = min(max(rng.random() ** (1.0 / 3.0), 0.05), 1.0)
        tan_t = np.sqrt(1.0 - cos_t * cos_t) / cos_t
        length_px = min(thickness_um * tan_t / pixel_um, 200.0)
        charge = ELECTRONS_PER_MICRON * thickness_um / cos_t * rng.uniform(0.7, 1.5)
        x0, y0 = rng.uniform(-0.5, nx - 0.5), rng.uniform(-0.5, ny - 0.5)
        phi = rng.uniform(0.0, 2.0 * np.pi)
        n_step = max(1, int(np.ceil(length_px * 2.0)))
        s = (np.arange(n_step) + 0.5) / n_step * length_px
        xs = x0 + s * np.cos(phi)
        ys = y0 + s * np.sin(phi)
        w = charge / n_step
        deposit_bilinear(electrons, xs, ys, w)
        if records is not None:
            inside = (xs > -0.5) & (xs < nx - 0.5) & (ys > -0.5) & (ys < ny - 0.5)
            x_end = x0 + length_px * np.cos(phi)
            y_end = y0 + length_px * np.sin(phi)
            records.append((float(x0), float(y0), float(x_end), float(y_end), float(w * inside.sum())))
    return n


def satellite_trail(
    camera: Camera,
    detector: DetectorSpec,
    pointing: Pointing,
    trail: tuple[float, float, float],
    *,
    electrons_per_arcsec: float,
    sigma_pixels: float,
) -> np.ndarray | None:
    """Expected electrons of a satellite trail on a CCD (a great circle, Gaussian profile), or `None`.

    Parameters
    ----------
    camera : `Camera`
    detector : `DetectorSpec`
    pointing : `Pointing`
        True boresight of the exposure.
    trail : `tuple` [`float`, `float`, `float`]
        A point of the trail (ra, dec in deg) and its position angle (deg, east of north).
    electrons_per_arcsec : `float`
        Charge per arcsec of trail length.
    sigma_pixels : `float`
        Gaussian width of the trail's cross-section (pixels).
    """
    ra0, dec0, pa = trail
    # points along the trail, on the tangent plane about the trail point (+-1.5 deg)
    s = np.linspace(-1.5, 1.5, 601)
    xi, eta = s * np.sin(np.radians(pa)), s * np.cos(np.radians(pa))
    ra, dec = tangent_to_sky(xi, eta, ra0, dec0)
    x, y = sky_to_pixel(camera, detector.id, ra, dec, pointing)
    margin = 5.0 * sigma_pixels + 2.0
    near = (x > -margin) & (x < detector.nx + margin) & (y > -margin) & (y < detector.ny + margin)
    if near.sum() < 2:
        # the CCD may sit between two samples (5.4" apart): test the segment crossing it
        idx = np.flatnonzero(
            (np.minimum(x[:-1], x[1:]) < detector.nx + margin)
            & (np.maximum(x[:-1], x[1:]) > -margin)
            & (np.minimum(y[:-1], y[1:]) < detector.ny + margin)
            & (np.maximum(y[:-1], y[1:]) > -margin)
        )
        if idx.size == 0:
            return None
        near = np.zeros_like(near)
        near[idx[0]] = near[idx[0] + 1] = True
    px, py = x[near], y[near]
    # straight line through the samples near the CCD (distortion is negligible across one CCD)
    p0 = np.array([px[0], py[0]])
    direction = np.array([px[-1] - px[0], py[-1] - py[0]])
    length = float(np.hypot(*direction))
    if length == 0.0:
        return None
    direction /= length
    normal = np.array([-direction[1], direction[0]])
    yy, xx = np.mgrid[0 : detector.ny, 0 : detector.nx].astype(np.float32)
    dist = (xx - p0[0]) * normal[0] + (yy - p0[1]) * normal[1]
    pixel_arcsec = camera.pixel_scale_arcsec
    line = electrons_per_arcsec * pixel_arcsec / (np.sqrt(2.0 * np.pi) * sigma_pixels)
    return (line * np.exp(-0.5 * (dist / sigma_pixels) ** 2)).astype(np.float32)


def add_ghost(
    image: np.ndarray,
    x: float,
    y: float,
    *,
    electrons: float,
    radius_pixels: float,
    inner_fraction: float,
) -> float:
    """Add an out-of-focus ghost (a uniform doughnut with soft edges) to ``image`` (in place).

    Parameters
    ----------
    image : `numpy.ndarray`
        Expected electrons ``(ny, nx)``.
    x, y : `float`
        Ghost centre (pixels; may lie off the image).
    electrons : `float`
        Total charge of the whole doughnut.
    radius_pixels : `float`
        Outer radius (pixels).
    inner_fraction : `float`
        Inner radius / outer radius (the telescope's central obscuration).

    Returns
    -------
    added : `float`
        Charge that fell on the image (electrons).
    """
    ny, nx = image.shape
    half = int(np.ceil(radius_pixels + 3.0))
    x0, x1 = max(int(np.floor(x)) - half, 0), min(int(np.floor(x)) + half + 2, nx)
    y0, y1 = max(int(np.floor(y)) - half, 0), min(int(np.floor(y)) + half + 2, ny)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot(xx - x, yy - y)
    # soft edges of one pixel: clip((R_out - r) + 0.5) * clip((r - R_in) + 0.5)
    r_in = inner_fraction * radius_pixels
    weight = np.clip(radius_pixels - r + 0.5, 0.0, 1.0) * np.clip(r - r_in + 0.5, 0.0, 1.0)
    area = np.pi * (radius_pixels**2 - r_in**2)
    stamp = weight * (electrons / area)
    image[y0:y1, x0:x1] += stamp.astype(image.dtype)
    return float(stamp.sum())
