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
        The cosmic-ray mask is grown by this many pixels.
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

    def sig_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        v = var_all[y, x]
        return np.sqrt(np.where(np.isfinite(v) & (v > 0), v, 0.0))

    for _ in range(n_pass):
        if yy.size == 0:
            break
        v = img[yy, xx] - noise_margin * sig_at(yy, xx)
        hit = np.zeros(yy.size, bool)
        for dy, dx in _DIRECTIONS:
            ratio = np.exp(0.5 * (dx * dx + dy * dy) / sigma_psf**2)  # PSF(0) / PSF(d)
            # at the image border the missing neighbour is the pixel itself: that direction cannot fire
            ya, xa = np.clip(yy + dy, 0, ny - 1), np.clip(xx + dx, 0, nx - 1)
            yb, xb = np.clip(yy - dy, 0, ny - 1), np.clip(xx - dx, 0, nx - 1)
            a, b = img[ya, xa], img[yb, xb]
            s = 0.5 * np.sqrt(sig_at(ya, xa) ** 2 + sig_at(yb, xb) ** 2)
            hit |= v > ratio * (0.5 * (a + b) + noise_margin * s)
        if not hit.any():
            break
        cr[yy[hit], xx[hit]] = True
        # the next pass sees the cosmic rays found so far replaced by their neighbours
        img = interpolate_rows(img, cr, inplace=True)
        yy, xx = yy[~hit], xx[~hit]
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
