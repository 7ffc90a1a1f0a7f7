"""Matching detected sources to a reference catalog and fitting the WCS, starting from the pointing.

1. Offset voting: reference stars are projected with the initial WCS; the pixel offsets of all pairs of
   bright sources and bright references closer than the largest pointing error are histogrammed, for a small
   grid of trial rotations; the densest offset cell gives the pointing correction.
2. Nearest-neighbour matching with the corrected positions, a TAN-SIP fit, re-matching with the fitted WCS in
   a shrinking radius, with sigma clipping, until the matches no longer change.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.spatial import cKDTree

from ..errors import AlgorithmError
from ..psf.model import monomial_terms
from .fit_wcs import fit_tan_sip, wcs_residuals_mas

__all__ = ["AstrometryResult", "fit_wcs_to_refcat", "max_fit_order", "nearest_unique_match", "vote_offset"]


@dataclasses.dataclass
class AstrometryResult:
    """A fitted WCS and the matches that constrained it."""

    wcs: WCS
    src_index: np.ndarray  # index into the input sources of each match used in the final fit
    ref_index: np.ndarray  # index into the reference catalog
    residuals_mas: np.ndarray  # on-sky residual of each used match (milliarcsec)
    rms_mas: float  # root-mean-square 2-D residual (milliarcsec)
    n_matches: int
    order: int
    offset_pixels: tuple[float, float]  # pointing correction found by voting (pixels)
    rotation_deg: float  # rotation correction found by voting


def max_fit_order(n_matches: int, order: int) -> int:
    """Highest order <= ``order`` that ``n_matches`` constrain (two matches per coefficient, plus 2)."""
    while order > 1 and n_matches < 2 * len(monomial_terms(order)) + 2:
        order -= 1
    return order


def nearest_unique_match(
    x_src: np.ndarray, y_src: np.ndarray, x_ref: np.ndarray, y_ref: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one nearest-neighbour matches within ``radius``.

    Returns
    -------
    src_index, ref_index : `numpy.ndarray` [int]
    distance : `numpy.ndarray`
    """
    if len(x_src) == 0 or len(x_ref) == 0:
        e = np.zeros(0, int)
        return e, e, np.zeros(0)
    tree = cKDTree(np.c_[x_ref, y_ref])
    d, j = tree.query(np.c_[x_src, y_src], distance_upper_bound=radius)
    i = np.flatnonzero(np.isfinite(d))
    j, d = j[i], d[i]
    order = np.argsort(d)
    i, j, d = i[order], j[order], d[order]
    _, first = np.unique(j, return_index=True)  # each reference keeps its closest source
    keep = np.sort(first)
    return i[keep], j[keep], d[keep]


def _rotate(
    x: np.ndarray, y: np.ndarray, xc: float, yc: float, theta: float
) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = x - xc, y - yc
    return xc + c * dx - s * dy, yc + s * dx + c * dy


def vote_offset(
    x_src: np.ndarray,
    y_src: np.ndarray,
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    *,
    centre: tuple[float, float],
    max_offset: float,
    max_rotation_deg: float,
    bin_size: float = 2.0,
    r_max: float | None = None,
) -> tuple[float, float, float, int, float]:
    """Most common pixel offset (source minus reference) over a grid of trial rotations.

    Returns
    -------
    dx, dy : `float`
        Offset (pixels) to add to rotated reference positions.
    rotation : `float`
        Rotation (radians) about ``centre`` to apply to reference positions first.
    peak : `int`
        Pairs in the peak cell.
    threshold : `float`
        Fewest pairs in the peak cell for it to be significant: the count that pure chance exceeds with a
        probability below 1e-3 over all cells and rotations tried (Poisson).
    """
    xc, yc = centre
    if r_max is None:
        r_max = float(np.max(np.hypot(x_src - xc, y_src - yc))) if len(x_src) else 1.0
    step = bin_size / max(r_max, 1.0)
    n_rot = int(np.ceil(np.radians(max_rotation_deg) / step)) if max_rotation_deg > 0 else 0
    thetas = np.arange(-n_rot, n_rot + 1) * step
    search = max_offset + bin_size
    nb = int(np.ceil(2 * search / bin_size))
    best = (0.0, 0.0, 0.0, -1, 0.0)
    src_tree = cKDTree(np.c_[x_src, y_src])
    for theta in thetas:
        xr, yr = _rotate(x_ref, y_ref, xc, yc, theta)
        pairs = src_tree.query_ball_point(np.c_[xr, yr], r=search)
        counts = np.array([len(p) for p in pairs])
        if counts.sum() == 0:
            continue
        ref_i = np.repeat(np.arange(len(xr)), counts)
        src_i = np.concatenate([np.asarray(p, int) for p in pairs if len(p)])
        dx = x_src[src_i] - xr[ref_i]
        dy = y_src[src_i] - yr[ref_i]
        hist, ex, ey = np.histogram2d(dx, dy, bins=nb, range=[[-search, search], [-search, search]])
        box = (
            hist[:-1, :-1] + hist[1:, :-1] + hist[:-1, 1:] + hist[1:, 1:]
        )  # 2x2 cells: offsets on a boundary
        k = np.unravel_index(int(np.argmax(box)), box.shape)
        peak = int(box[k])
        if peak > best[3]:
            cx, cy = ex[k[0] + 1], ey[k[1] + 1]
            sel = (np.abs(dx - cx) <= bin_size) & (np.abs(dy - cy) <= bin_size)
            expected = len(dx) * 4 * bin_size**2 / (np.pi * search**2)
            best = (float(np.median(dx[sel])), float(np.median(dy[sel])), float(theta), peak, float(expected))
    n_trials = max(1, len(thetas) * nb * nb)
    threshold = _poisson_isf(1e-3 / n_trials, max(best[4], 1e-3)) + 1.0
    return best[0], best[1], best[2], best[3], threshold


