"""QA metrics as plain functions on arrays: completeness, photometry, astrometry, star/galaxy separation.

Every function takes matched arrays (the caller selects the rows) and returns a small frozen dataclass.
Statistics ignore non-finite values; an empty selection gives NaN values and a count of 0, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._stats import robust_scatter, sky_offsets_mas

__all__ = [
    "AstrometryStats",
    "CompletenessCurve",
    "PhotometryStats",
    "StarGalaxyStats",
    "astrometry_stats",
    "completeness_curve",
    "completeness_limit",
    "magnitude_bins",
    "photometry_stats",
    "star_galaxy_stats",
]


@dataclass(frozen=True)
class CompletenessCurve:
    """Completeness in bins of true magnitude.

    Attributes
    ----------
    bin_edges : `numpy.ndarray`
        Bin edges (mag), length ``nbins + 1``.
    n_truth : `numpy.ndarray`
        Number of truth sources per bin (within the footprint).
    n_matched : `numpy.ndarray`
        Number of those matched to a primary object.
    completeness : `numpy.ndarray`
        ``n_matched / n_truth`` (fraction); NaN for empty bins.
    """

    bin_edges: NDArray[np.float64]
    n_truth: NDArray[np.int64]
    n_matched: NDArray[np.int64]
    completeness: NDArray[np.float64]

    @property
    def bin_centers(self) -> NDArray[np.float64]:
        """Bin centres (mag)."""
        return 0.5 * (self.bin_edges[1:] + self.bin_edges[:-1])


@dataclass(frozen=True)
class PhotometryStats:
    """Flux residuals of matched sources against reference fluxes.

    Attributes
    ----------
    n : `int`
        Number of sources used.
    offset_median : `float`
        Median fractional offset ``(flux - flux_ref) / flux_ref`` (fraction).
    offset_scatter : `float`
        Robust scatter (1.4826 MAD) of the fractional offset (fraction).
    normalized_median : `float`
        Median of ``(flux - flux_ref) / flux_err`` (sigma).
    normalized_scatter : `float`
        Robust scatter of ``(flux - flux_ref) / flux_err`` (sigma); 1 if the errors are right and the
        reference is exact.
    mag_offset_median : `float`
        Median of ``mag - mag_ref`` (mmag).
    """

    n: int
    offset_median: float
    offset_scatter: float
    normalized_median: float
    normalized_scatter: float
    mag_offset_median: float


@dataclass(frozen=True)
class AstrometryStats:
    """Position residuals of matched sources against reference positions.

    The coordinate scatter is the 1-D rms-equivalent scatter
    ``sqrt((dra_scatter**2 + ddec_scatter**2) / 2)``, the quadrature mean of the robust scatters of the
    two axes: for isotropic Gaussian errors of sigma per axis it equals sigma (the radial rms is sqrt(2)
    times it).

    Attributes
    ----------
    n : `int`
        Number of sources used.
    dra_median, ddec_median : `float`
        Median offsets in RA cos(Dec) and Dec (mas).
    dra_scatter, ddec_scatter : `float`
        Robust scatter of the offsets per axis (mas).
    coord_scatter : `float`
        Quadrature mean of the two per-axis scatters (mas).
    """

    n: int
    dra_median: float
    ddec_median: float
    dra_scatter: float
    ddec_scatter: float
    coord_scatter: float


@dataclass(frozen=True)
class StarGalaxyStats:
    """Star/galaxy classification success against the truth.

    Attributes
    ----------
    n_star, n_galaxy : `int`
        True stars / galaxies used (classification finite).
    star_fraction_correct : `float`
        Fraction of true stars classified as point-like (refExtendedness == 0).
    galaxy_fraction_correct : `float`
        Fraction of true galaxies classified as extended (refExtendedness == 1).
    """

    n_star: int
    n_galaxy: int
    star_fraction_correct: float
    galaxy_fraction_correct: float


def magnitude_bins(
    mags: ArrayLike, *, width: float = 0.5, mag_range: tuple[float, float] | None = None
) -> NDArray[np.float64]:
    """Edges of magnitude bins of a given width.

    Parameters
    ----------
    mags : array_like
        Magnitudes (mag) used to choose the range when ``mag_range`` is None.
    width : `float`
        Bin width (mag).
    mag_range : `tuple` of `float`, optional
        (bright, faint) limits (mag); by default the finite range of ``mags`` rounded outwards to ``width``.

    Returns
    -------
    edges : `numpy.ndarray`
        Bin edges (mag); a single bin around 0 if there are no finite magnitudes.
    """
    if mag_range is None:
        m = np.asarray(mags, dtype=np.float64)
        m = m[np.isfinite(m)]
        if m.size == 0:
            return np.array([0.0, width])
        lo = np.floor(m.min() / width) * width
        hi = np.floor(m.max() / width) * width + width
    else:
        lo, hi = mag_range
    n = max(1, int(round((hi - lo) / width)))
    return lo + width * np.arange(n + 1)


def completeness_curve(mag_true: ArrayLike, matched: ArrayLike, *, bin_edges: ArrayLike) -> CompletenessCurve:
    """Fraction of truth sources matched, in bins of true magnitude.

    Parameters
    ----------
    mag_true : array_like
        True magnitudes (mag) of the truth sources to count (already restricted to the footprint and to one
        class); non-finite values are ignored.
    matched : array_like of bool
        Whether each truth source is matched to a primary object.
    bin_edges : array_like
        Magnitude bin edges (mag), increasing.

    Returns
    -------
    curve : `CompletenessCurve`
    """
    m = np.asarray(mag_true, dtype=np.float64)
    ok = np.asarray(matched, dtype=bool)
    edges = np.asarray(bin_edges, dtype=np.float64)
    fin = np.isfinite(m)
    n_truth = np.histogram(m[fin], bins=edges)[0].astype(np.int64)
    n_matched = np.histogram(m[fin & ok], bins=edges)[0].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        comp = np.where(n_truth > 0, n_matched / np.maximum(n_truth, 1), np.nan)
    return CompletenessCurve(edges, n_truth, n_matched, comp)


def completeness_limit(curve: CompletenessCurve, *, level: float, min_count: int = 5) -> float:
    """Magnitude at which completeness first falls below ``level``, scanning from bright to faint.

    Bins with fewer than ``min_count`` truth sources are skipped. The limit is linearly interpolated in
    completeness between the centre of the last bin at or above ``level`` and the first bin below it.

    Parameters
    ----------
    curve : `CompletenessCurve`
        Completeness curve.
    level : `float`
        Completeness level (fraction), e.g. 0.5 or 0.9.
    min_count : `int`
        Minimum number of truth sources for a bin to be used.

    Returns
    -------
    mag : `float`
        Limiting magnitude (mag). NaN if completeness never reaches ``level`` in a used bin, and also NaN if
        it never falls below ``level`` (the limit is fainter than the faintest bin).
    """
    use = curve.n_truth >= min_count
    x = curve.bin_centers[use]
    c = curve.completeness[use]
    above = np.flatnonzero(c >= level)
    if above.size == 0:
        return float("nan")
    below = np.flatnonzero((c < level) & (np.arange(c.size) > above[0]))
    if below.size == 0:
        return float("nan")
    k = below[0]
    x0, x1, c0, c1 = x[k - 1], x[k], c[k - 1], c[k]
    return float(x0 + (x1 - x0) * (c0 - level) / (c0 - c1))


def photometry_stats(flux: ArrayLike, flux_err: ArrayLike, flux_ref: ArrayLike) -> PhotometryStats:
    """Offset and scatter of measured fluxes against reference (true) fluxes.

    Parameters
    ----------
    flux, flux_err : array_like
        Measured flux and its error (nJy) of the selected sources.
    flux_ref : array_like
        Reference flux (nJy) of the same sources.

    Returns
    -------
    stats : `PhotometryStats`
        Rows with non-finite values or non-positive reference flux or error are dropped.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    r = np.asarray(flux_ref, dtype=np.float64)
    ok = np.isfinite(f) & np.isfinite(e) & np.isfinite(r) & (r > 0) & (e > 0)
    f, e, r = f[ok], e[ok], r[ok]
    if f.size == 0:
        nan = float("nan")
        return PhotometryStats(0, nan, nan, nan, nan, nan)
    frac = (f - r) / r
    norm = (f - r) / e
    with np.errstate(invalid="ignore", divide="ignore"):
        dmag = -2.5 * np.log10(f / r) * 1000.0
    return PhotometryStats(
        n=int(f.size),
        offset_median=float(np.median(frac)),
        offset_scatter=robust_scatter(frac),
        normalized_median=float(np.median(norm)),
        normalized_scatter=robust_scatter(norm),
        mag_offset_median=float(np.nanmedian(dmag)) if np.isfinite(dmag).any() else float("nan"),
    )


