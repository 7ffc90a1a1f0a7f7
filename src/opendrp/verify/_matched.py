"""Association of single-visit sources into objects across visits (the matched catalog of the SRD metrics).

Rules (all angles on the sky, positions in degrees):

- Visits are taken in increasing visit id.  The sources of each visit are matched one-to-one, nearest pairs
  first (`opendrp.qa.match_catalogs`), to the running mean positions of the objects found so far, within
  ``match_radius_arcsec``; a source without a partner starts a new object.  The mean position of an object is
  the normalised sum of the unit vectors of its sources, updated after each visit.  One-to-one matching means
  an object has at most one source per visit; a second source of the same visit near an object becomes an
  object of its own.
- **Isolation** (as pipe_tasks' isolatedStarAssociation): an object whose mean position lies within
  ``isolation_arcsec`` of another object's is rejected together with that neighbour (close pairs, blends,
  split detections); its sources get group -1.
- Objects with fewer than ``min_sources`` sources are rejected (group -1).

Cost: one k-d tree query per visit against the current objects, O(N log N) over the N sources; memory O(N).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.spatial import cKDTree

from ..qa import match_catalogs, radec_to_unit_vectors

__all__ = [
    "associate_sources",
    "compress_ids",
    "group_mean_radec",
    "median_std_factor",
    "unit_vectors_to_radec",
]


def _chord(angle_arcsec: float) -> float:
    """Chord length on the unit sphere of an angle (arcsec)."""
    return float(2.0 * np.sin(np.radians(angle_arcsec / 3600.0) / 2.0))


def median_std_factor(n: NDArray[np.intp]) -> NDArray[np.float64]:
    """Median of the sample standard deviation (ddof=1) of ``n`` Gaussian draws of unit sigma."""
    dof = np.maximum(np.asarray(n) - 1, 1)
    return np.sqrt(stats.chi2.ppf(0.5, dof) / dof)


def compress_ids(group: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(unique group ids, index of each row into them)."""
    uniq, inv = np.unique(group, return_inverse=True)
    return uniq, inv.astype(np.intp)


def unit_vectors_to_radec(xyz: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Right ascension and declination (deg) of (not necessarily normalised) vectors, shape (N, 3)."""
    norm = np.linalg.norm(xyz, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.clip(xyz[:, 2] / norm, -1.0, 1.0)
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    return ra, np.degrees(np.arcsin(z))


def group_mean_radec(
    group: ArrayLike, ra: ArrayLike, dec: ArrayLike, *, n_groups: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """Mean position of each group (the direction of the sum of its unit vectors).

    Parameters
    ----------
    group : array_like of int
        Group index of each source, in ``[0, n_groups)``; negative indices are ignored.
    ra, dec : array_like
        Source positions (deg).
    n_groups : `int`
        Number of groups.

    Returns
    -------
    ra_mean, dec_mean : `numpy.ndarray`
        Mean positions (deg); NaN for empty groups.
    count : `numpy.ndarray` of int
        Number of sources of each group.
    """
    g = np.asarray(group, dtype=np.intp)
    xyz = radec_to_unit_vectors(ra, dec)
    use = (g >= 0) & np.all(np.isfinite(xyz), axis=1)
    sums = np.zeros((n_groups, 3))
    for k in range(3):
        sums[:, k] = np.bincount(g[use], weights=xyz[use, k], minlength=n_groups)
    count = np.bincount(g[use], minlength=n_groups).astype(np.intp)
    ra_m, dec_m = unit_vectors_to_radec(sums)
    ra_m[count == 0] = np.nan
    dec_m[count == 0] = np.nan
    return ra_m, dec_m, count


def associate_sources(
    ra: ArrayLike,
    dec: ArrayLike,
    visit: ArrayLike,
    *,
    match_radius_arcsec: float = 1.0,
    isolation_arcsec: float = 2.0,
    min_sources: int = 1,
) -> NDArray[np.intp]:
    """Group the sources of many visits into objects (rules in the module docstring).

    Parameters
    ----------
    ra, dec : array_like
        Source positions (deg); rows with non-finite positions get group -1.
    visit : array_like of int
        Visit id of each source.
    match_radius_arcsec : `float`
        Maximum distance of a source from an object's running mean position (arcsec).
    isolation_arcsec : `float`
        Objects closer than this to another object are rejected (arcsec); 0 disables the rule.
    min_sources : `int`
        Minimum number of sources of a kept object.

    Returns
    -------
    group : `numpy.ndarray` of int
        Object index of each source, ``0 .. n_objects - 1`` (consecutive), or -1 (rejected).
    """
    ra_a = np.asarray(ra, dtype=np.float64)
    dec_a = np.asarray(dec, dtype=np.float64)
    visit_a = np.asarray(visit)
    xyz = radec_to_unit_vectors(ra_a, dec_a)
    group = np.full(ra_a.size, -1, np.intp)
    good = np.all(np.isfinite(xyz), axis=1)
    sums = np.zeros((0, 3))
    for v in np.unique(visit_a[good]):
        rows = np.flatnonzero(good & (visit_a == v))
        if sums.shape[0]:
            obj_ra, obj_dec = unit_vectors_to_radec(sums)
            i_obj, i_src, _ = match_catalogs(
                obj_ra, obj_dec, ra_a[rows], dec_a[rows], radius_arcsec=match_radius_arcsec
            )
        else:
            i_obj = i_src = np.zeros(0, np.intp)
        new = np.ones(rows.size, bool)
        new[i_src] = False
        group[rows[i_src]] = i_obj
        group[rows[new]] = sums.shape[0] + np.arange(new.sum())
        sums = np.vstack([sums, np.zeros((int(new.sum()), 3))])
        np.add.at(sums, group[rows], xyz[rows])
    return _reject_and_renumber(group, sums, isolation_arcsec=isolation_arcsec, min_sources=min_sources)


def _reject_and_renumber(
    group: NDArray[np.intp], sums: NDArray[np.float64], *, isolation_arcsec: float, min_sources: int
) -> NDArray[np.intp]:
    """Apply the isolation and minimum-count rules, then number the kept objects consecutively."""
    n_obj = sums.shape[0]
    if n_obj == 0:
        return group
    keep = np.bincount(group[group >= 0], minlength=n_obj) >= min_sources
    if isolation_arcsec > 0 and n_obj > 1:
        unit = sums / np.linalg.norm(sums, axis=1)[:, None]
        pairs = cKDTree(unit).query_pairs(_chord(isolation_arcsec), output_type="ndarray")
        keep[pairs.ravel()] = False
    new_index = np.full(n_obj, -1, np.intp)
    new_index[keep] = np.arange(int(keep.sum()))
    out = np.full(group.size, -1, np.intp)
    assigned = group >= 0
    out[assigned] = new_index[group[assigned]]
    return out
