"""Adaptive (elliptical Gaussian-weighted) moments and windowed centroids, vectorized over sources."""

from __future__ import annotations

import dataclasses

import numpy as np

from .stamps import stamp_grid

__all__ = ["AdaptiveMoments", "adaptive_moments", "moments_to_ellipse"]


@dataclasses.dataclass
class AdaptiveMoments:
    """Results of `adaptive_moments`, one entry per source (pixels, pixels**2, image units)."""

    x: np.ndarray  # centroid offset from the stamp centre, pixels
    y: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    ixx: np.ndarray  # adaptive second moments, pixels**2
    iyy: np.ndarray
    ixy: np.ndarray
    flux: np.ndarray  # Gaussian (adaptive-weight) flux
    flux_err: np.ndarray
    flag: np.ndarray  # did not converge, hit the size limit, or no positive signal
    n_iter: int


def _weight(
    gx: np.ndarray,
    gy: np.ndarray,
    xc: np.ndarray,
    yc: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    ic: np.ndarray,
) -> np.ndarray:
    """Elliptical Gaussian weights ``exp(-r2 / 2)`` on the stamps, ``r2 = ia dx^2 + 2 ib dx dy + ic dy^2``.

    The terms in x alone and y alone are computed on a row / column and broadcast: three passes over the
    ``(n, size, size)`` stamps before the exponential.
    """
    dx = gx - xc[:, None, None]  # (n, 1, size)
    dy = gy - yc[:, None, None]  # (n, size, 1)
    r2 = (ia[:, None, None] * dx * dx) + (ic[:, None, None] * dy * dy)
    r2 += (2.0 * ib[:, None, None] * dy) * dx
    r2 *= -0.5
    return np.exp(r2, out=r2)