def astrometry_stats(ra: ArrayLike, dec: ArrayLike, ra_ref: ArrayLike, dec_ref: ArrayLike) -> AstrometryStats:
    """Offset and scatter of measured positions against reference positions.

    Parameters
    ----------
    ra, dec : array_like
        Measured positions (deg) of the selected sources.
    ra_ref, dec_ref : array_like
        Reference positions (deg) of the same sources.

    Returns
    -------
    stats : `AstrometryStats`
        Offsets in mas; see `AstrometryStats` for the definition of the coordinate scatter.
    """
    dra, ddec = sky_offsets_mas(ra, dec, ra_ref, dec_ref)
    ok = np.isfinite(dra) & np.isfinite(ddec)
    dra, ddec = dra[ok], ddec[ok]
    if dra.size == 0:
        nan = float("nan")
        return AstrometryStats(0, nan, nan, nan, nan, nan)
    s_ra = robust_scatter(dra)
    s_dec = robust_scatter(ddec)
    return AstrometryStats(
        n=int(dra.size),
        dra_median=float(np.median(dra)),
        ddec_median=float(np.median(ddec)),
        dra_scatter=s_ra,
        ddec_scatter=s_dec,
        coord_scatter=float(np.sqrt(0.5 * (s_ra**2 + s_dec**2))),
    )


def star_galaxy_stats(is_star: ArrayLike, extendedness: ArrayLike) -> StarGalaxyStats:
    """Fractions of true stars classified point-like and of true galaxies classified extended.

    Parameters
    ----------
    is_star : array_like of bool
        Truth class of the selected matched sources.
    extendedness : array_like
        Measured ``refExtendedness`` (0 point-like, 1 extended; values >= 0.5 count as extended);
        NaN rows are ignored.

    Returns
    -------
    stats : `StarGalaxyStats`
    """
    star = np.asarray(is_star, dtype=bool)
    ext = np.asarray(extendedness, dtype=np.float64)
    fin = np.isfinite(ext)
    s = star & fin
    g = ~star & fin
    n_s, n_g = int(s.sum()), int(g.sum())
    return StarGalaxyStats(
        n_star=n_s,
        n_galaxy=n_g,
        star_fraction_correct=float(np.mean(ext[s] < 0.5)) if n_s else float("nan"),
        galaxy_fraction_correct=float(np.mean(ext[g] >= 0.5)) if n_g else float("nan"),
    )
