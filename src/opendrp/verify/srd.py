"""The SRD repeatability metrics (LPM-17) from single-visit sources matched across visits.

Definitions follow analysis_tools' ``matchedVisitCore`` (``StellarPhotometricRepeatability``,
``AstrometricRelativeRepeatability`` / ``CalcRelativeDistances``) and, where analysis_tools has none, faro /
validate_drp (``TEx``, ``ADx``/``AFx``); the full text is ``docs/srd-metrics.md``.  All functions here are
pure functions on arrays; `srd_checks` does the I/O through a `VerifyContext`.

Matching: sources of every visit (all bands, psfFlux S/N >= 5) are associated into objects with
`associate_sources` (1 arcsec, isolation 2 arcsec).  Every metric is computed per band on that band's
measurements; no metric pools bands.  A measurement is used only without any of `BAD_FLAGS` and with
``psfFlux > 0``, ``psfFluxErr > 0``; a point source is an object of median extendedness <= 0.5.  Selections
(`SrdSelection`): PA1/PA2/PF1 per-star median S/N >= 100 and >= 3 measurements; AMx/ADx/AFx per-source
50 <= S/N <= 50000; TE1/TE2 per-source S/N >= 50 and ``shape_flag`` not set.  The design values the
definitions use (PA2 in PF1, PF1 in PA2, ADx in AFx, AFx in ADx) are read from the thresholds.

Photometric repeatability (`photometric_repeatability`), per star with ``n >= 3`` measurements, in mmag
(m = -2.5 log10 psfFlux):

- per-star rms ``s = std(m, ddof=1)``; **PA1** = median of ``s`` over stars.
- residual ``r = (m - mean(m)) sqrt(n / (n - 1))`` (has the single-visit variance); **PA2** = the
  ``100 - PF1_design`` percentile of ``|r|``; **PF1** = percentage of ``|r| > PA2_design`` (15 mmag).
- expected noise: ``sigma = 2.5 / ln(10) psfFluxErr / psfFlux`` per measurement; the expected PA1 is the
  median over stars of ``sqrt(mean(sigma^2)) sqrt(chi2_{n-1}.median / (n - 1))``, i.e. what the same
  estimator gives on pure noise of the reported errors; expected PF1 and PA2 are those of Gaussian residuals
  with the variance the errors predict.  The unclipped rms of all ``r`` is reported beside PA1.

Astrometric repeatability (`astrometric_repeatability`), for object pairs whose mean positions are
``D +- width / 2`` apart (D = 5, 20, 200 arcmin, width 2 arcmin), in mas:

- in every visit where both are measured, the separation of the two sources; per pair the rms (ddof=1) of
  those separations (pairs with >= 2 common visits); **AMx** = median of the pair rms.
- **ADx** = the ``100 - AFx_design`` percentile of (pair rms - AMx); **AFx** = percentage of pairs whose rms
  exceeds AMx + ADx_design (validate_drp's rule).
- expected noise: per pair ``sqrt(mean(sigma_a^2 + sigma_b^2))`` over the common visits, sigma the per-axis
  position error, times the same small-sample factor as PA1; its median is the expected AMx.
- at most ``max_pairs`` pairs are used: beyond, object subsets and pair subsets are drawn with a seeded
  generator (deterministic), and the result says so.

Residual ellipticity correlations (`ellipticity_correlation`), dimensionless:

- ellipticity ``e = (Ixx - Iyy + 2i Ixy) / (Ixx + Iyy + 2 sqrt(Ixx Iyy - Ixy^2))`` of the star (``ixx``...)
  and of the PSF model (``ixxPSF``...); per object the median over visits of ``e_star - e_psf`` per component.
- ``xi_+(theta) = <e1_i e1_j + e2_i e2_j>`` over object pairs in 20 logarithmic bins 0.25-20 arcmin (weighted
  pair counts on a k-d tree, O(N log N)); **TE1** = mean of ``xi_+`` over the bins centred at <= 1 arcmin,
  **TE2** over the bins centred at >= 5 arcmin (faro).  The shape-noise error of each bin is
  ``sqrt(2) sigma_e^2 / sqrt(n_pairs)`` (sigma_e per component), reported as the expected noise.  When that
  error exceeds the threshold and the value lies within 3 errors of it, the check is 'not available' (the
  value is still recorded): too few stars to tell a pass from a fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from astropy.table import Table
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from ..qa import flux_to_mag
from ._matched import associate_sources, compress_ids, group_mean_radec, median_std_factor
from ._srd_astrometry import (
    AstrometricRepeatability,
    astrometric_repeatability,
    count_pairs_between,
    field_diameter_arcmin,
    separation_outliers,
)
from ._srd_ellipticity import (
    TE_BIN_EDGES_ARCMIN,
    EllipticityCorrelation,
    ellipticity_correlation,
    shear_ellipticity,
    te_value,
)

if TYPE_CHECKING:
    from .context import VerifyContext
    from .model import Check
    from .thresholds import Thresholds

__all__ = [
    "TE_BIN_EDGES_ARCMIN",
    "AstrometricRepeatability",
    "EllipticityCorrelation",
    "PhotometricRepeatability",
    "astrometric_repeatability",
    "count_pairs_between",
    "ellipticity_correlation",
    "field_diameter_arcmin",
    "photometric_repeatability",
    "separation_outliers",
    "SrdSelection",
    "shear_ellipticity",
    "srd_checks",
    "srd_checks_for_table",
    "te_value",
]

#: mmag per unit fractional flux error: 2.5 / ln(10) * 1000.
MMAG_PER_FRACTION = 2500.0 / np.log(10.0)


# ----------------------------------------------------------------------------------------------------------
# Photometric repeatability
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhotometricRepeatability:
    """PA1, PA2, PF1 of one band and the noise the reported errors predict.

    Attributes
    ----------
    pa1, pa1_expected : `float`
        Median per-star rms and its pure-noise expectation (mmag).
    rms, rms_expected : `float`
        Unclipped rms of all scaled residuals and ``sqrt(mean(sigma^2))`` (mmag).
    pa2, pa2_expected : `float`
        The ``100 - pf1_limit`` percentile of ``|r|`` and its Gaussian-noise expectation (mmag).
    pf1, pf1_expected : `float`
        Percentage of ``|r| > pa2_limit`` and its Gaussian-noise expectation (%).
    n_stars, n_measurements : `int`
    star_mag, star_rms, star_expected : `numpy.ndarray`
        Per star: mean magnitude (mag), rms and expected rms (mmag) (for the plot).
    """

    pa1: float
    pa1_expected: float
    rms: float
    rms_expected: float
    pa2: float
    pa2_expected: float
    pf1: float
    pf1_expected: float
    n_stars: int
    n_measurements: int
    star_mag: NDArray[np.float64] = field(repr=False)
    star_rms: NDArray[np.float64] = field(repr=False)
    star_expected: NDArray[np.float64] = field(repr=False)


def _gaussian_tail_percent(limit: float, sigma: NDArray[np.float64]) -> float:
    """Mean over measurements of P(|N(0, sigma)| > limit), in percent."""
    return float(100.0 * np.mean(special.erfc(limit / (np.sqrt(2.0) * sigma))))


def _gaussian_abs_percentile(percent_above: float, sigma: NDArray[np.float64]) -> float:
    """The x with mean P(|N(0, sigma)| > x) = percent_above / 100."""
    hi = 20.0 * float(np.max(sigma))
    return float(optimize.brentq(lambda x: _gaussian_tail_percent(x, sigma) - percent_above, 0.0, hi))


def photometric_repeatability(
    group: ArrayLike,
    flux: ArrayLike,
    flux_err: ArrayLike,
    *,
    pa2_limit_mmag: float = 15.0,
    pf1_limit_percent: float = 10.0,
    min_visits: int = 3,
) -> PhotometricRepeatability | None:
    """PA1, PA2, PF1 of repeated measurements of stars (rules in the module docstring).

    Parameters
    ----------
    group : array_like of int
        Star of each measurement.
    flux, flux_err : array_like
        Flux and its error of each measurement (any unit, e.g. nJy); non-positive fluxes are dropped.
    pa2_limit_mmag : `float`
        The PA2 design value PF1 counts against (mmag).
    pf1_limit_percent : `float`
        The PF1 design value whose percentile PA2 is (%).
    min_visits : `int`
        Minimum number of measurements of a star.

    Returns
    -------
    result : `PhotometricRepeatability` or `None`
        None when no star has ``min_visits`` measurements.
    """
    f = np.asarray(flux, dtype=np.float64)
    fe = np.asarray(flux_err, dtype=np.float64)
    mag = flux_to_mag(f)
    sigma = MMAG_PER_FRACTION * fe / np.where(f > 0, f, np.nan)
    ok = np.isfinite(mag) & np.isfinite(sigma) & (sigma > 0)
    g = np.asarray(group)[ok]
    mag, sigma = mag[ok], sigma[ok]
    if g.size == 0:
        return None
    _, inv = compress_ids(g)
    n = np.bincount(inv)
    use = n[inv] >= min_visits
    if not use.any():
        return None
    _, inv = compress_ids(inv[use])
    mag, sigma = mag[use], sigma[use]
    n = np.bincount(inv)
    mean = np.bincount(inv, weights=mag) / n
    resid = (mag - mean[inv]) * 1000.0
    star_rms = np.sqrt(np.bincount(inv, weights=resid**2) / (n - 1))
    var_sum = np.bincount(inv, weights=sigma**2)
    star_expected = np.sqrt(var_sum / n) * median_std_factor(n)
    scale = np.sqrt(n / (n - 1))[inv]
    r = np.abs(resid * scale)
    # Variance of (m_i - mean) for independent errors, times n / (n - 1).
    sigma_r = scale * np.sqrt(sigma**2 * (1.0 - 2.0 / n[inv]) + var_sum[inv] / n[inv] ** 2)
    return PhotometricRepeatability(
        pa1=float(np.median(star_rms)),
        pa1_expected=float(np.median(star_expected)),
        rms=float(np.sqrt(np.mean(r**2))),
        rms_expected=float(np.sqrt(np.mean(sigma**2))),
        pa2=float(np.percentile(r, 100.0 - pf1_limit_percent)),
        pa2_expected=_gaussian_abs_percentile(pf1_limit_percent, sigma_r),
        pf1=float(100.0 * np.mean(r > pa2_limit_mmag)),
        pf1_expected=_gaussian_tail_percent(pa2_limit_mmag, sigma_r),
        n_stars=int(n.size),
        n_measurements=int(r.size),
        star_mag=mean,
        star_rms=star_rms,
        star_expected=star_expected,
    )


# ----------------------------------------------------------------------------------------------------------
# The checks of a repository (I/O through the VerifyContext)
# ----------------------------------------------------------------------------------------------------------

#: Source flags that exclude a measurement from every SRD metric (missing columns are ignored).
BAD_FLAGS = (
    "pixelFlags_saturated",
    "pixelFlags_saturatedCenter",
    "pixelFlags_suspect",
    "pixelFlags_edge",
    "pixelFlags_bad",
    "psfFlux_flag",
    "centroid_flag",
    "deblend_blended",
)
_FLOAT_COLUMNS = ("coord_ra", "coord_dec", "psfFlux", "psfFluxErr", "extendedness")
_OPTIONAL_COLUMNS = ("coord_raErr", "coord_decErr", "ixx", "iyy", "ixy", "ixxPSF", "iyyPSF", "ixyPSF")
_ANNULI = ((1, 5.0), (2, 20.0), (3, 200.0))
_SRD_KEYS = ("PA1", "PF1", "PA2", "AM1", "AD1", "AF1", "AM2", "AD2", "AF2", "AM3", "AD3", "AF3", "TE1", "TE2")
_ANNULUS_WIDTH_ARCMIN = 2.0


@dataclass(frozen=True)
class SrdSelection:
    """The source selections of the SRD metrics (defaults: analysis_tools' matchedVisitCore, the issue).

    Attributes
    ----------
    match_radius_arcsec, isolation_arcsec : `float`
        Association radius and isolation radius (arcsec).
    assoc_snr_min : `float`
        Sources with psfFlux S/N below this are not associated (they still make objects non-isolated only if
        above it).
    phot_snr_min : `float`
        PA1/PA2/PF1: minimum per-star median psfFlux S/N.
    min_visits_phot : `int`
        PA1/PA2/PF1: minimum measurements of a star.
    astrom_snr_min, astrom_snr_max : `float`
        AMx/ADx/AFx: per-source psfFlux S/N range.
    te_snr_min : `float`
        TE1/TE2: minimum per-source psfFlux S/N.
    te_decision_sigma : `float`
        TE1/TE2 are 'not available' when their shape-noise error exceeds the threshold and the value is
        within this many errors of it (the field cannot tell whether the requirement is met).
    max_extendedness : `float`
        Point sources: per-object median extendedness at most this.
    min_pairs : `int`
        Fewest star pairs (AMx) for a value.
    bad_flags : `tuple` [`str`, ...]
        Flags that exclude a measurement.
    """

    match_radius_arcsec: float = 1.0
    isolation_arcsec: float = 2.0
    assoc_snr_min: float = 5.0
    phot_snr_min: float = 100.0
    min_visits_phot: int = 3
    astrom_snr_min: float = 50.0
    astrom_snr_max: float = 50000.0
    te_snr_min: float = 50.0
    te_decision_sigma: float = 3.0
    max_extendedness: float = 0.5
    min_pairs: int = 10
    bad_flags: tuple[str, ...] = BAD_FLAGS


def _column(table: Any, name: str, fill: Any) -> NDArray[Any]:
    col = table[name]
    return np.asarray(col.filled(fill) if hasattr(col, "filled") else col)


def _read_src(ctx: VerifyContext, sel: SrdSelection) -> Table:
    """The src catalogs of the collection stacked, with the columns the metrics use that they have."""
    refs = ctx.refs("src")
    if not refs:
        return Table()
    names = set(ctx.get(refs[0]).colnames)
    wanted = [c for c in (*_FLOAT_COLUMNS, *_OPTIONAL_COLUMNS, *sel.bad_flags, "shape_flag") if c in names]
    return ctx.table("src", columns=wanted)


def _prepare(t: Table, sel: SrdSelection) -> dict[str, NDArray[Any]]:
    """The columns as arrays, with ``ok`` (quality), ``snr``, ``group`` and ``pos_err_mas``."""
    d: dict[str, NDArray[Any]] = {c: _column(t, c, np.nan).astype(np.float64) for c in _FLOAT_COLUMNS}
    for c in _OPTIONAL_COLUMNS:
        d[c] = _column(t, c, np.nan).astype(np.float64) if c in t.colnames else np.full(len(t), np.nan)
    d["band"] = _column(t, "band", "").astype(str)
    d["visit"] = _column(t, "visit", -1).astype(np.int64)
    bad = np.zeros(len(t), bool)
    for flag in sel.bad_flags:
        if flag in t.colnames:
            bad |= _column(t, flag, True).astype(bool)
    d["shape_bad"] = _column(t, "shape_flag", True).astype(bool) if "shape_flag" in t.colnames else bad
    with np.errstate(invalid="ignore", divide="ignore"):
        d["snr"] = d["psfFlux"] / d["psfFluxErr"]
    finite = np.isfinite(d["coord_ra"]) & np.isfinite(d["coord_dec"])
    d["ok"] = finite & ~bad & (d["psfFlux"] > 0) & (d["psfFluxErr"] > 0)
    assoc = finite & (d["snr"] >= sel.assoc_snr_min)
    group = np.full(len(t), -1, np.intp)
    group[assoc] = associate_sources(
        d["coord_ra"][assoc],
        d["coord_dec"][assoc],
        d["visit"][assoc],
        match_radius_arcsec=sel.match_radius_arcsec,
        isolation_arcsec=sel.isolation_arcsec,
    )
    d["group"] = group
    # Per-axis position error (mas): coord_raErr / coord_decErr are on-sky errors in degrees.
    d["pos_err_mas"] = np.sqrt((d["coord_raErr"] ** 2 + d["coord_decErr"] ** 2) / 2.0) * 3.6e6
    return d


def _group_median(group: NDArray[np.intp], values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-row median of ``values`` over the row's group."""
    return pd.Series(values).groupby(group).transform("median").to_numpy(dtype=np.float64)


def _limit(th: Thresholds, key: str, default: float) -> float:
    """The threshold of ``key`` (``default`` when the file gives none)."""
    value = th.spec(key).threshold
    return default if value is None else float(value)


def _photometry_checks(
    ctx: VerifyContext,
    th: Thresholds,
    d: dict[str, NDArray[Any]],
    rows: NDArray[np.bool_],
    band: str,
    sel: SrdSelection,
) -> list[Check]:
    """PA1, PF1, PA2 of one band."""
    med_snr = np.full(rows.size, np.nan)
    med_snr[rows] = _group_median(d["group"][rows], d["snr"][rows])
    star = rows & d["point"] & (med_snr >= sel.phot_snr_min)
    res = photometric_repeatability(
        d["group"][star],
        d["psfFlux"][star],
        d["psfFluxErr"][star],
        pa2_limit_mmag=_limit(th, "PA2", 15.0),
        pf1_limit_percent=_limit(th, "PF1", 10.0),
        min_visits=sel.min_visits_phot,
    )
    scope = {"band": band}
    if res is None:
        n_visits = np.unique(d["visit"][rows]).size
        why = (
            f"only {n_visits} visits in band {band}: PA1 needs stars measured >= {sel.min_visits_phot} times"
            if n_visits < sel.min_visits_phot
            else f"no isolated point source of median S/N >= {sel.phot_snr_min:g} measured in >= "
            f"{sel.min_visits_phot} visits of band {band}"
        )
        return [th.not_available(k, why, scope=scope) for k in ("PA1", "PF1", "PA2")]
    rel = None
    if ctx.make_plots:
        from ._srd_plots import plot_photometric_repeatability

        path, rel = ctx.figure(f"srd_photometry_{band}.png")
        plot_photometric_repeatability(
            path,
            band=band,
            mag=res.star_mag,
            rms_mmag=res.star_rms,
            expected_mmag=res.star_expected,
            pa1=res.pa1,
            pa1_expected=res.pa1_expected,
            pa1_limit=th.spec("PA1").threshold,
        )
    return _photometry_records(ctx, th, res, band, sel, rel)


def _photometry_records(
    ctx: VerifyContext,
    th: Thresholds,
    res: PhotometricRepeatability,
    band: str,
    sel: SrdSelection,
    rel: str | None,
) -> list[Check]:
    """Record PA1, PF1, PA2 of one band in ``ctx.metrics`` and make their checks."""
    pa2_lim, pf1_lim = _limit(th, "PA2", 15.0), _limit(th, "PF1", 10.0)
    what = (
        f"{res.n_stars} isolated point sources, median S/N >= {sel.phot_snr_min:g}, "
        f">= {sel.min_visits_phot} visits"
    )
    rows: tuple[tuple[str, float, str, float, int, dict[str, float], str], ...] = (
        ("PA1", res.pa1, "mmag", res.pa1_expected, res.n_stars,
         {"rms": res.rms, "rms_expected": res.rms_expected},
         f"median per-star rms; {what}; errors predict {res.pa1_expected:.3g} mmag; "
         f"unclipped rms {res.rms:.3g} mmag (errors {res.rms_expected:.3g})"),
        ("PF1", res.pf1, "%", res.pf1_expected, res.n_measurements, {"pa2_design": pa2_lim},
         f"of {res.n_measurements} residuals beyond {pa2_lim:g} mmag; {what}; "
         f"errors predict {res.pf1_expected:.3g} %"),
        ("PA2", res.pa2, "mmag", res.pa2_expected, res.n_measurements, {"pf1_design": pf1_lim},
         f"{100 - pf1_lim:g}th percentile of |residual|; {what}; errors predict {res.pa2_expected:.3g} mmag"),
    )  # fmt: skip
    common = {"n_stars": res.n_stars, "n_measurements": res.n_measurements, "snr_min": sel.phot_snr_min}
    checks = []
    for key, value, unit, expected, n, extra, reason in rows:
        ctx.add_metric(key, band, value, unit, expected=expected, n=n, **common, **extra)
        checks.append(th.evaluate(key, value, scope={"band": band}, n=n, plot=rel, reason=reason))
    return checks


def _astrometry_checks(
    ctx: VerifyContext,
    th: Thresholds,
    d: dict[str, NDArray[Any]],
    rows: NDArray[np.bool_],
    band: str,
    sel: SrdSelection,
) -> list[Check]:
    """AM1-3, AD1-3, AF1-3 of one band (in that order)."""
    use = rows & d["point"] & (d["snr"] >= sel.astrom_snr_min) & (d["snr"] <= sel.astrom_snr_max)
    results: dict[int, AstrometricRepeatability | str] = {}
    for x, dist in _ANNULI:
        res = astrometric_repeatability(
            d["group"][use],
            d["visit"][use],
            d["coord_ra"][use],
            d["coord_dec"][use],
            annulus_arcmin=dist,
            width_arcmin=_ANNULUS_WIDTH_ARCMIN,
            pos_err_mas=d["pos_err_mas"][use],
            ad_limit_mas=_limit(th, f"AD{x}", 20.0),
            af_limit_percent=_limit(th, f"AF{x}", 10.0),
            min_pairs=sel.min_pairs,
        )
        results[x] = res if res is not None else _no_pairs_reason(d, use, dist, sel)
    rel = None
    done = [(x, r) for x, r in results.items() if isinstance(r, AstrometricRepeatability)]
    if done and ctx.make_plots:
        from ._srd_plots import plot_separation_rms

        path, rel = ctx.figure(f"srd_astrometry_{band}.png")
        panels = [
            (f"AM{x} ({dict(_ANNULI)[x]:g} arcmin)", r.pair_rms, r.amx, r.adx, _limit(th, f"AD{x}", 20.0))
            for x, r in done
        ]
        plot_separation_rms(path, band=band, panels=panels)
    checks: list[Check] = []
    for x, _ in _ANNULI:
        r = results[x]
        if isinstance(r, str):
            checks += [th.not_available(f"{k}{x}", r, scope={"band": band}) for k in ("AM", "AD", "AF")]
        else:
            checks += _annulus_checks(ctx, th, r, x, band, rel)
    return checks


def _no_pairs_reason(
    d: dict[str, NDArray[Any]], use: NDArray[np.bool_], dist: float, sel: SrdSelection
) -> str:
    """Why no AMx could be measured at separation ``dist`` (arcmin)."""
    half = _ANNULUS_WIDTH_ARCMIN / 2.0
    span = f"{dist - half:g}-{dist + half:g} arcmin apart"
    if not use.any():
        return f"no isolated point source of S/N {sel.astrom_snr_min:g}-{sel.astrom_snr_max:g}"
    _, obj = compress_ids(d["group"][use])
    ra, dec, _ = group_mean_radec(
        obj, d["coord_ra"][use], d["coord_dec"][use], n_groups=int(obj.max(initial=-1)) + 1
    )
    n = count_pairs_between(ra, dec, min_arcmin=dist - half, max_arcmin=dist + half)
    if n == 0:
        return f"no star pairs {span}: the field is about {field_diameter_arcmin(ra, dec):.0f} arcmin across"
    return (
        f"{n} isolated star pairs {span}, fewer than {sel.min_pairs} of them measured in >= 2 common visits"
    )


def _annulus_checks(
    ctx: VerifyContext, th: Thresholds, res: AstrometricRepeatability, x: int, band: str, rel: str | None
) -> list[Check]:
    """Record AMx, ADx, AFx of one annulus and make their checks."""
    ad_lim, af_lim = _limit(th, f"AD{x}", 20.0), _limit(th, f"AF{x}", 10.0)
    lo, hi = res.annulus_arcmin
    sub = " (pairs subsampled)" if res.subsampled else ""
    what = f"{res.n_pairs} pairs of {res.n_objects} stars {lo:g}-{hi:g} arcmin apart{sub}"
    extra = dict(
        n=res.n_pairs, n_objects=res.n_objects, n_pairs_annulus=res.n_pairs_annulus, subsampled=res.subsampled
    )
    ctx.add_metric(
        f"AM{x}", band, res.amx, "mas", expected=_finite(res.amx_expected), rms_mean=res.rms_mean, **extra
    )
    ctx.add_metric(f"AD{x}", band, res.adx, "mas", af_design=af_lim, **extra)
    ctx.add_metric(f"AF{x}", band, res.afx, "%", ad_design=ad_lim, **extra)
    scope = {"band": band}
    return [
        th.evaluate(
            f"AM{x}",
            res.amx,
            scope=scope,
            n=res.n_pairs,
            plot=rel,
            reason=f"median pair-separation rms; {what}; position errors predict {res.amx_expected:.3g} mas; "
            f"unclipped mean {res.rms_mean:.3g} mas",
        ),
        th.evaluate(
            f"AD{x}",
            res.adx,
            scope=scope,
            n=res.n_pairs,
            plot=rel,
            reason=f"{100 - af_lim:g}th percentile of rms - AM{x}; {what}",
        ),
        th.evaluate(
            f"AF{x}",
            res.afx,
            scope=scope,
            n=res.n_pairs,
            plot=rel,
            reason=f"pairs with rms > AM{x} + {ad_lim:g} mas; {what}",
        ),
    ]


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


#: The TE metrics: key, bins whose centre is at most / at least a separation (arcmin).
_TE_RANGES = (("TE1", {"max_arcmin": 1.0}), ("TE2", {"min_arcmin": 5.0}))


def _te_objects(
    d: dict[str, NDArray[Any]], rows: NDArray[np.bool_], sel: SrdSelection
) -> tuple[NDArray[np.float64], ...]:
    """Per object of the selection: mean ra, dec (deg) and median residual e1, e2 over its visits."""
    e1s, e2s = shear_ellipticity(d["ixx"], d["iyy"], d["ixy"])
    e1p, e2p = shear_ellipticity(d["ixxPSF"], d["iyyPSF"], d["ixyPSF"])
    de1, de2 = e1s - e1p, e2s - e2p
    use = rows & d["point"] & (d["snr"] >= sel.te_snr_min) & ~d["shape_bad"] & np.isfinite(de1 + de2)
    obj, inv = compress_ids(d["group"][use])
    e1 = pd.Series(de1[use]).groupby(inv).median().to_numpy(dtype=np.float64)
    e2 = pd.Series(de2[use]).groupby(inv).median().to_numpy(dtype=np.float64)
    ra, dec, _ = group_mean_radec(inv, d["coord_ra"][use], d["coord_dec"][use], n_groups=obj.size)
    return ra, dec, e1, e2


def _te_span(corr: EllipticityCorrelation, kw: dict[str, float]) -> str:
    """The separations (arcmin) of the bins a TE value averages."""
    c = corr.bin_centres
    sel = c <= kw["max_arcmin"] if "max_arcmin" in kw else c >= kw["min_arcmin"]
    return f"{corr.bin_edges[:-1][sel][0]:.2g}-{corr.bin_edges[1:][sel][-1]:.2g} arcmin"


def _te_checks(
    ctx: VerifyContext,
    th: Thresholds,
    d: dict[str, NDArray[Any]],
    rows: NDArray[np.bool_],
    band: str,
    sel: SrdSelection,
) -> list[Check]:
    """TE1, TE2 of one band."""
    ra, dec, e1, e2 = _te_objects(d, rows, sel)
    scope = {"band": band}
    if ra.size < 2:
        why = (
            f"no isolated point source of S/N >= {sel.te_snr_min:g} with star and PSF moments in band {band}"
        )
        return [th.not_available(k, why, scope=scope) for k, _ in _TE_RANGES]
    corr = ellipticity_correlation(ra, dec, e1, e2)
    values = {k: te_value(corr, **kw) for k, kw in _TE_RANGES}
    rel = None
    if ctx.make_plots:
        from ._srd_plots import plot_ellipticity_correlation

        path, rel = ctx.figure(f"srd_te_{band}.png")
        edges = corr.bin_edges
        ranges = [
            ("TE1", edges[0], 1.0, values["TE1"][0], th.spec("TE1").threshold),
            ("TE2", 5.0, edges[-1], values["TE2"][0], th.spec("TE2").threshold),
        ]
        plot_ellipticity_correlation(
            path,
            band=band,
            centres_arcmin=corr.bin_centres,
            xip=corr.xip,
            xip_err=corr.xip_err,
            ranges=ranges,
        )
    checks = []
    for key, kw in _TE_RANGES:
        value, err, n_pairs = values[key]
        span = _te_span(corr, kw)
        if n_pairs == 0:
            diam = field_diameter_arcmin(ra, dec)
            why = (
                f"no star pairs {span} apart: the field is {diam:.0f} arcmin across ({corr.n_objects} stars)"
            )
            checks.append(th.not_available(key, why, scope=scope))
            continue
        ctx.add_metric(
            key, band, value, "", expected=err, n=n_pairs, n_objects=corr.n_objects, sigma_e=corr.sigma_e
        )
        what = f"{span}; {n_pairs} pairs of {corr.n_objects} stars of S/N >= {sel.te_snr_min:g}"
        limit = th.spec(key).threshold
        if limit is not None and err > limit and abs(value - limit) <= sel.te_decision_sigma * err:
            why = (
                f"{key} = {value:.2g} +- {err:.2g} over {what}: the shape noise exceeds the {limit:g} "
                f"threshold and the value is within {sel.te_decision_sigma:g} sigma of it (too few stars)"
            )
            checks.append(th.not_available(key, why, scope=scope))
            continue
        reason = f"mean xi+ of the residual ellipticities over {what}; shape-noise error {err:.2g}"
        checks.append(th.evaluate(key, value, scope=scope, n=n_pairs, plot=rel, reason=reason))
    return checks


def srd_checks(ctx: VerifyContext, th: Thresholds, *, selection: SrdSelection | None = None) -> list[Check]:
    """Every SRD metric of every band of the collection's src catalogs, as checks (module docstring).

    Records each value in ``ctx.metrics`` (``ctx.add_metric``: value, unit, n, expected noise and the
    unclipped statistic) and draws the figures when ``ctx.make_plots``.

    Parameters
    ----------
    ctx : `VerifyContext`
        The repository collection.
    th : `Thresholds`
        The thresholds (keys PA1 PF1 PA2 AM1-3 AD1-3 AF1-3 TE1 TE2 of DRP-00-15).
    selection : `SrdSelection`, optional
        The source selections.

    Returns
    -------
    checks : `list` [`Check`]
        One per metric and band (``scope={"band": b}``); 'not available' with the reason when a metric
        cannot be computed.
    """
    sel = selection or SrdSelection()
    return srd_checks_for_table(ctx, th, _read_src(ctx, sel), selection=sel)


def srd_checks_for_table(
    ctx: VerifyContext, th: Thresholds, table: Table, *, selection: SrdSelection | None = None
) -> list[Check]:
    """`srd_checks` on a stacked src table (columns as `VerifyContext.table` gives them: the src columns
    plus ``visit`` and ``band``)."""
    sel = selection or SrdSelection()
    if len(table) == 0:
        return [th.not_available(k, "no src catalog in the collection") for k in _SRD_KEYS]
    missing = [c for c in (*_FLOAT_COLUMNS, "visit", "band") if c not in table.colnames]
    if missing:
        return [th.not_available(k, f"the src catalogs lack {', '.join(missing)}") for k in _SRD_KEYS]
    d = _prepare(table, sel)
    grouped = (d["group"] >= 0) & d["ok"]
    checks: list[Check] = []
    for band in sorted(set(d["band"].tolist())):
        rows = grouped & (d["band"] == band)
        med_ext = np.full(rows.size, np.nan)
        med_ext[rows] = _group_median(d["group"][rows], d["extendedness"][rows])
        d["point"] = rows & (med_ext <= sel.max_extendedness)
        checks += _photometry_checks(ctx, th, d, rows, band, sel)
        checks += _astrometry_checks(ctx, th, d, rows, band, sel)
        checks += _te_checks(ctx, th, d, rows, band, sel)
    return checks