def moments_to_ellipse(
    ixx: np.ndarray, iyy: np.ndarray, ixy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Semi-axes ``a >= b`` (rms, pixels) and position angle ``theta`` (radians, from +x) of moments."""
    ixx, iyy, ixy = (np.asarray(v, float) for v in (ixx, iyy, ixy))
    half_tr = 0.5 * (ixx + iyy)
    dis = np.sqrt(np.maximum(0.25 * (ixx - iyy) ** 2 + ixy**2, 0.0))
    a = np.sqrt(np.maximum(half_tr + dis, 0.0))
    b = np.sqrt(np.maximum(half_tr - dis, 0.0))
    theta = 0.5 * np.arctan2(2.0 * ixy, ixx - iyy)
    return a, b, theta


def adaptive_moments(
    stamps: np.ndarray,
    valid: np.ndarray,
    *,
    x0: np.ndarray | None = None,
    y0: np.ndarray | None = None,
    sigma0: np.ndarray | float = 2.0,
    variance: np.ndarray | None = None,
    update_centroid: bool = True,
    adapt_shape: bool = True,
    max_iter: int = 30,
    tol: float = 1e-4,
    max_shift: float = 2.0,
) -> AdaptiveMoments:
    """Adaptive moments (Bernstein & Jarvis 2002) of many sources at once.

    The weight is an elliptical Gaussian whose covariance is iterated until it equals the source's
    weighted-moment estimate of its own covariance (exact in one step for a Gaussian source:
    ``C_new^-1 = Q^-1 - C^-1`` where ``Q`` are the moments measured with weight ``C``).  With
    ``update_centroid`` the centre is iterated to the weighted centroid (SExtractor's windowed position).

    Parameters
    ----------
    stamps : `numpy.ndarray`, shape ``(n, size, size)``
        Background-subtracted stamps centred (to the nearest pixel) on the sources.
    valid : `numpy.ndarray` [bool], same shape
        Usable pixels.
    x0, y0 : `numpy.ndarray`, optional
        Initial centre offsets from the stamp centre (pixels); 0 by default.
    sigma0 : `float` or `numpy.ndarray`
        Initial circular weight sigma (pixels).
    variance : `numpy.ndarray`, optional
        Pixel variances (for the centroid and flux errors).
    update_centroid : `bool`
        Iterate the centre; otherwise keep ``(x0, y0)``.
    adapt_shape : `bool`
        Iterate the weight's shape; otherwise keep the circular ``sigma0`` weight (windowed centroid only).
    max_iter : `int`
        Maximum iterations.
    tol : `float`
        Convergence: relative change of the moments and change of the centre (pixels).
    max_shift : `float`
        Largest centre displacement from ``(x0, y0)`` before giving up (pixels).

    Returns
    -------
    `AdaptiveMoments`
    """
    n, size, _ = stamps.shape
    half = size // 2
    gx, gy = stamp_grid(half)
    img = np.where(valid, stamps, 0.0).astype(np.float64)
    x_start = np.zeros(n) if x0 is None else np.asarray(x0, float).copy()
    y_start = np.zeros(n) if y0 is None else np.asarray(y0, float).copy()
    xc, yc = x_start.copy(), y_start.copy()
    s2 = np.broadcast_to(np.asarray(sigma0, float) ** 2, (n,)).astype(float).copy()
    cxx, cyy, cxy = s2.copy(), s2.copy(), np.zeros(n)
    max_var = (half / 2.5) ** 2  # keep the weight inside the stamp
    min_var = 0.05
    flag = np.zeros(n, bool)
    active = np.ones(n, bool)
    n_done = 0
    for n_done in range(1, max_iter + 1):  # noqa: B007 (reported)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        det = cxx[idx] * cyy[idx] - cxy[idx] ** 2
        ia, ib, ic = cyy[idx] / det, -cxy[idx] / det, cxx[idx] / det
        wi = _weight(gx, gy, xc[idx], yc[idx], ia, ib, ic)
        wi *= img[idx]
        # raw moments about the stamp centre from the row and column sums (few passes over the stamps),
        # then about the current centre (second moments are shift-invariant)
        col = wi.sum(axis=1)  # (n, size): summed over y
        row = wi.sum(axis=2)  # (n, size): summed over x
        s0 = col.sum(axis=1)
        bad = ~(s0 > 0)
        s0 = np.where(bad, 1.0, s0)
        offs = gx[0, 0]
        sx, sy = col @ offs / s0, row @ offs / s0
        mx, my = sx - xc[idx], sy - yc[idx]
        qxx = col @ (offs * offs) / s0 - sx * sx
        qyy = row @ (offs * offs) / s0 - sy * sy
        qxy = (wi @ offs) @ offs / s0 - sx * sy
        # new weight: inverse(Q^-1 - C^-1); fall back to 2 Q when Q is not smaller than C
        qdet = qxx * qyy - qxy**2
        ok_q = (qdet > 0) & (qxx > 0) & ~bad
        qdet = np.where(ok_q, qdet, 1.0)
        pa, pb, pc = qyy / qdet - ia, -qxy / qdet - ib, qxx / qdet - ic
        pdet = pa * pc - pb**2
        ok_p = ok_q & (pdet > 0) & (pa > 0)
        pdet = np.where(ok_p, pdet, 1.0)
        exx = np.clip(np.where(ok_p, pc / pdet, 2 * qxx), min_var, None)
        eyy = np.clip(np.where(ok_p, pa / pdet, 2 * qyy), min_var, None)
        exy = np.where(ok_p, -pb / pdet, 2 * qxy)
        if adapt_shape:
            nxx, nyy, nxy = exx, eyy, exy
        else:
            nxx, nyy, nxy = cxx[idx], cyy[idx], cxy[idx]
        clamp_hi = (nxx > max_var) | (nyy > max_var)
        nxx, nyy = np.clip(nxx, min_var, max_var), np.clip(nyy, min_var, max_var)
        lim = 0.95 * np.sqrt(nxx * nyy)
        nxy = np.clip(nxy, -lim, lim)
        if update_centroid:
            # for a Gaussian source the weighted centroid moves by Q C^-1 of the true offset: invert that
            # (offset = S Q^-1 m, with S the new estimate of the source covariance)
            ux, uy = (qyy * mx - qxy * my) / qdet, (qxx * my - qxy * mx) / qdet
            sx = np.where(ok_q, exx * ux + exy * uy, 2 * mx)
            sy = np.where(ok_q, exy * ux + eyy * uy, 2 * my)
            step = np.hypot(sx, sy)
            scale = np.where(step > 1.0, 1.0 / np.maximum(step, 1e-12), 1.0)
            nx_c, ny_c = xc[idx] + sx * scale, yc[idx] + sy * scale
        else:
            nx_c, ny_c = xc[idx], yc[idx]
        change = np.maximum.reduce(
            [
                np.abs(nxx - cxx[idx]) / (nxx + nyy),
                np.abs(nyy - cyy[idx]) / (nxx + nyy),
                np.abs(nxy - cxy[idx]) / (nxx + nyy),
            ]
        )
        moved = np.hypot(nx_c - xc[idx], ny_c - yc[idx])
        cxx[idx], cyy[idx], cxy[idx] = nxx, nyy, nxy
        xc[idx], yc[idx] = nx_c, ny_c
        lost = bad | (np.hypot(nx_c - x_start[idx], ny_c - y_start[idx]) > max_shift)
        flag[idx[lost]] = True
        done = lost | ((change < tol) & (moved < tol * 10))
        at_limit = clamp_hi & done
        flag[idx[at_limit]] = True
        active[idx[done]] = False
    flag |= active  # not converged
    # final weight: Gaussian flux and errors
    xc = np.where(flag & (np.hypot(xc - x_start, yc - y_start) > max_shift), x_start, xc)
    yc = np.where(flag & (np.hypot(xc - x_start, yc - y_start) > max_shift), y_start, yc)
    det = cxx * cyy - cxy**2
    w = _weight(gx, gy, xc, yc, cyy / det, -cxy / det, cxx / det)
    w *= valid
    s0 = (w * img).sum(axis=(1, 2))
    flux = 2.0 * s0
    if variance is not None:
        w2v = w * w
        w2v *= np.where(valid, variance, 0.0)
        flux_err = 2.0 * np.sqrt(w2v.sum(axis=(1, 2)))
        denom = np.where(s0 > 0, s0, np.nan)
        dx2 = (gx[0, 0][None, :] - xc[:, None]) ** 2
        dy2 = (gy[0, :, 0][None, :] - yc[:, None]) ** 2
        # windowed-centroid error (SExtractor's ERRX2WIN, whose factor 4 holds for a matched window)
        x_err = 2.0 * np.sqrt((w2v.sum(axis=1) * dx2).sum(axis=1)) / denom
        y_err = 2.0 * np.sqrt((w2v.sum(axis=2) * dy2).sum(axis=1)) / denom
    else:
        flux_err = x_err = y_err = np.full(n, np.nan)
    flag |= ~(s0 > 0)
    return AdaptiveMoments(xc, yc, x_err, y_err, cxx, cyy, cxy, flux, flux_err, flag, n_done)
