"""One-to-one nearest-neighbour matching of two catalogs on the sphere."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

__all__ = ["match_catalogs", "radec_to_unit_vectors"]


def radec_to_unit_vectors(ra: ArrayLike, dec: ArrayLike) -> NDArray[np.float64]:
    """Convert sky coordinates to unit vectors.

    Parameters
    ----------
    ra, dec : array_like
        Right ascension and declination (deg).

    Returns
    -------
    xyz : `numpy.ndarray`, shape (N, 3)
        Cartesian unit vectors.
    """
    ra_rad = np.radians(np.asarray(ra, dtype=np.float64))
    dec_rad = np.radians(np.asarray(dec, dtype=np.float64))
    cos_dec = np.cos(dec_rad)
    return np.column_stack([cos_dec * np.cos(ra_rad), cos_dec * np.sin(ra_rad), np.sin(dec_rad)])


def match_catalogs(
    ra1: ArrayLike,
    dec1: ArrayLike,
    ra2: ArrayLike,
    dec2: ArrayLike,
    *,
    radius_arcsec: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Match two catalogs one-to-one, nearest pairs first.

    All pairs closer than ``radius_arcsec`` are found with a k-d tree on unit vectors; pairs are then
    accepted in order of increasing separation, skipping any pair whose member in either catalog is
    already used (the "greedy global nearest-first" rule). The result is identical to that greedy loop
    but vectorised: at each round every mutually-nearest remaining pair is accepted.

    Rows with non-finite coordinates never match.

    Parameters
    ----------
    ra1, dec1 : array_like
        Coordinates of the first catalog (deg).
    ra2, dec2 : array_like
        Coordinates of the second catalog (deg).
    radius_arcsec : `float`
        Maximum separation of a match (arcsec).

    Returns
    -------
    idx1, idx2 : `numpy.ndarray` of int
        Indices of matched rows in catalogs 1 and 2, sorted by ``idx1``; each row appears at most once.
    sep_arcsec : `numpy.ndarray` of float
        Separations of the matched pairs (arcsec).
    """
    if not radius_arcsec > 0:
        raise ValueError(f"radius_arcsec must be > 0, got {radius_arcsec}")
    xyz1 = radec_to_unit_vectors(ra1, dec1)
    xyz2 = radec_to_unit_vectors(ra2, dec2)
    empty = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64))
    good1 = np.flatnonzero(np.all(np.isfinite(xyz1), axis=1))
    good2 = np.flatnonzero(np.all(np.isfinite(xyz2), axis=1))
    if good1.size == 0 or good2.size == 0:
        return empty
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    tree1 = cKDTree(xyz1[good1])
    tree2 = cKDTree(xyz2[good2])
    pairs = tree1.sparse_distance_matrix(tree2, max_distance=chord, output_type="ndarray")
    if len(pairs) == 0:
        return empty
    i = good1[pairs["i"]].astype(np.intp)
    j = good2[pairs["j"]].astype(np.intp)
    d = np.asarray(pairs["v"], dtype=np.float64)
    # Deterministic order: by distance, then by indices (ties).
    order = np.lexsort((j, i, d))
    i, j, d = i[order], j[order], d[order]

    acc_i: list[NDArray[np.intp]] = []
    acc_j: list[NDArray[np.intp]] = []
    acc_d: list[NDArray[np.float64]] = []
    while i.size:
        # Pairs are sorted by distance, so the first occurrence of an index is its nearest partner.
        first_i = np.zeros(i.size, bool)
        first_i[np.unique(i, return_index=True)[1]] = True
        first_j = np.zeros(j.size, bool)
        first_j[np.unique(j, return_index=True)[1]] = True
        mutual = first_i & first_j
        acc_i.append(i[mutual])
        acc_j.append(j[mutual])
        acc_d.append(d[mutual])
        keep = ~np.isin(i, i[mutual]) & ~np.isin(j, j[mutual])
        i, j, d = i[keep], j[keep], d[keep]

    idx1 = np.concatenate(acc_i)
    idx2 = np.concatenate(acc_j)
    dist = np.concatenate(acc_d)
    order = np.argsort(idx1, kind="stable")
    sep_arcsec = np.degrees(2.0 * np.arcsin(np.clip(dist[order] / 2.0, 0.0, 1.0))) * 3600.0
    return idx1[order], idx2[order], sep_arcsec