def _poisson_isf(q: float, mu: float) -> float:
    """Smallest k with P(X > k) <= q for X ~ Poisson(mu) (scipy.stats.poisson.isf without importing
    scipy.stats, which costs ~0.3 CPU-s per process)."""
    from scipy.special import pdtrc  # P(X > k)

    k = np.arange(0, int(mu + 40.0 * np.sqrt(mu) + 60.0))
    above = np.flatnonzero(pdtrc(k, mu) <= q)
    return float(k[above[0]]) if above.size else float(k[-1])


def _brightest(flux: np.ndarray | None, n: int, keep: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(keep)
    if flux is None or len(idx) <= n:
        return idx
    f = np.asarray(flux, float)[idx]
    return idx[np.argsort(-np.nan_to_num(f, nan=-np.inf))[:n]]


def fit_wcs_to_refcat(
    x: np.ndarray,
    y: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    initial_wcs: WCS,
    *,
    shape: tuple[int, int],
    src_flux: np.ndarray | None = None,
    ref_flux: np.ndarray | None = None,
    src_err: np.ndarray | None = None,
    order: int = 3,
    max_offset_arcsec: float = 20.0,
    max_rotation_deg: float = 0.3,
    match_radius_arcsec: float = 1.0,
    n_vote: int = 150,
    clip_sigma: float = 3.5,
    n_iter: int = 8,
    min_matches: int = 6,
    error_floor_pixels: float = 0.02,
) -> AstrometryResult:
    """Match sources to reference stars and fit a TAN-SIP WCS.

    Parameters
    ----------
    x, y : `numpy.ndarray`
        Centroids (0-based pixels) of the sources to match (clean, point-like ones are best).
    ref_ra, ref_dec : `numpy.ndarray`
        Reference positions (degrees).
    initial_wcs : `astropy.wcs.WCS`
        Approximate WCS from the telescope pointing and the camera geometry.
    shape : `tuple` [`int`, `int`]
        Image shape ``(ny, nx)``.
    src_flux, ref_flux : `numpy.ndarray`, optional
        Brightness used to pick the ``n_vote`` brightest of each for offset voting.
    src_err : `numpy.ndarray`, optional
        Centroid uncertainty (pixels) for the fit weights, with ``error_floor_pixels`` added in quadrature.
    order : `int`
        TAN-SIP polynomial order (lowered when the matches are too few).
    max_offset_arcsec : `float`
        Largest pointing error searched.
    max_rotation_deg : `float`
        Largest rotation error searched.
    match_radius_arcsec : `float`
        Final matching radius.
    n_vote : `int`
        Number of brightest sources and references used for voting.
    clip_sigma : `float`
        Rejection threshold (robust standard deviations of the 1-D residuals).
    n_iter : `int`
        Match / fit iterations.
    min_matches : `int`
        Fewest matches for a solution.

    Raises
    ------
    AlgorithmError
        If no significant offset is found or the matches are too few.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ref_ra, ref_dec = np.asarray(ref_ra, float), np.asarray(ref_dec, float)
    ny, nx = shape
    scale = float(np.mean(proj_plane_pixel_scales(initial_wcs.celestial))) * 3600.0  # arcsec / pixel
    max_off = max_offset_arcsec / scale
    if len(x) < min_matches or len(ref_ra) < min_matches:
        raise AlgorithmError(f"too few sources ({len(x)}) or reference stars ({len(ref_ra)}) to match")
    rx, ry = initial_wcs.all_world2pix(ref_ra, ref_dec, 0, quiet=True)
    margin = max_off + 20
    on = (
        np.isfinite(rx)
        & np.isfinite(ry)
        & (rx > -margin)
        & (ry > -margin)
        & (rx < nx + margin)
        & (ry < ny + margin)
    )
    if on.sum() < min_matches:
        raise AlgorithmError(
            f"only {int(on.sum())} reference stars fall on the detector with the initial WCS"
        )
    centre = (0.5 * (nx - 1), 0.5 * (ny - 1))
    si = _brightest(src_flux, n_vote, np.ones(len(x), bool))
    ri = _brightest(ref_flux, 2 * n_vote, on)
    dx, dy, theta, peak, threshold = vote_offset(
        x[si],
        y[si],
        rx[ri],
        ry[ri],
        centre=centre,
        max_offset=max_off,
        max_rotation_deg=max_rotation_deg,
        r_max=0.5 * float(np.hypot(nx, ny)),
    )
    if peak < max(min_matches // 2, 4, threshold):
        raise AlgorithmError(
            f"no significant match between sources and reference stars within {max_offset_arcsec} arcsec "
            f"of the pointing (best offset: {peak} pairs, {threshold:.0f} needed)"
        )
    # initial matches with the voted correction
    idx_on = np.flatnonzero(on)
    px, py = _rotate(rx[idx_on], ry[idx_on], centre[0], centre[1], theta)
    px, py = px + dx, py + dy
    radius = 3.0 * 2.0  # pixels: 3 voting cells
    s_i, r_j, _ = nearest_unique_match(x, y, px, py, radius)
    r_j = idx_on[r_j]
    err2 = (
        np.asarray(src_err, float) ** 2 if src_err is not None else np.zeros(len(x))
    ) + error_floor_pixels**2
    err2 = np.where(np.isfinite(err2), err2, 1.0)
    wcs = initial_wcs
    used = np.ones(len(s_i), bool)
    fit_order = 1
    crpix = centre
    radius_mas = 1000.0 * match_radius_arcsec
    for it in range(n_iter):
        if used.sum() < min_matches:
            raise AlgorithmError(f"only {int(used.sum())} astrometric matches (need {min_matches})")
        fit_order = max_fit_order(int(used.sum()), order if it > 0 else min(order, 2))
        wcs = fit_tan_sip(
            x[s_i[used]],
            y[s_i[used]],
            ref_ra[r_j[used]],
            ref_dec[r_j[used]],
            order=fit_order,
            crpix=crpix,
            weights=1.0 / err2[s_i[used]],
        )
        res = wcs_residuals_mas(wcs, x[s_i[used]], y[s_i[used]], ref_ra[r_j[used]], ref_dec[r_j[used]])
        # 1-D sigma from the median 2-D residual (Rayleigh: median = sigma sqrt(2 ln 2))
        sigma = float(np.median(res)) / np.sqrt(2 * np.log(2)) if len(res) else 0.0
        radius_mas = min(
            max(clip_sigma * sigma, 5.0),
            1000.0 * (match_radius_arcsec if it > 1 else 3 * match_radius_arcsec),
        )
        qx, qy = wcs.all_world2pix(ref_ra[on], ref_dec[on], 0, quiet=True)
        new_s, new_r, d = nearest_unique_match(x, y, qx, qy, radius_mas / 1000.0 / scale)
        new_r = idx_on[new_r]
        same = len(new_s) == len(s_i) and np.array_equal(new_s, s_i) and np.array_equal(new_r, r_j)
        s_i, r_j = new_s, new_r
        used = np.ones(len(s_i), bool)
        if same and it > 1:
            break
    # matches must outnumber chance coincidences within the final radius
    area = float(nx * ny)
    chance = len(x) * int(on.sum()) * np.pi * (radius_mas / 1000.0 / scale) ** 2 / area
    needed = max(min_matches, int(np.ceil(chance + 5 * np.sqrt(chance))))
    if len(s_i) < needed:
        raise AlgorithmError(f"only {len(s_i)} astrometric matches (need {needed}; {chance:.1f} by chance)")
    fit_order = max_fit_order(len(s_i), order)
    wcs = fit_tan_sip(
        x[s_i], y[s_i], ref_ra[r_j], ref_dec[r_j], order=fit_order, crpix=crpix, weights=1.0 / err2[s_i]
    )
    res = wcs_residuals_mas(wcs, x[s_i], y[s_i], ref_ra[r_j], ref_dec[r_j])
    return AstrometryResult(
        wcs=wcs,
        src_index=s_i,
        ref_index=r_j,
        residuals_mas=res,
        rms_mas=float(np.sqrt(np.mean(res**2))) if len(res) else float("nan"),
        n_matches=len(s_i),
        order=fit_order,
        offset_pixels=(dx, dy),
        rotation_deg=float(np.degrees(theta)),
    )
