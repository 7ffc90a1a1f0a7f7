"""Residual ellipticity correlations TE1, TE2 (LPM-17) of stars: star moments minus PSF-model moments.

Rules (the definitions of ``docs/srd-metrics.md``), all dimensionless:

- ellipticity ``e = (Ixx - Iyy + 2i Ixy) / (Ixx + Iyy + 2 sqrt(Ixx Iyy - Ixy^2))`` of the star (``ixx``...)
  and of the PSF model (``ixxPSF``...) (validate_drp's definition); per object the median over visits of
  ``e_star - e_psf`` per component (the caller's job).
- ``xi_+(theta) = <e1_i e1_j + e2_i e2_j>`` over object pairs in 20 logarithmic bins 0.25-20 arcmin (faro's
  TEx binning), from weighted pair counts on a k-d tree of unit vectors (``cKDTree.count_neighbors`` with
  weights: O(N log N), no pair enumeration); **TE1** = mean of ``xi_+`` over the bins centred at <= 1
  arcmin, **TE2** over the bins centred at >= 5 arcmin (faro's ``select_bin_from_corr``).
- the shape-noise error of a bin is ``sqrt(2) sigma_e^2 / sqrt(n_pairs)`` (sigma_e the rms per component of
  the residuals, pairs independent), that of TE the quadrature mean over its bins: the value noise alone
  gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from ..qa import radec_to_unit_vectors

__all__ = [
    "TE_BIN_EDGES_ARCMIN",
    "EllipticityCorrelation",
    "ellipticity_correlation",
    "shear_ellipticity",
    "te_value",
]

#: Bin edges of the ellipticity correlation (arcmin), as faro's TEx.
TE_BIN_EDGES_ARCMIN = np.geomspace(0.25, 20.0, 21)


def shear_ellipticity(
    ixx: ArrayLike, iyy: ArrayLike, ixy: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ellipticity ``(e1, e2)`` of second moments, ``|e| = (1 - q) / (1 + q)`` (validate_drp's definition).

    Parameters
    ----------
    ixx, iyy, ixy : array_like
        Second moments (any consistent unit, e.g. pixel^2).

    Returns
    -------
    e1, e2 : `numpy.ndarray`
        ``(Ixx - Iyy) / D`` and ``2 Ixy / D`` with ``D = Ixx + Iyy + 2 sqrt(Ixx Iyy - Ixy^2)``; NaN where the
        moments are not a positive-definite matrix.
    """
    xx = np.asarray(ixx, dtype=np.float64)
    yy = np.asarray(iyy, dtype=np.float64)
    xy = np.asarray(ixy, dtype=np.float64)
    det = xx * yy - xy**2
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where((det > 0) & (xx > 0) & (yy > 0), xx + yy + 2.0 * np.sqrt(det), np.nan)
        return (xx - yy) / denom, 2.0 * xy / denom


@dataclass(frozen=True, eq=False)
class EllipticityCorrelation:
    """The residual-ellipticity correlation ``xi_+`` in bins of separation.

    Attributes
    ----------
    bin_edges, bin_centres : `numpy.ndarray`
        Bin edges and geometric centres (arcmin).
    xip, xip_err : `numpy.ndarray`
        ``xi_+`` per bin and its shape-noise error (dimensionless; NaN for empty bins).
    n_pairs : `numpy.ndarray` of int
        Object pairs per bin.
    n_objects : `int`
    sigma_e : `float`
        rms per component of the residual ellipticities.
    """

    bin_edges: NDArray[np.float64]
    bin_centres: NDArray[np.float64]
    xip: NDArray[np.float64]
    xip_err: NDArray[np.float64]
    n_pairs: NDArray[np.intp]
    n_objects: int
    sigma_e: float


def ellipticity_correlation(
    ra: ArrayLike,
    dec: ArrayLike,
    e1: ArrayLike,
    e2: ArrayLike,
    *,
    bin_edges_arcmin: ArrayLike = TE_BIN_EDGES_ARCMIN,
) -> EllipticityCorrelation:
    """``xi_+(theta) = <e1_i e1_j + e2_i e2_j>`` over pairs of objects, in bins of separation.

    Parameters
    ----------
    ra, dec : array_like
        Object positions (deg).
    e1, e2 : array_like
        Residual ellipticity of each object (dimensionless); rows with NaN are dropped.
    bin_edges_arcmin : array_like
        Increasing bin edges, the first > 0 (arcmin).

    Returns
    -------
    corr : `EllipticityCorrelation`
    """
    edges = np.asarray(bin_edges_arcmin, dtype=np.float64)
    xyz = radec_to_unit_vectors(ra, dec)
    w1 = np.asarray(e1, dtype=np.float64)
    w2 = np.asarray(e2, dtype=np.float64)
    ok = np.all(np.isfinite(xyz), axis=1) & np.isfinite(w1) & np.isfinite(w2)
    xyz, w1, w2 = xyz[ok], w1[ok], w2[ok]
    centres = np.sqrt(edges[1:] * edges[:-1])
    nan = np.full(centres.size, np.nan)
    if len(xyz) < 2:
        return EllipticityCorrelation(
            edges, centres, nan, nan, np.zeros(centres.size, np.intp), len(xyz), np.nan
        )
    tree = cKDTree(xyz)
    r = 2.0 * np.sin(np.radians(edges / 60.0) / 2.0)
    # Cumulative over ordered pairs (self-pairs at distance 0 cancel in the differences: edges > 0).
    n = np.diff(tree.count_neighbors(tree, r)).astype(np.float64)
    s = np.diff(
        tree.count_neighbors(tree, r, weights=(w1, w1)) + tree.count_neighbors(tree, r, weights=(w2, w2))
    )
    sigma2 = float(np.mean(w1**2 + w2**2) / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xip = np.where(n > 0, s / n, np.nan)
        err = np.where(n > 0, np.sqrt(2.0) * sigma2 / np.sqrt(n / 2.0), np.nan)
    return EllipticityCorrelation(
        edges, centres, xip, err, (n // 2).astype(np.intp), int(len(xyz)), float(np.sqrt(sigma2))
    )


def te_value(
    corr: EllipticityCorrelation, *, max_arcmin: float | None = None, min_arcmin: float | None = None
) -> tuple[float, float, int]:
    """Mean of ``xi_+`` over the non-empty bins centred at <= ``max_arcmin`` or >= ``min_arcmin``.

    Returns
    -------
    value, error, n_pairs : `float`, `float`, `int`
        The TE value, its shape-noise error (bins independent) and the pairs in those bins (NaN, NaN, 0
        when no bin has pairs).
    """
    sel = corr.n_pairs > 0
    if max_arcmin is not None:
        sel &= corr.bin_centres <= max_arcmin
    if min_arcmin is not None:
        sel &= corr.bin_centres >= min_arcmin
    if not sel.any():
        return float("nan"), float("nan"), 0
    k = int(sel.sum())
    err = float(np.sqrt(np.sum(corr.xip_err[sel] ** 2)) / k)
    return float(np.mean(corr.xip[sel])), err, int(corr.n_pairs[sel].sum())
