"""Selection of bright, isolated, unsaturated point sources for PSF modelling (size-locus clipping)."""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

__all__ = ["select_psf_stars", "stellar_size_locus"]


def stellar_size_locus(
    size: np.ndarray, *, bin_dex: float = 0.02, min_size: float = 0.25
) -> tuple[float, float]:
    """Centre and robust width of the stellar locus in ``log10(size)``.

    Stars share the PSF size, the smallest common size of the bright sources: the locus is the peak of the
    histogram of ``log10(size)`` (sizes below ``min_size`` pixels**2, e.g. cosmic rays, are ignored), refined
    by clipping.

    Returns
    -------
    centre, width : `float`
        In dex.
    """
    s = np.asarray(size, float)
    logs = np.log10(s[np.isfinite(s) & (s > min_size)])
    if logs.size == 0:
        return float("nan"), float("nan")
    if logs.size < 5:
        return float(np.median(logs)), 0.05
    lo, hi = np.percentile(logs, [0.5, 99.5])
    nb = max(3, int(np.ceil((hi - lo) / bin_dex)))
    hist, edges = np.histogram(logs, bins=nb, range=(lo, hi + 1e-9))
    smooth = np.convolve(hist, [1, 2, 3, 2, 1], mode="same")
    k = int(np.argmax(smooth))
    centre = 0.5 * (edges[k] + edges[k + 1])
    width = 0.05
    for _ in range(5):
        near = logs[np.abs(logs - centre) < 3 * width]
        if near.size < 3:
            break
        centre = float(np.median(near))
        width = max(1.4826 * float(np.median(np.abs(near - centre))), 0.005)
    return float(centre), float(width)


def select_psf_stars(
    src: Table,
    *,
    flux_column: str = "gaussianFlux",
    min_snr: float = 50.0,
    max_stars: int = 400,
    size_clip: float = 3.0,
    max_size_dex: float = 0.1,
    isolation_radius: float = 12.0,
    neighbour_flux_ratio: float = 0.02,
    shape: tuple[int, int] | None = None,
    edge_margin: float = 13.0,
) -> np.ndarray:
    """Choose PSF stars: high S/N, clean pixels, isolated, on the stellar size locus.

    Parameters
    ----------
    src : `astropy.table.Table`
        Measurements with ``x``, ``y``, ``ixx``, ``iyy``, ``shape_flag``, ``centroid_flag``, ``pixelFlags_*``,
        ``flux_column`` and its ``Err``; optional ``deblended`` (bool).
    min_snr : `float`
        Minimum S/N of ``flux_column``.
    max_stars : `int`
        Keep at most this many (the brightest).
    size_clip : `float`
        Half-width of the accepted locus in robust standard deviations of ``log10(ixx + iyy)``...
    max_size_dex : `float`
        ...but never wider than this (dex).
    isolation_radius : `float`
        A star with a detected neighbour within this radius (pixels) brighter than ``neighbour_flux_ratio``
        times its own flux is rejected.
    shape : `tuple`, optional
        Image shape; stars closer than ``edge_margin`` pixels to an edge are rejected.

    Returns
    -------
    selected : `numpy.ndarray` [bool]
    """
    n = len(src)
    if n == 0:
        return np.zeros(0, bool)
    flux = np.asarray(src[flux_column], float)
    err = np.asarray(src[flux_column + "Err"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / err
    ok = np.isfinite(snr) & (snr > min_snr)
    for col in (
        "shape_flag",
        "centroid_flag",
        "pixelFlags_saturated",
        "pixelFlags_edge",
        "pixelFlags_bad",
        "pixelFlags_cr",
        "pixelFlags_suspect",
        "pixelFlags_interpolated",
        "deblended",
    ):
        if col in src.colnames:
            ok &= ~np.asarray(src[col], bool)
    x, y = np.asarray(src["x"], float), np.asarray(src["y"], float)
    if shape is not None:
        ny, nx = shape
        ok &= (x > edge_margin) & (y > edge_margin) & (x < nx - 1 - edge_margin) & (y < ny - 1 - edge_margin)
    # isolation
    tree = cKDTree(np.c_[x, y])
    pairs = tree.query_pairs(isolation_radius, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        fi, fj = np.abs(flux[i]), np.abs(flux[j])
        crowded = np.zeros(n, bool)
        np.logical_or.at(crowded, i, fj > neighbour_flux_ratio * fi)
        np.logical_or.at(crowded, j, fi > neighbour_flux_ratio * fj)
        ok &= ~crowded
    size = np.asarray(src["ixx"], float) + np.asarray(src["iyy"], float)
    if ok.sum() == 0:
        return ok
    centre, width = stellar_size_locus(size[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        dlog = np.abs(np.log10(size) - centre)
    ok &= dlog < min(size_clip * width, max_size_dex)
    if ok.sum() > max_stars:
        order = np.argsort(-np.where(ok, snr, -np.inf))
        keep = np.zeros(n, bool)
        keep[order[:max_stars]] = True
        ok &= keep
    return ok
