"""Catalog statistics of the DRP-00-15 / DRP-00-25 checks: plain functions on numpy arrays.

Rules and units (every function ignores rows with a non-finite input; an empty selection gives NaN values and
``n == 0``, never an error):

- **Residual statistics** (`residual_stats`): of residuals ``r`` with 1-sigma errors ``e``: the median, the
  robust scatter (1.4826 MAD), the unclipped standard deviation, the expected scatter (median of ``e``), the
  pulls ``r / e`` (median and robust scatter, 1 when the errors are right and there is no systematic), the
  3-sigma tail fraction (``|r - median| > 3`` robust sigma; 0.27 % for a Gaussian) and the outlier fraction
  (``|r - median| > max(outlier_sigma * robust sigma, outlier_min)``).
- **Photometry** (`flux_residuals`): fractional residual ``flux / ref_flux - 1`` (fraction), with error
  ``sqrt((flux_err / flux)**2 + (ref_err / ref_flux)**2)`` -- the reference catalog's error counts.
- **Astrometry** (`position_residual_stats`): offsets in RA cos(Dec) and Dec (mas); ``rms`` is unclipped and
  about zero (systematic offsets count), the quadrature mean of the two axes ``sqrt((rms_ra**2 + rms_dec**2) /
  2)``; ``offset`` is the larger absolute median of the two axes; an outlier lies more than ``outlier_mas``
  (radially) from its reference position.
- **Shapes** (`ellipticity`, `trace_radius`): second moments ``ixx, iyy, ixy`` (pixels^2);
  ``e1 = (ixx - iyy) / (ixx + iyy)``, ``e2 = 2 ixy / (ixx + iyy)`` (distortion); trace radius
  ``sqrt((ixx + iyy) / 2)`` (pixels), the Gaussian sigma; FWHM = `FWHM_PER_SIGMA` times it.
  `psf_residual_stats`: ``de = e_star - e_psf`` per component, ``rms`` = quadrature mean of the per-component
  rms about zero; size residual ``T_star / T_psf - 1`` (fraction).
- **Isolation** (`has_neighbour`): another row of the same group (a CCD of a visit; the whole table for
  objects) closer than a radius, in the units of the coordinates given.
- **Stellar locus** (`fit_locus`): a straight line through (c1, c2) fitted by principal components on points
  within 3 robust sigma (iterated); the perpendicular distance to it (mag) gives the locus width (robust
  scatter) and, for reference colours, the locus position (median distance of the measured stars from the line
  fitted to the reference colours).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from ..qa import robust_scatter

if TYPE_CHECKING:
    from .model import Check
    from .thresholds import Thresholds

__all__ = [
    "FWHM_PER_SIGMA",
    "MAG_PER_FRACTION",
    "Locus",
    "PositionResidualStats",
    "PsfResidualStats",
    "ResidualStats",
    "CellResidualStats",
    "bright_star_mask",
    "cell_residual_stats",
    "colour",
    "ellipticity",
    "evaluate_checks",
    "fit_locus",
    "flag_column",
    "float_column",
    "flux_residuals",
    "group_indices",
    "has_neighbour",
    "ordered_bands",
    "position_residual_stats",
    "psf_residual_stats",
    "psf_residuals",
    "residual_stats",
    "signal_to_noise",
    "trace_radius",
]

#: FWHM of a Gaussian in units of its sigma, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = float(2.0 * np.sqrt(2.0 * np.log(2.0)))

#: Magnitude error per fractional flux error, 2.5 / ln 10 (mag).
MAG_PER_FRACTION = float(2.5 / np.log(10.0))

_F = NDArray[np.float64]


def _f(x: ArrayLike) -> _F:
    return np.asarray(x, dtype=np.float64)


def float_column(table: Any, name: str) -> _F:
    """A table column as floats, masked entries NaN.

    Parameters
    ----------
    table : `astropy.table.Table` or mapping
        The catalog (anything indexable by column name).
    name : `str`
        The column (any unit: the values are returned unchanged, e.g. nJy or deg).

    Returns
    -------
    values : `numpy.ndarray` of float
        The column's values (its unit), NaN where masked.
    """
    return np.asarray(np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan), dtype=float)


def evaluate_checks(
    th: Thresholds,
    prefix: str,
    items: Iterable[tuple[str, float, str]],
    *,
    scope: dict[str, Any] | None = None,
    n: int | None = None,
    plot: str | None = None,
    missing: str = "",
) -> list[Check]:
    """The checks of several statistics of one selection: `Thresholds.evaluate` of each, in order.

    Parameters
    ----------
    th : `Thresholds`
        The thresholds.
    prefix : `str`
        Start of the check keys: item ``("offset", ...)`` is check ``{prefix}_offset``.
    items : iterable of (`str`, `float`, `str`)
        Key suffix, value (the unit of the check's threshold, e.g. fraction or mas) and reason of each check.
    scope : `dict`, optional
        What the values are of (``{"band": "g"}``), shared by the checks.
    n : `int`, optional
        Number of rows (stars, pairs) behind the values.
    plot : `str`, optional
        The figure of the checks (relative path).
    missing : `str`
        Why a value is not available, when it is NaN.

    Returns
    -------
    checks : `list` [`Check`]
        One per item.
    """
    return [
        th.evaluate(f"{prefix}_{suffix}", value, scope=scope, reason=reason, n=n, plot=plot, missing=missing)
        for suffix, value, reason in items
    ]


def flag_column(table: Any, name: str) -> NDArray[np.bool_]:
    """A flag column as booleans, masked entries set; all False when the table has no such column.

    Parameters
    ----------
    table : `astropy.table.Table`
        The catalog (with ``colnames``).
    name : `str`
        The flag column (dimensionless, e.g. ``pixelFlags_saturated``).

    Returns
    -------
    flags : `numpy.ndarray` of bool
        One per row: True where the flag is set or masked.
    """
    if name not in table.colnames:
        return np.zeros(len(table), bool)
    return np.asarray(np.ma.filled(np.ma.asarray(table[name]), True), dtype=bool)


@dataclass(frozen=True)
class ResidualStats:
    """Statistics of residuals and their errors (units of the residuals; pulls in sigma).

    Attributes
    ----------
    n : `int`
        Number of finite residuals.
    median, robust_scatter, std : `float`
        Median, 1.4826 MAD, and unclipped standard deviation of the residuals.
    expected_scatter : `float`
        Median of the errors: the scatter the errors alone predict (NaN without errors).
    pull_median, pull_scatter : `float`
        Median and robust scatter of residual / error (sigma; NaN without errors).
    tail_fraction : `float`
        Fraction beyond 3 robust sigma of the median.
    outlier_fraction : `float`
        Fraction beyond ``max(outlier_sigma * robust_scatter, outlier_min)`` of the median.
    """

    n: int
    median: float
    robust_scatter: float
    std: float
    expected_scatter: float
    pull_median: float
    pull_scatter: float
    tail_fraction: float
    outlier_fraction: float


def residual_stats(
    residual: ArrayLike,
    error: ArrayLike | None = None,
    *,
    outlier_sigma: float = 5.0,
    outlier_min: float = 0.0,
) -> ResidualStats:
    """Robust and unclipped statistics of residuals (rules in the module docstring).

    Parameters
    ----------
    residual : array_like
        Residuals (any unit).
    error : array_like, optional
        Their 1-sigma errors (same unit); rows with a non-positive error are dropped when given.
    outlier_sigma : `float`
        Outlier limit in robust sigma.
    outlier_min : `float`
        Smallest outlier limit (unit of the residuals), e.g. 0.05 for 5 % in flux.
    """
    r = _f(residual)
    e = np.ones_like(r) if error is None else _f(error)
    ok = np.isfinite(r) & np.isfinite(e) & (e > 0)
    r, e = r[ok], e[ok]
    nan = float("nan")
    if r.size == 0:
        return ResidualStats(0, nan, nan, nan, nan, nan, nan, nan, nan)
    med = float(np.median(r))
    sig = robust_scatter(r)
    dev = np.abs(r - med)
    pull = r / e
    has_err = error is not None
    return ResidualStats(
        n=int(r.size),
        median=med,
        robust_scatter=sig,
        std=float(np.std(r)),
        expected_scatter=float(np.median(e)) if has_err else nan,
        pull_median=float(np.median(pull)) if has_err else nan,
        pull_scatter=robust_scatter(pull) if has_err else nan,
        tail_fraction=float(np.mean(dev > 3.0 * sig)),
        outlier_fraction=float(np.mean(dev > max(outlier_sigma * sig, outlier_min))),
    )


def flux_residuals(
    flux: ArrayLike, flux_err: ArrayLike, ref_flux: ArrayLike, ref_err: ArrayLike | None = None
) -> tuple[_F, _F]:
    """Fractional flux residuals against a reference and their errors.

    Parameters
    ----------
    flux, flux_err : array_like
        Measured flux and error (nJy).
    ref_flux, ref_err : array_like
        Reference flux and error (nJy); ``ref_err`` None for an exact reference (the truth).

    Returns
    -------
    frac, frac_err : `numpy.ndarray`
        ``flux / ref_flux - 1`` and its error (fraction); NaN where ``ref_flux <= 0``.
    """
    f, e, r = _f(flux), _f(flux_err), _f(ref_flux)
    re = np.zeros_like(r) if ref_err is None else _f(ref_err)
    with np.errstate(invalid="ignore", divide="ignore"):
        good = r > 0
        frac = np.where(good, f / np.where(good, r, 1.0) - 1.0, np.nan)
        frac_err = np.where(good, np.hypot(e / np.abs(f), re / np.where(good, r, 1.0)), np.nan)
    return frac, frac_err


def signal_to_noise(flux: ArrayLike, flux_err: ArrayLike) -> _F:
    """``flux / flux_err``; NaN where the error is not positive."""
    f, e = _f(flux), _f(flux_err)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(e > 0, f / np.where(e > 0, e, 1.0), np.nan)


@dataclass(frozen=True)
class PositionResidualStats:
    """Position residuals against a reference (mas).

    Attributes
    ----------
    n : `int`
    dra_median, ddec_median : `float`
        Median offsets along RA cos(Dec) and Dec.
    offset : `float`
        The larger absolute median of the two axes.
    rms : `float`
        Unclipped rms about zero, quadrature mean of the two axes.
    robust_scatter : `float`
        Quadrature mean of the per-axis robust scatters.
    expected_scatter : `float`
        Median per-axis error (measured and reference in quadrature); NaN without errors.
    outlier_fraction : `float`
        Fraction farther than the outlier radius.
    """

    n: int
    dra_median: float
    ddec_median: float
    offset: float
    rms: float
    robust_scatter: float
    expected_scatter: float
    outlier_fraction: float


def position_residual_stats(
    dra_mas: ArrayLike,
    ddec_mas: ArrayLike,
    *,
    err_mas: ArrayLike | None = None,
    outlier_mas: float = 100.0,
) -> PositionResidualStats:
    """Statistics of position offsets (rules in the module docstring).

    Parameters
    ----------
    dra_mas, ddec_mas : array_like
        Offsets along RA cos(Dec) and Dec (mas), e.g. from `opendrp.qa.sky_offsets_mas`.
    err_mas : array_like, optional
        Per-axis 1-sigma error of each offset (mas).
    outlier_mas : `float`
        Radial distance beyond which an offset is an outlier (mas).
    """
    a, d = _f(dra_mas), _f(ddec_mas)
    ok = np.isfinite(a) & np.isfinite(d)
    a, d = a[ok], d[ok]
    nan = float("nan")
    if a.size == 0:
        return PositionResidualStats(0, nan, nan, nan, nan, nan, nan, nan)
    expected = nan
    if err_mas is not None:
        err = _f(err_mas)[ok]
        err = err[np.isfinite(err)]
        expected = float(np.median(err)) if err.size else nan
    ma, md = float(np.median(a)), float(np.median(d))
    return PositionResidualStats(
        n=int(a.size),
        dra_median=ma,
        ddec_median=md,
        offset=max(abs(ma), abs(md)),
        rms=float(np.sqrt(0.5 * (np.mean(a**2) + np.mean(d**2)))),
        robust_scatter=float(np.sqrt(0.5 * (robust_scatter(a) ** 2 + robust_scatter(d) ** 2))),
        expected_scatter=expected,
        outlier_fraction=float(np.mean(np.hypot(a, d) > outlier_mas)),
    )


def trace_radius(ixx: ArrayLike, iyy: ArrayLike) -> _F:
    """``sqrt((ixx + iyy) / 2)`` (pixels for moments in pixels^2); NaN where not positive."""
    t = 0.5 * (_f(ixx) + _f(iyy))
    with np.errstate(invalid="ignore"):
        return np.where(t > 0, np.sqrt(np.where(t > 0, t, 1.0)), np.nan)


def ellipticity(ixx: ArrayLike, iyy: ArrayLike, ixy: ArrayLike) -> tuple[_F, _F]:
    """Distortion ellipticity ``(e1, e2)`` of second moments (dimensionless); NaN where the trace is <= 0."""
    xx, yy, xy = _f(ixx), _f(iyy), _f(ixy)
    tr = xx + yy
    with np.errstate(invalid="ignore", divide="ignore"):
        good = tr > 0
        den = np.where(good, tr, 1.0)
        return np.where(good, (xx - yy) / den, np.nan), np.where(good, 2.0 * xy / den, np.nan)


@dataclass(frozen=True)
class PsfResidualStats:
    """Star - PSF model shape residuals.

    Attributes
    ----------
    n : `int`
    de1_median, de2_median : `float`
        Median ellipticity residual per component.
    e_rms : `float`
        Quadrature mean of the per-component rms about zero (dimensionless).
    e_robust_scatter : `float`
        Quadrature mean of the per-component robust scatters.
    size_median, size_scatter : `float`
        Median and robust scatter of ``T_star / T_psf - 1`` (fraction).
    """

    n: int
    de1_median: float
    de2_median: float
    e_rms: float
    e_robust_scatter: float
    size_median: float
    size_scatter: float


def psf_residual_stats(
    ixx: ArrayLike,
    iyy: ArrayLike,
    ixy: ArrayLike,
    ixx_psf: ArrayLike,
    iyy_psf: ArrayLike,
    ixy_psf: ArrayLike,
) -> PsfResidualStats:
    """Ellipticity and size residuals of stars against their PSF model (moments in pixels^2)."""
    de1, de2, dsize = psf_residuals(ixx, iyy, ixy, ixx_psf, iyy_psf, ixy_psf)
    ok = np.isfinite(de1) & np.isfinite(de2) & np.isfinite(dsize)
    de1, de2, dsize = de1[ok], de2[ok], dsize[ok]
    nan = float("nan")
    if de1.size == 0:
        return PsfResidualStats(0, nan, nan, nan, nan, nan, nan)
    return PsfResidualStats(
        n=int(de1.size),
        de1_median=float(np.median(de1)),
        de2_median=float(np.median(de2)),
        e_rms=float(np.sqrt(0.5 * (np.mean(de1**2) + np.mean(de2**2)))),
        e_robust_scatter=float(np.sqrt(0.5 * (robust_scatter(de1) ** 2 + robust_scatter(de2) ** 2))),
        size_median=float(np.median(dsize)),
        size_scatter=robust_scatter(dsize),
    )


def psf_residuals(
    ixx: ArrayLike,
    iyy: ArrayLike,
    ixy: ArrayLike,
    ixx_psf: ArrayLike,
    iyy_psf: ArrayLike,
    ixy_psf: ArrayLike,
) -> tuple[_F, _F, _F]:
    """Per-star ``(de1, de2, T_star / T_psf - 1)`` of stars against their PSF model."""
    e1, e2 = ellipticity(ixx, iyy, ixy)
    p1, p2 = ellipticity(ixx_psf, iyy_psf, ixy_psf)
    return e1 - p1, e2 - p2, trace_radius(ixx, iyy) / trace_radius(ixx_psf, iyy_psf) - 1.0


def has_neighbour(
    points: ArrayLike, *, radius: float | ArrayLike, group: ArrayLike | None = None
) -> NDArray[np.bool_]:
    """Whether each point has another point of its group within ``radius``.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Coordinates (pixels, or unit vectors with a chord radius); rows with non-finite values neither have
        nor are neighbours.
    radius : `float` or array_like
        Neighbour radius in the units of ``points``: one value, or one per group (indexed like
        ``np.unique(group)``).
    group : array_like, optional
        Group label of each point (e.g. ``visit * 1000 + detector``); default one group.
    """
    pts = np.atleast_2d(_f(points))
    n = pts.shape[0]
    labels = np.zeros(n, np.int64) if group is None else np.asarray(group)
    uniq, inv = np.unique(labels, return_inverse=True)
    radii = np.broadcast_to(_f(radius), (uniq.size,))
    out = np.zeros(n, bool)
    for k in range(uniq.size):
        idx = np.flatnonzero((inv == k) & np.all(np.isfinite(pts), axis=1))
        if idx.size < 2 or not radii[k] > 0:
            continue
        counts = cKDTree(pts[idx]).query_ball_point(pts[idx], r=float(radii[k]), return_length=True)
        out[idx] = np.asarray(counts) > 1
    return out


def group_indices(*keys: ArrayLike) -> dict[tuple[object, ...], NDArray[np.intp]]:
    """Row indices per distinct combination of key values (e.g. band and tract), keys in sorted order."""
    cols = [np.asarray(k) for k in keys]
    if not cols or cols[0].size == 0:
        return {}
    out: dict[tuple[object, ...], list[int]] = {}
    for i, key in enumerate(zip(*[c.tolist() for c in cols], strict=True)):
        out.setdefault(tuple(key), []).append(i)
    return {k: np.asarray(out[k], np.intp) for k in sorted(out, key=lambda t: tuple(map(str, t)))}


@dataclass(frozen=True)
class Locus:
    """A straight stellar locus ``c2 = c2_0 + slope (c1 - c1_0)`` in a colour-colour plane (mag).

    Attributes
    ----------
    c1_0, c2_0 : `float`
        A point of the line (the mean of the points kept).
    angle : `float`
        Direction of the line (rad from the c1 axis, in (-pi/2, pi/2]).
    width : `float`
        Robust scatter of the perpendicular distances of the points kept (mag).
    n : `int`
        Number of points kept by the clipping.
    """

    c1_0: float
    c2_0: float
    angle: float
    width: float
    n: int

    def perpendicular(self, c1: ArrayLike, c2: ArrayLike) -> _F:
        """Signed perpendicular distance of colours from the line (mag)."""
        return -(_f(c1) - self.c1_0) * np.sin(self.angle) + (_f(c2) - self.c2_0) * np.cos(self.angle)


def fit_locus(c1: ArrayLike, c2: ArrayLike, *, clip: float = 3.0, n_iter: int = 5) -> Locus:
    """Fit a straight stellar locus by principal components with iterated robust clipping.

    Parameters
    ----------
    c1, c2 : array_like
        The two colours of each star (mag), e.g. g-r and r-i.
    clip : `float`
        Points farther than ``clip`` robust sigma from the line are dropped before the next iteration.
    n_iter : `int`
        Number of fit-and-clip iterations.
    """
    x, y = _f(c1), _f(c2)
    keep = np.isfinite(x) & np.isfinite(y)
    nan = float("nan")
    locus = Locus(nan, nan, nan, nan, 0)
    for _ in range(n_iter):
        if keep.sum() < 3:
            return Locus(nan, nan, nan, nan, int(keep.sum()))
        xm, ym = float(np.mean(x[keep])), float(np.mean(y[keep]))
        cov = np.cov(np.vstack([x[keep] - xm, y[keep] - ym]))
        w, v = np.linalg.eigh(cov)
        major = v[:, int(np.argmax(w))]
        angle = float(np.arctan(major[1] / major[0])) if major[0] != 0 else float(np.pi / 2)
        locus = Locus(xm, ym, angle, nan, int(keep.sum()))
        d = locus.perpendicular(x, y)
        width = robust_scatter(d[keep])
        locus = Locus(xm, ym, locus.angle, width, int(keep.sum()))
        new_keep = np.isfinite(d) & (np.abs(d - np.median(d[keep])) <= clip * width)
        if np.array_equal(new_keep, keep) or width == 0:
            break
        keep = new_keep
    return locus


def colour(flux_a: ArrayLike, flux_b: ArrayLike, err_a: ArrayLike, err_b: ArrayLike) -> tuple[_F, _F]:
    """Colour ``m_a - m_b`` (mag) of two fluxes and its error (mag); NaN where a flux is not positive."""
    fa, fb, ea, eb = _f(flux_a), _f(flux_b), _f(err_a), _f(err_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        good = (fa > 0) & (fb > 0)
        c = np.where(good, -2.5 * np.log10(np.where(good, fa / np.where(good, fb, 1.0), 1.0)), np.nan)
        err = np.where(good, MAG_PER_FRACTION * np.hypot(ea / fa, eb / fb), np.nan)
    return c, err


def ordered_bands(bands: Sequence[str], wavelengths: Sequence[float]) -> list[str]:
    """Bands sorted by effective wavelength (ties keep the given order)."""
    order = np.argsort(np.asarray(wavelengths, float), kind="stable")
    return [bands[i] for i in order]


def bright_star_mask(
    flux: ArrayLike,
    flux_err: ArrayLike,
    extendedness: ArrayLike,
    *,
    snr_min: float,
    bad: ArrayLike | None = None,
    crowded: ArrayLike | None = None,
) -> NDArray[np.bool_]:
    """Bright, clean, point-like, isolated sources.

    Parameters
    ----------
    flux, flux_err : array_like
        PSF flux and error (nJy): S/N = flux / flux_err must exceed ``snr_min``.
    extendedness : array_like
        0 for point-like sources (the data's own classification); NaN is not point-like.
    bad : array_like of bool, optional
        Any rejecting pixel flag (saturated, bad, edge, ...), already or-ed together.
    crowded : array_like of bool, optional
        A neighbour closer than the isolation radius, or deblended (`has_neighbour`).
    """
    snr = signal_to_noise(flux, flux_err)
    ext = _f(extendedness)
    with np.errstate(invalid="ignore"):
        keep = (snr > snr_min) & (ext == 0.0)
    if bad is not None:
        keep &= ~np.asarray(bad, bool)
    if crowded is not None:
        keep &= ~np.asarray(crowded, bool)
    return np.asarray(keep, bool)


@dataclass(frozen=True)
class CellResidualStats:
    """Ellipticity residuals averaged in cells (a CCD of a visit, a patch): the PSF model's systematic error.

    Attributes
    ----------
    n_cells, n : `int`
        Cells with at least ``min_per_cell`` stars, and the stars in them.
    rms : `float`
        rms over the cells of the cell-mean residual, quadrature mean of the two components.
    noise : `float`
        What noise alone gives for ``rms``: quadrature mean over the cells of (robust scatter of the star
        residuals of all cells) / sqrt(stars in the cell).
    """

    n_cells: int
    n: int
    rms: float
    noise: float


def cell_residual_stats(
    de1: ArrayLike, de2: ArrayLike, cell: ArrayLike, *, min_per_cell: int = 5
) -> CellResidualStats:
    """rms of the per-cell mean ellipticity residual (rules in `CellResidualStats`).

    Star-by-star residuals are dominated by the measurement noise of faint stars' shapes (about 1 / (S/N)
    per component); the mean over the stars of a cell keeps the PSF model's error, which is coherent over a
    cell, and divides the noise by sqrt(stars).

    Parameters
    ----------
    de1, de2 : array_like
        Star - PSF ellipticity residual per star.
    cell : array_like
        Cell label per star.
    min_per_cell : `int`
        Cells with fewer stars are ignored.
    """
    a, b, c = _f(de1), _f(de2), np.asarray(cell)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b, c = a[ok], b[ok], c[ok]
    nan = float("nan")
    if a.size == 0:
        return CellResidualStats(0, 0, nan, nan)
    labels, inv, counts = np.unique(c, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    use = counts >= min_per_cell
    if not use.any():
        return CellResidualStats(0, 0, nan, nan)
    m1 = np.bincount(inv, weights=a, minlength=labels.size)[use] / counts[use]
    m2 = np.bincount(inv, weights=b, minlength=labels.size)[use] / counts[use]
    keep = use[inv]
    sigma = np.sqrt(0.5 * (robust_scatter(a[keep]) ** 2 + robust_scatter(b[keep]) ** 2))
    return CellResidualStats(
        n_cells=int(use.sum()),
        n=int(counts[use].sum()),
        rms=float(np.sqrt(0.5 * (np.mean(m1**2) + np.mean(m2**2)))),
        noise=float(sigma * np.sqrt(np.mean(1.0 / counts[use]))),
    )
