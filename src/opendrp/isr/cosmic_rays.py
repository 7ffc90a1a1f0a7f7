"""Cosmic-ray detection: pixels sharper than any plausible PSF (the LSST ``findCosmicRays`` idea).

A pixel is a cosmic ray when, along at least one direction (x, y or a diagonal), it exceeds the mean of its
two neighbours by more than a PSF of FWHM ``min_fwhm`` allows, even after giving the pixel and its
neighbours ``noise_margin`` standard deviations of benefit of the doubt.  Tracks are found because the
perpendicular direction is sharp.  The work is proportional to the number of significant pixels.
"""

from __future__ import annotations

import numpy as np

from .assemble import grow_mask
from .interpolate import interpolate_rows

__all__ = ["find_cosmic_rays", "repair_cosmic_rays"]

_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
_RING_Y = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
_RING_X = np.array([-1, 0, 1, -1, 1, -1, 0, 1])


def find_cosmic_rays(
    image: np.ndarray,
    variance: np.ndarray,
    *,
    bad: np.ndarray | None = None,
    min_fwhm: float = 2.0,
    n_sigma: float = 6.0,
    noise_margin: float = 2.5,
    n_pass: int = 3,
    grow: int = 1,
    n_grow_pass: int = 20,
    grow_sigma: float = 3.0,
    grow_noise_margin: float = 0.5,
    inplace: bool = False,
) -> np.ndarray:
    """Pixels hit by cosmic rays.

    Parameters
    ----------
    image : `numpy.ndarray`
        Background-subtracted image.
    variance : `numpy.ndarray`
        Its variance.
    bad : `numpy.ndarray` [bool], optional
        Pixels never flagged (saturated, defects): saturated stars have flat, not sharp, cores.
    min_fwhm : `float`
        FWHM (pixels) of the sharpest PSF the data can have; pixels sharper than a Gaussian of this FWHM
        are cosmic rays.
    n_sigma : `float`
        Only pixels above this significance are examined.
    noise_margin : `float`
        Standard deviations granted to the pixel (downwards) and to its neighbours (upwards).
    n_pass : `int`
        Passes; each examines the image with the previous passes' cosmic rays replaced by their neighbours.
    grow : `int`
        The cosmic-ray mask is finally grown by this many pixels (4-connected).
    n_grow_pass, grow_sigma, grow_noise_margin : `int`, `float`, `float`
        Passes that extend the cosmic rays to their fainter edges: neighbours (8-connected) of cosmic-ray
        pixels above ``grow_sigma`` that are sharper than the PSF, with ``grow_noise_margin`` sigma of doubt,
        once the cosmic rays found so far are replaced.
    inplace : `bool`
        Work on ``image`` itself (no full-size copy): the cosmic-ray pixels found (not the grown ones) are
        left interpolated along rows.

    Returns
    -------
    cr : `numpy.ndarray` [bool]
    """
    img = image if inplace else np.array(image, dtype=np.float32, copy=True)
    ny, nx = img.shape
    sigma_psf = max(float(min_fwhm), 0.5) / 2.3548
    cr = np.zeros(img.shape, bool)
    # candidates: one full-image comparison against the smallest noise, then the exact test on those few
    var_min = float(np.nanmin(variance))
    floor = n_sigma * np.sqrt(var_min) if np.isfinite(var_min) and var_min > 0 else 0.0
    yy, xx = np.nonzero(img > np.float32(floor))
    var_c = np.asarray(variance)[yy, xx]
    keep = np.isfinite(var_c) & (img[yy, xx] > n_sigma * np.sqrt(np.maximum(var_c, 0.0)))
    if bad is not None:
        keep &= ~np.asarray(bad, bool)[yy, xx]
    yy, xx = yy[keep], xx[keep]
    var_all = np.asarray(variance)

    def var_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        v = var_all[y, x]
        return np.where(v > 0, v, 0.0)  # NaN and negative: 0

    def sig_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.sqrt(var_at(y, x))

    def sharp(y: np.ndarray, x: np.ndarray, margin: float) -> np.ndarray:
        """Pixels sharper than the sharpest PSF along some direction, with ``margin`` sigma of doubt."""
        v = img[y, x] - margin * sig_at(y, x)
        hit = np.zeros(y.size, bool)
        for dy, dx in _DIRECTIONS:
            ratio = np.exp(0.5 * (dx * dx + dy * dy) / sigma_psf**2)  # PSF(0) / PSF(d)
            # at the image border the missing neighbour is the pixel itself: that direction cannot fire
            ya, xa = np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)
            yb, xb = np.clip(y - dy, 0, ny - 1), np.clip(x - dx, 0, nx - 1)
            a, b = img[ya, xa], img[yb, xb]
            s = 0.5 * np.sqrt(var_at(ya, xa) + var_at(yb, xb))
            hit |= v > ratio * (0.5 * (a + b) + margin * s)
        return hit

    for _ in range(n_pass):
        if yy.size == 0:
            break
        hit = sharp(yy, xx, noise_margin)
        if not hit.any():
            break
        cr[yy[hit], xx[hit]] = True
        # the next pass sees the cosmic rays found so far replaced by their neighbours
        img = interpolate_rows(img, cr, inplace=True)
        yy, xx = yy[~hit], xx[~hit]
    # the fainter edges of the tracks: neighbours of cosmic-ray pixels above grow_sigma that are sharp once
    # the track is replaced (a star's core next to a track stays PSF-like, so it is not taken)
    bad_all = None if bad is None else np.asarray(bad, bool)
    fy, fx = np.nonzero(cr) if n_grow_pass > 0 else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    for _ in range(n_grow_pass):
        if fy.size == 0:
            break
        # candidates: neighbours of the pixels found last (the others were tested already)
        ny8 = (fy[:, None] + _RING_Y[None, :]).ravel()
        nx8 = (fx[:, None] + _RING_X[None, :]).ravel()
        ok = (ny8 >= 0) & (ny8 < ny) & (nx8 >= 0) & (nx8 < nx)
        flat = np.unique(ny8[ok] * nx + nx8[ok])
        gy, gx = flat // nx, flat % nx
        keep = ~cr[gy, gx] & (img[gy, gx] > grow_sigma * sig_at(gy, gx))
        if bad_all is not None:
            keep &= ~bad_all[gy, gx]
        gy, gx = gy[keep], gx[keep]
        if gy.size == 0:
            break
        hit = sharp(gy, gx, grow_noise_margin)
        fy, fx = gy[hit], gx[hit]
        if fy.size == 0:
            break
        cr[fy, fx] = True
        rows = np.unique(fy)  # re-interpolate only the rows that changed
        img[rows] = interpolate_rows(img[rows], cr[rows], inplace=True)
    if grow > 0 and cr.any():
        cr = grow_mask(cr, grow)
        if bad is not None:
            cr &= ~np.asarray(bad, bool)
    return cr


def repair_cosmic_rays(
    image: np.ndarray, variance: np.ndarray, cr: np.ndarray, *, inplace: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate over cosmic-ray pixels (along rows); returns the repaired image and variance
    (the inputs themselves, modified, when ``inplace``)."""
    if not cr.any():
        return image, variance
    return interpolate_rows(image, cr, inplace=inplace), interpolate_rows(variance, cr, inplace=inplace)
