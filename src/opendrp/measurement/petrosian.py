"""Petrosian radius and flux (the SDSS definition), vectorized over sources with sep's exact apertures.

The Petrosian ratio at radius ``r`` is the mean surface brightness in the annulus ``0.8 r .. 1.25 r`` over the
mean surface brightness within ``r``::

    R_P(r) = [F(1.25 r) - F(0.8 r)] / [(1.25**2 - 0.8**2) F(r)]

with ``F`` the flux in a circular aperture.  The Petrosian radius ``r_P`` is where ``R_P`` first falls to
``eta`` (0.2), and the Petrosian flux is the flux within ``n_petrosian r_P`` (2): nearly all the flux of an
exponential disk (99%) and ~80% of a de Vaucouleurs profile, independently of distance and surface
brightness dimming (Blanton et al. 2001, AJ 121, 2358; Strauss et al. 2002, AJ 124, 1810).

The aperture fluxes are taken on a geometric grid of radii ``r_k = r_min 1.25**(k / steps)`` (2 radii per
factor 1.25), so that ``0.8 r_k`` and ``1.25 r_k`` are grid radii too; a source leaves the computation as soon
as its ratio has crossed ``eta`` (most sources are small: few apertures each).  The crossing is interpolated
linearly in ``log r``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sep

__all__ = ["PetrosianResult", "petrosian_fluxes"]


@dataclasses.dataclass
class PetrosianResult:
    """`petrosian_fluxes` results, one entry per source (image units, pixels)."""

    radius: np.ndarray  # Petrosian radius r_P (pixels)
    flux: np.ndarray  # flux within n_petrosian r_P
    flux_err: np.ndarray
    flag: np.ndarray  # no crossing within r_max, no positive flux, or the aperture truncated/masked


def petrosian_fluxes(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    segmap: np.ndarray | None = None,
    seg_id: np.ndarray | None = None,
    eta: float = 0.2,
    n_petrosian: float = 2.0,
    r_min: float = 1.0,
    r_max: float = 60.0,
    steps: int = 2,
    subpix: int = 0,
    flux_subpix: int = 5,
) -> PetrosianResult:
    """Petrosian radii and fluxes of sources at ``(x, y)`` on a background-subtracted image.

    Parameters
    ----------
    image : `numpy.ndarray` [float32]
        Background-subtracted image (C-contiguous; electrons or nJy per pixel).
    x, y : `numpy.ndarray`
        Source centres (0-based pixels).
    variance : `numpy.ndarray`, optional
        Pixel variance, for the flux errors.
    mask : `numpy.ndarray` [bool], optional
        Pixels without data (ignored, and the aperture flagged).
    segmap, seg_id : `numpy.ndarray`, optional
        Segmentation map and each source's segment: other sources' pixels are left out (as sep does for
        the circular apertures).
    eta : `float`
        Petrosian ratio defining the radius (SDSS: 0.2).
    n_petrosian : `float`
        The flux is measured within this many Petrosian radii (SDSS: 2).
    r_min, r_max : `float`
        Smallest and largest radius (pixels) of the ratio grid; sources whose ratio stays above ``eta`` up
        to ``r_max`` get ``r_P = r_max`` and are flagged.
    steps : `int`
        Grid radii per factor 1.25 (2: the grid ratio is 1.118).
    subpix, flux_subpix : `int`
        sep sub-pixel sampling of the aperture edges for the ratio and for the flux (0: exact overlap).

    Returns
    -------
    `PetrosianResult`
    """
    x = np.atleast_1d(np.asarray(x, np.float64))
    y = np.atleast_1d(np.asarray(y, np.float64))
    n = x.size
    radius = np.full(n, np.nan)
    flag = np.zeros(n, bool)
    if n == 0:
        return PetrosianResult(radius, np.zeros(0), np.zeros(0), flag)
    kw: dict = {"subpix": int(subpix)}
    if mask is not None:
        kw["mask"] = mask
    seg_ids = None
    if segmap is not None and seg_id is not None:
        kw["segmap"] = segmap
        seg_ids = np.asarray(seg_id, np.int32)
    q = 1.25 ** (1.0 / steps)
    n_grid = int(np.floor(np.log(r_max / r_min) / np.log(q))) + 1
    grid = r_min * q ** np.arange(n_grid)
    enclosed = np.full((n, n_grid), np.nan)
    ratio_prev = np.full(n, np.nan)
    active = np.arange(n)
    for k in range(n_grid):
        if active.size == 0:
            break
        sel_kw = dict(kw)
        if seg_ids is not None:
            sel_kw["seg_id"] = seg_ids[active]
        f, _, _ = sep.sum_circle(image, x[active], y[active], grid[k], **sel_kw)
        enclosed[active, k] = f
        # the ratio at grid[j] needs F(0.8 grid[j]) = enclosed[:, j - steps] and F(1.25 grid[j]) = f
        j = k - steps
        if j - steps < 0:
            continue
        f_in, f_mid, f_out = enclosed[active, j - steps], enclosed[active, j], f
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (f_out - f_in) / ((1.25**2 - 0.8**2) * f_mid)
        ratio = np.where(f_mid > 0, ratio, -np.inf)  # no positive flux yet: treated as a crossing, flagged
        crossed = ratio < eta
        if crossed.any():
            idx = active[crossed]
            r_hi = grid[j]
            prev = ratio_prev[idx]
            lo_ok = np.isfinite(prev) & (prev >= eta) & np.isfinite(ratio[crossed])
            # linear in log r between grid[j - 1] (ratio >= eta) and grid[j] (ratio < eta)
            frac = np.where(lo_ok, (prev - eta) / np.where(lo_ok, prev - ratio[crossed], 1.0), 1.0)
            radius[idx] = np.where(lo_ok, grid[j - 1] * q ** np.clip(frac, 0.0, 1.0), r_hi)
            flag[idx] |= ~(f_mid[crossed] > 0) | ~lo_ok
        ratio_prev[active] = ratio
        active = active[~crossed]
    if active.size:  # never crossed: the largest radius, flagged
        radius[active] = grid[max(n_grid - 1 - steps, 0)]
        flag[active] = True
    sel_kw = dict(kw)
    if seg_ids is not None:
        sel_kw["seg_id"] = seg_ids
    if variance is not None:
        sel_kw["var"] = variance
    sel_kw["subpix"] = int(flux_subpix)
    flux, flux_err, sflag = sep.sum_circle(image, x, y, n_petrosian * radius, **sel_kw)
    flag |= (sflag & (sep.APER_TRUNC | sep.APER_HASMASKED)) != 0
    if variance is None:
        flux_err = np.full(n, np.nan)
    return PetrosianResult(radius, np.asarray(flux, float), np.asarray(flux_err, float), flag)
