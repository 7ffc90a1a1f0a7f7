"""Astrometric repeatability AMx, ADx, AFx (LPM-17) from object pairs measured in common visits.

Rules (the definitions of ``docs/srd-metrics.md``), separations in mas:

- pairs of objects whose mean positions are ``D +- width / 2`` apart (D = 5, 20, 200 arcmin, width 2 arcmin,
  analysis_tools' ``CalcRelativeDistances``); in every visit where both are measured, the separation of the
  two sources (haversine); per pair the rms (ddof=1) of those separations, for pairs with >= 2 common
  visits; **AMx** = median of the pair rms, the unclipped mean beside it.
- **ADx** = the ``100 - AFx_design`` percentile of (pair rms - AMx); **AFx** = percentage of pairs whose rms
  exceeds AMx + ADx_design (validate_drp's rules).
- expected noise: per pair ``sqrt(mean(sigma_a^2 + sigma_b^2))`` over the common visits (sigma the per-axis
  position error), times the median of the sample standard deviation of ``n`` unit Gaussian draws (the
  small-sample factor of the estimator); its median is the expected AMx.
- cost: pair counts from a k-d tree (no enumeration); at most ``20 max_pairs`` pairs are enumerated (objects
  are thinned at random beyond) and at most ``max_pairs`` used (pairs drawn at random beyond), with a seeded
  generator: deterministic, and flagged ``subsampled``.  The per-visit expansion runs in slices of ~2e6
  source pairs (bounded memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from ..qa import radec_to_unit_vectors
from ._matched import compress_ids, group_mean_radec, median_std_factor

__all__ = [
    "AstrometricRepeatability",
    "astrometric_repeatability",
    "count_pairs_between",
    "field_diameter_arcmin",
    "separation_outliers",
]

_MAS_PER_RAD = np.degrees(1.0) * 3.6e6


@dataclass(frozen=True, eq=False)
class AstrometricRepeatability:
    """AMx, ADx, AFx of one band and annulus.

    Attributes
    ----------
    annulus_arcmin : `tuple` [`float`, `float`]
        Inner and outer separation of the pairs (arcmin).
    amx, amx_expected : `float`
        Median pair-separation rms and its expectation from the position errors (mas; NaN without errors).
    rms_mean : `float`
        Unclipped mean of the pair rms (mas).
    adx : `float`
        The ``100 - af_limit`` percentile of (pair rms - AMx) (mas).
    afx : `float`
        Percentage of pairs with rms > AMx + ``ad_limit`` (%).
    n_pairs, n_objects : `int`
        Pairs used and objects in them.
    n_pairs_annulus : `int`
        Object pairs in the annulus before any subsampling.
    subsampled : `bool`
        Whether pairs were subsampled (``n_pairs < n_pairs_annulus`` among pairs with common visits).
    pair_rms, pair_expected : `numpy.ndarray`
        Per pair rms and expected rms (mas) (for the plot).
    """

    annulus_arcmin: tuple[float, float]
    amx: float
    amx_expected: float
    rms_mean: float
    adx: float
    afx: float
    n_pairs: int
    n_objects: int
    n_pairs_annulus: int
    subsampled: bool
    pair_rms: NDArray[np.float64] = field(repr=False)
    pair_expected: NDArray[np.float64] = field(repr=False)


def separation_outliers(
    rms: ArrayLike, *, amx: float, ad_limit_mas: float, af_limit_percent: float
) -> tuple[float, float]:
    """ADx and AFx of a set of pair-separation rms values (validate_drp's rules).

    Parameters
    ----------
    rms : array_like
        Pair-separation rms values (mas).
    amx : `float`
        Their median (mas).
    ad_limit_mas : `float`
        ADx design value: AFx counts the pairs beyond ``amx + ad_limit_mas`` (mas).
    af_limit_percent : `float`
        AFx design value: ADx is the ``100 - af_limit_percent`` percentile of ``rms - amx`` (%).

    Returns
    -------
    adx, afx : `float`
        ADx (mas) and AFx (%).
    """
    a = np.asarray(rms, dtype=np.float64)
    adx = float(np.percentile(a - amx, 100.0 - af_limit_percent))
    afx = float(100.0 * np.mean(a > amx + ad_limit_mas))
    return adx, afx


def _chord(arcmin: float) -> float:
    return float(2.0 * np.sin(np.radians(arcmin / 60.0) / 2.0))


def _annulus_pairs(
    xyz: NDArray[np.float64], r_in: float, r_out: float, *, max_pairs: int, rng: np.random.Generator
) -> tuple[NDArray[np.intp], int]:
    """Object pairs (P, 2) with ``r_in < chord <= r_out``, subsampled to at most ``max_pairs``; and the
    number of pairs in the annulus before subsampling."""
    tree = cKDTree(xyz)
    counts = tree.count_neighbors(tree, np.array([r_in, r_out]))
    n_annulus = int((counts[1] - counts[0]) // 2)
    n_disc = int((counts[1] - len(xyz)) // 2)
    if n_annulus == 0:
        return np.zeros((0, 2), np.intp), 0
    # Enumerating the disc costs n_disc; keep it under ~20 max_pairs by thinning the objects.
    subset = np.arange(len(xyz))
    if n_disc > 20 * max_pairs:
        frac = np.sqrt(20.0 * max_pairs / n_disc)
        subset = np.flatnonzero(rng.random(len(xyz)) < frac)
        tree = cKDTree(xyz[subset])
    pairs = tree.query_pairs(r_out, output_type="ndarray").astype(np.intp)
    d = np.linalg.norm(xyz[subset[pairs[:, 0]]] - xyz[subset[pairs[:, 1]]], axis=1)
    pairs = subset[pairs[d > r_in]]
    if len(pairs) > max_pairs:
        pairs = pairs[np.sort(rng.choice(len(pairs), max_pairs, replace=False))]
    return pairs, n_annulus


def _haversine(
    ra1: NDArray[np.float64], dec1: NDArray[np.float64], ra2: NDArray[np.float64], dec2: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Angular distance (rad) of positions in degrees (haversine: exact at small angles)."""
    r1, d1, r2, d2 = (np.radians(a) for a in (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return 2.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class _Sources:
    """Sources sorted by (object, visit) (``key = object * n_visit_codes + visit code``), with the first row
    and the number of rows of each object."""

    key: NDArray[np.int64]
    ra: NDArray[np.float64]
    dec: NDArray[np.float64]
    var: NDArray[np.float64]
    start: NDArray[np.intp]
    count: NDArray[np.intp]
    n_visit_codes: int


def _sorted_sources(
    obj: NDArray[np.intp],
    visit: NDArray[Any],
    ra: NDArray[np.float64],
    dec: NDArray[np.float64],
    var: NDArray[np.float64],
) -> _Sources:
    """The sources sorted by (object, visit); ``obj`` are consecutive object indices."""
    _, vcode = compress_ids(visit)
    n_v = int(vcode.max()) + 1
    key = obj.astype(np.int64) * n_v + vcode
    order = np.argsort(key, kind="stable")
    count = np.bincount(obj).astype(np.intp)
    start = (np.cumsum(count) - count).astype(np.intp)
    return _Sources(key[order], ra[order], dec[order], var[order], start, count, n_v)


def _chunk_edges(weights: NDArray[np.intp], chunk: int) -> NDArray[np.intp]:
    """Edges splitting consecutive items so that each slice's total weight is about ``chunk``."""
    cum = np.cumsum(weights)
    n_chunks = int(np.ceil(cum[-1] / chunk)) if len(cum) and cum[-1] > 0 else 1
    cuts = np.searchsorted(cum, np.arange(1, n_chunks) * chunk)
    return np.unique(np.concatenate([[0], cuts, [len(weights)]])).astype(np.intp)


def _pair_separation_stats(
    s: _Sources, pairs: NDArray[np.intp], *, chunk: int = 2_000_000
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """Per pair: rms (mas, ddof=1) of the per-visit separations, mean summed position variance (mas^2), and
    number of common visits; processed in slices of ~``chunk`` source pairs (bounded memory)."""
    n_p = len(pairs)
    s1, s2, sv = np.zeros(n_p), np.zeros(n_p), np.zeros(n_p)
    nn = np.zeros(n_p, np.intp)
    edges = _chunk_edges(s.count[pairs[:, 0]], chunk)
    for lo, hi in zip(edges[:-1], edges[1:]):
        a, b = pairs[lo:hi, 0], pairs[lo:hi, 1]
        m = hi - lo
        rep = np.repeat(np.arange(m), s.count[a])
        offset = np.arange(rep.size) - np.repeat(np.cumsum(s.count[a]) - s.count[a], s.count[a])
        src_a = s.start[a][rep] + offset
        key_b = b[rep].astype(np.int64) * s.n_visit_codes + s.key[src_a] % s.n_visit_codes
        pos = np.minimum(np.searchsorted(s.key, key_b), len(s.key) - 1)
        found = s.key[pos] == key_b
        src_a, src_b, rep = src_a[found], pos[found], rep[found]
        sep = _haversine(s.ra[src_a], s.dec[src_a], s.ra[src_b], s.dec[src_b]) * _MAS_PER_RAD
        # Deviations from the pair's first separation: no cancellation in the variance.
        ref = np.zeros(m)
        idx, first = np.unique(rep, return_index=True)
        ref[idx] = sep[first]
        dev = sep - ref[rep]
        s1[lo:hi] = np.bincount(rep, weights=dev, minlength=m)
        s2[lo:hi] = np.bincount(rep, weights=dev**2, minlength=m)
        sv[lo:hi] = np.bincount(rep, weights=s.var[src_a] + s.var[src_b], minlength=m)
        nn[lo:hi] = np.bincount(rep, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.maximum(s2 - s1**2 / nn, 0.0) / (nn - 1))
        mean_var = sv / nn
    return rms, mean_var, nn


def astrometric_repeatability(
    group: ArrayLike,
    visit: ArrayLike,
    ra: ArrayLike,
    dec: ArrayLike,
    *,
    annulus_arcmin: float,
    width_arcmin: float = 2.0,
    pos_err_mas: ArrayLike | None = None,
    ad_limit_mas: float = 20.0,
    af_limit_percent: float = 10.0,
    min_pairs: int = 1,
    max_pairs: int = 200_000,
    seed: int = 0,
) -> AstrometricRepeatability | None:
    """AMx, ADx, AFx from the separations of object pairs measured in common visits (module docstring).

    Parameters
    ----------
    group : array_like of int
        Object of each source (one source per object and visit).
    visit : array_like of int
        Visit of each source.
    ra, dec : array_like
        Source positions (deg).
    annulus_arcmin : `float`
        Separation D of the pairs (arcmin); pairs ``D +- width_arcmin / 2`` apart are used.
    width_arcmin : `float`
        Width of the annulus (arcmin).
    pos_err_mas : array_like, optional
        Per-axis position error of each source (mas), for the expected AMx.
    ad_limit_mas, af_limit_percent : `float`
        ADx and AFx design values (mas, %) that AFx and ADx are measured against.
    min_pairs : `int`
        Fewest pairs with >= 2 common visits for a result.
    max_pairs : `int`
        Most pairs used (deterministic subsample beyond).
    seed : `int`
        Seed of the subsampling.

    Returns
    -------
    result : `AstrometricRepeatability` or `None`
        None when fewer than ``min_pairs`` pairs have two common visits.
    """
    ra_a = np.asarray(ra, dtype=np.float64)
    dec_a = np.asarray(dec, dtype=np.float64)
    err = np.full(ra_a.size, np.nan) if pos_err_mas is None else np.asarray(pos_err_mas, dtype=np.float64)
    ok = np.isfinite(ra_a) & np.isfinite(dec_a)
    if ok.sum() < 4:
        return None
    _, obj = compress_ids(np.asarray(group)[ok])
    ra_a, dec_a, err = ra_a[ok], dec_a[ok], err[ok]
    n_obj = int(obj.max()) + 1
    ra_m, dec_m, _ = group_mean_radec(obj, ra_a, dec_a, n_groups=n_obj)
    half = width_arcmin / 2.0
    rng = np.random.default_rng(seed)
    pairs, n_annulus = _annulus_pairs(
        radec_to_unit_vectors(ra_m, dec_m),
        _chord(max(annulus_arcmin - half, 0.0)),
        _chord(annulus_arcmin + half),
        max_pairs=max_pairs,
        rng=rng,
    )
    if len(pairs) == 0:
        return None
    src = _sorted_sources(obj, np.asarray(visit)[ok], ra_a, dec_a, err**2)
    rms, mean_var, nn = _pair_separation_stats(src, pairs)
    good = nn >= 2
    if good.sum() < max(min_pairs, 1):
        return None
    rms, nn, pairs = rms[good], nn[good], pairs[good]
    expected = np.sqrt(mean_var[good]) * median_std_factor(nn)
    amx = float(np.median(rms))
    adx, afx = separation_outliers(rms, amx=amx, ad_limit_mas=ad_limit_mas, af_limit_percent=af_limit_percent)
    return AstrometricRepeatability(
        annulus_arcmin=(annulus_arcmin - half, annulus_arcmin + half),
        amx=amx,
        amx_expected=float(np.median(expected)) if np.all(np.isfinite(expected)) else float("nan"),
        rms_mean=float(np.mean(rms)),
        adx=adx,
        afx=afx,
        n_pairs=int(rms.size),
        n_objects=int(np.unique(pairs).size),
        n_pairs_annulus=n_annulus,
        subsampled=bool(len(good) < n_annulus),
        pair_rms=rms,
        pair_expected=expected,
    )


def count_pairs_between(ra: ArrayLike, dec: ArrayLike, *, min_arcmin: float, max_arcmin: float) -> int:
    """Number of pairs of positions (deg) more than ``min_arcmin`` and at most ``max_arcmin`` apart."""
    xyz = radec_to_unit_vectors(ra, dec)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
    if len(xyz) < 2:
        return 0
    tree = cKDTree(xyz)
    counts = tree.count_neighbors(tree, np.array([_chord(min_arcmin), _chord(max_arcmin)]))
    return int((counts[1] - counts[0]) // 2)


def field_diameter_arcmin(ra: ArrayLike, dec: ArrayLike) -> float:
    """Approximate largest separation of a set of positions (arcmin): farthest point from the centre, then
    the farthest point from that one (within a factor sqrt(3)/2 of the true diameter, exact for a disc)."""
    xyz = radec_to_unit_vectors(ra, dec)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
    if len(xyz) < 2:
        return 0.0
    centre = xyz.mean(axis=0)
    a = xyz[np.argmax(np.linalg.norm(xyz - centre, axis=1))]
    chord = float(np.max(np.linalg.norm(xyz - a, axis=1)))
    return float(np.degrees(2.0 * np.arcsin(min(chord / 2.0, 1.0))) * 60.0)
