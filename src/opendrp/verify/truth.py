"""Checks against the simulator's truth (``opendrp verify --truth``): what `opendrp qa` computed, as checks.

Only on simulations; the cases run without them on real data.  Matching: primary objects to the truth one to
one (`opendrp.qa.match_catalogs`), single-visit sources to their nearest truth source (many to one), within a
radius the caller derives from the PSF FWHM.  Rules (units: fluxes nJy, magnitudes AB mag, positions mas):

- **Single-visit flux** (DRP-00-15): clean, isolated true stars with S/N = psfFlux / psfFluxErr > `SNR_MIN`:
  median and robust scatter of ``psfFlux / true flux - 1`` per band.  The `opendrp.qa` single-visit section
  (photometry, astrometry, repeatability of S/N > `SNR_MIN` true stars, no isolation cut) as metrics.
- **Coadd flux** (DRP-00-25): isolated true stars, primary, S/N > `SNR_MIN` in the band: median and robust
  scatter of ``{band}_psfFlux / true flux - 1``; galaxies' ``{band}_kronFlux`` the same, as metrics.
- **Positions**: unclipped rms per axis (quadrature mean) of the same stars (S/N > `SNR_MIN`, best band).
- **Completeness**: the surveyed footprint is the union of the calexp outlines
  (`opendrp.execution.coverage_polygons`); a true point source counts when its expected coadd S/N (true flux
  over the sky-limited flux error, the median psfFluxErr of primary objects with S/N < 20 in the band) is at
  least `SNR_DETECT` in some band; complete when matched to a primary object.  Curves per band (star, galaxy,
  all) in bins of `MAG_BIN` mag, with the 50 % and 90 % completeness magnitudes, as metrics and a figure.
- **Purity**: primary objects with S/N >= `SNR_DETECT` in some band that match a true source (or a blind
  insertion, which is a real source kept out of the truth).
- **Star/galaxy**: true stars with S/N > `SNR_STAR_GALAXY` in the reference band classified point-like
  (``refExtendedness == 0``); the galaxies' fraction classified extended as a metric.
- **Blind insertions** (``sealed/blind.parquet`` beside the truth, when present and non-empty): the scores of
  `opendrp.qa.blind_metrics` as metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.table import Table
from numpy.typing import NDArray

from ..execution.drp import coverage_polygons
from ..qa import (
    CompletenessCurve,
    PolygonFootprint,
    blind_metrics,
    completeness_curve,
    completeness_limit,
    flux_to_mag,
    magnitude_bins,
    match_catalogs,
    match_to_nearest,
    sky_offsets_mas,
    source_metrics,
)
from . import _catalog_plots as plots
from .catalogs import (
    evaluate_checks,
    float_column,
    flux_residuals,
    position_residual_stats,
    residual_stats,
    signal_to_noise,
)
from .context import VerifyContext
from .model import Check
from .thresholds import Thresholds

__all__ = [
    "MAG_BIN",
    "SNR_DETECT",
    "SNR_MIN",
    "SNR_STAR_GALAXY",
    "expected_snr",
    "object_truth_checks",
    "purity",
    "source_truth_checks",
]

SNR_MIN = 50.0
"""S/N of the stars of the flux and position checks."""
SNR_DETECT = 10.0
"""S/N of the completeness and purity checks."""
SNR_STAR_GALAXY = 20.0
"""S/N of the star/galaxy check."""
MAG_BIN = 0.5
"""Width of the completeness bins (mag)."""


def expected_snr(true_flux: NDArray[np.float64], sky_flux_err: float) -> NDArray[np.float64]:
    """Sky-limited S/N of a true flux: ``true_flux / sky_flux_err`` (an upper bound: source noise ignored)."""
    return (
        np.asarray(true_flux, float) / sky_flux_err if sky_flux_err > 0 else np.full(len(true_flux), np.nan)
    )


def sky_flux_error(
    flux: NDArray[np.float64], flux_err: NDArray[np.float64], *, snr_max: float = 20.0
) -> float:
    """Median flux error (nJy) of faint sources (0 < S/N < ``snr_max``): the sky-limited PSF-flux error."""
    snr = signal_to_noise(flux, flux_err)
    faint = (snr > 0) & (snr < snr_max)
    return float(np.median(flux_err[faint])) if faint.any() else float("nan")


def purity(detected: NDArray[np.bool_], matched: NDArray[np.bool_]) -> tuple[float, int]:
    """Fraction of the ``detected`` objects that are ``matched`` to a true source, and their number."""
    n = int(np.sum(detected))
    return (float(np.mean(matched[detected])) if n else float("nan")), n


# ----------------------------------------------------------------------------------------------- DRP-00-15
def source_truth_checks(
    ctx: VerifyContext, th: Thresholds, src: Table, *, clean: NDArray[np.bool_], radius_arcsec: float
) -> list[Check]:
    """Single-visit psfFlux against the truth per band (``clean``: isolated and unflagged sources)."""
    tru = ctx.truth()
    assert tru is not None
    t_ra, t_dec, t_star = float_column(tru, "ra"), float_column(tru, "dec"), np.asarray(tru["is_star"], bool)
    bands = np.asarray(src["band"]).astype(str)
    checks: list[Check] = []
    for band in sorted(set(bands.tolist())):
        rows = np.flatnonzero(bands == band)
        flux, err = float_column(src, "psfFlux")[rows], float_column(src, "psfFluxErr")[rows]
        idx = match_to_nearest(
            float_column(src, "coord_ra")[rows],
            float_column(src, "coord_dec")[rows],
            t_ra,
            t_dec,
            radius_arcsec=radius_arcsec,
        )
        star = (idx >= 0) & t_star[np.maximum(idx, 0)] & clean[rows] & (signal_to_noise(flux, err) > SNR_MIN)
        if f"{band}_flux" not in tru.colnames:
            why = f"the truth has no {band}_flux"
            checks += [
                th.not_available(f"truth_src_psf_flux_{k}", why, scope={"band": band})
                for k in ("offset", "scatter")
            ]
            continue
        frac, frac_err = flux_residuals(flux, err, float_column(tru, f"{band}_flux")[np.maximum(idx, 0)])
        st = residual_stats(frac[star], frac_err[star])
        checks += _flux_checks(th, "truth_src_psf_flux", band, st, "clean isolated true stars (single visit)")
    _qa_source_metrics(ctx, src, tru, radius_arcsec)
    return checks


def _flux_checks(
    th: Thresholds, key: str, band: str, st: Any, what: str, plot: str | None = None
) -> list[Check]:
    reason = (
        f"{st.n} {what}, S/N > {SNR_MIN:g}; rms {100 * st.std:.3g} %, expected from the errors "
        f"{100 * st.expected_scatter:.3g} %, pull scatter {st.pull_scatter:.3g}, "
        f"3-sigma tail {100 * st.tail_fraction:.3g} %"
    )
    items = [("offset", st.median, reason), ("scatter", st.robust_scatter, reason)]
    return evaluate_checks(
        th, key, items, scope={"band": band}, n=st.n, plot=plot, missing=f"no {what} with S/N > {SNR_MIN:g}"
    )


def _qa_source_metrics(ctx: VerifyContext, src: Table, tru: Table, radius_arcsec: float) -> None:
    """The `opendrp qa` single-visit metrics (``sources`` section of its metrics.json)."""
    cols = ["coord_ra", "coord_dec", "psfFlux", "psfFluxErr"]
    bands = np.asarray(src["band"]).astype(str)
    tables = {b: src[cols][bands == b].to_pandas() for b in sorted(set(bands.tolist()))}
    truth_df = _to_pandas(tru)
    out = source_metrics(
        tables,
        "src",
        truth=truth_df,
        t_star=truth_df["is_star"].to_numpy(bool),
        radius_arcsec=radius_arcsec,
        snr_min=SNR_MIN,
    )
    for band, sec in out.items():
        ph, ast = sec["photometry"], sec["astrometry"]
        ctx.add_metric(
            "truth_src_flux_offset", band, ph["offset_median"]["value"], "fraction", n=ph["n"]["value"]
        )
        ctx.add_metric(
            "truth_src_flux_scatter", band, ph["offset_scatter"]["value"], "fraction", n=ph["n"]["value"]
        )
        ctx.add_metric(
            "truth_src_coord_scatter", band, ast["coord_scatter"]["value"], "mas", n=ast["n"]["value"]
        )
        ctx.add_metric("truth_src_repeatability", band, sec["repeatability"]["value"], "mmag")


def _to_pandas(t: Table) -> pd.DataFrame:
    names = [n for n in t.colnames if len(t[n].shape) <= 1]
    return t[names].to_pandas()


# ----------------------------------------------------------------------------------------------- DRP-00-25
def surveyed_footprint(ctx: VerifyContext) -> PolygonFootprint:
    """The union of the calexp outlines of the collection (`opendrp.execution.coverage_polygons`)."""
    polygons: list[tuple[Any, Any]] = list(coverage_polygons(ctx.repo, ctx.collection))
    return PolygonFootprint.from_polygons(polygons)


def object_truth_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prim: Table,
    bands: list[str],
    *,
    crowded: NDArray[np.bool_],
    radius_arcsec: float,
) -> list[Check]:
    """The truth checks of the Object table (primary objects ``prim``; rules in the module docstring)."""
    tru = ctx.truth()
    assert tru is not None
    bands = [b for b in bands if f"{b}_flux" in tru.colnames]
    p_ra, p_dec = float_column(prim, "coord_ra"), float_column(prim, "coord_dec")
    t_ra, t_dec, t_star = float_column(tru, "ra"), float_column(tru, "dec"), np.asarray(tru["is_star"], bool)
    i_obj, i_tru, _ = match_catalogs(p_ra, p_dec, t_ra, t_dec, radius_arcsec=radius_arcsec)
    snr = {
        b: signal_to_noise(float_column(prim, f"{b}_psfFlux"), float_column(prim, f"{b}_psfFluxErr"))
        for b in bands
    }
    checks: list[Check] = []
    for band in bands:
        checks += _coadd_flux_checks(ctx, th, prim, tru, band, i_obj, i_tru, snr[band], crowded)
    best = np.fmax.reduce(np.vstack(list(snr.values())), axis=0) if bands else np.full(len(prim), np.nan)
    checks.append(_position_check(ctx, th, p_ra, p_dec, t_ra, t_dec, i_obj, i_tru, t_star, best, crowded))
    obj_matched = np.zeros(len(prim), bool)
    obj_matched[i_obj] = True
    footprint = surveyed_footprint(ctx)
    _summary_metrics(ctx, prim, tru, i_obj, i_tru, footprint)
    obj_matched |= _blind_scores(ctx, prim, ~obj_matched, bands, radius_arcsec, footprint)
    checks += _completeness_checks(ctx, th, prim, tru, bands, i_tru, snr, footprint)
    value, n = purity(best >= SNR_DETECT, obj_matched)
    checks.append(
        th.evaluate(
            "truth_purity",
            value,
            n=n,
            missing="no primary object with S/N >= 10",
            reason=f"{n} primary objects with S/N >= {SNR_DETECT:g} in some band",
        )
    )
    checks.append(_star_galaxy_check(ctx, th, prim, snr, best, i_obj, t_star[i_tru]))
    return checks


def _summary_metrics(
    ctx: VerifyContext,
    prim: Table,
    tru: Table,
    i_obj: NDArray[np.intp],
    i_tru: NDArray[np.intp],
    footprint: PolygonFootprint,
) -> None:
    """The match summary of `opendrp qa` (counts, matched fractions, footprint area in deg^2)."""
    in_fp = footprint.contains(float_column(tru, "ra"), float_column(tru, "dec"))
    matched = np.zeros(len(tru), bool)
    matched[i_tru] = True
    n_fp = int(in_fp.sum())
    values = {
        "truth_n_primary": (len(prim), "count"),
        "truth_n_truth": (len(tru), "count"),
        "truth_n_truth_in_footprint": (n_fp, "count"),
        "truth_n_matched": (int(i_obj.size), "count"),
        "truth_matched_fraction_of_primary": (
            i_obj.size / len(prim) if len(prim) else float("nan"),
            "fraction",
        ),
        "truth_matched_fraction_of_truth": (
            float(matched[in_fp].mean()) if n_fp else float("nan"),
            "fraction",
        ),
        "truth_footprint_area": (footprint.area_deg2, "deg2"),
    }
    for name, (value, unit) in values.items():
        ctx.add_metric(name, "all", float(value), unit)


def _coadd_flux_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prim: Table,
    tru: Table,
    band: str,
    i_obj: NDArray[np.intp],
    i_tru: NDArray[np.intp],
    snr: NDArray[np.float64],
    crowded: NDArray[np.bool_],
) -> list[Check]:
    t_flux = float_column(tru, f"{band}_flux")[i_tru]
    t_star = np.asarray(tru["is_star"], bool)[i_tru]
    good = (snr[i_obj] > SNR_MIN) & ~crowded[i_obj]
    frac, frac_err = flux_residuals(
        float_column(prim, f"{band}_psfFlux")[i_obj], float_column(prim, f"{band}_psfFluxErr")[i_obj], t_flux
    )
    st = residual_stats(frac[good & t_star], frac_err[good & t_star])
    plot = None
    if ctx.make_plots:
        path, plot = ctx.figure(f"truth_coadd_psf_flux_{band}.png")
        plots.plot_mag_residual(
            path,
            flux_to_mag(t_flux[t_star]),
            100 * frac[t_star],
            good[t_star],
            ylabel="psfFlux / true flux - 1 (%)",
            title=f"Object {band}: true stars",
            limit=100 * (th.spec("truth_coadd_psf_flux_offset").threshold or 0),
        )
    if f"{band}_kronFlux" in prim.colnames:
        kfrac, kerr = flux_residuals(
            float_column(prim, f"{band}_kronFlux")[i_obj],
            float_column(prim, f"{band}_psfFluxErr")[i_obj],
            t_flux,
        )
        gal = residual_stats(kfrac[good & ~t_star], kerr[good & ~t_star])
        ctx.add_metric(
            "truth_galaxy_kron_flux_offset",
            band,
            gal.median,
            "fraction",
            n=gal.n,
            robust_scatter=gal.robust_scatter,
            std=gal.std,
        )
    ctx.add_metric("truth_coadd_psf_flux_std", band, st.std, "fraction", n=st.n, pull_scatter=st.pull_scatter)
    blended = (snr[i_obj] > SNR_MIN) & crowded[i_obj] & t_star
    bl = residual_stats(frac[blended], frac_err[blended])
    ctx.add_metric(
        "truth_coadd_psf_flux_scatter_crowded",
        band,
        bl.robust_scatter,
        "fraction",
        n=bl.n,
        median=bl.median,
        std=bl.std,
    )
    return _flux_checks(th, "truth_coadd_psf_flux", band, st, "isolated primary true stars (coadd)", plot)


def _position_check(
    ctx: VerifyContext,
    th: Thresholds,
    p_ra: NDArray[np.float64],
    p_dec: NDArray[np.float64],
    t_ra: NDArray[np.float64],
    t_dec: NDArray[np.float64],
    i_obj: NDArray[np.intp],
    i_tru: NDArray[np.intp],
    t_star: NDArray[np.bool_],
    best_snr: NDArray[np.float64],
    crowded: NDArray[np.bool_],
) -> Check:
    sel = t_star[i_tru] & (best_snr[i_obj] > SNR_MIN) & ~crowded[i_obj]
    dra, ddec = sky_offsets_mas(p_ra[i_obj][sel], p_dec[i_obj][sel], t_ra[i_tru][sel], t_dec[i_tru][sel])
    st = position_residual_stats(dra, ddec)
    beyond_50 = float(np.mean(np.hypot(dra, ddec) > 50.0)) if st.n else float("nan")
    ctx.add_metric("truth_position_robust_scatter", "all", st.robust_scatter, "mas", n=st.n)
    ctx.add_metric("truth_position_beyond_50mas", "all", beyond_50, "fraction", n=st.n)
    reason = (
        f"{st.n} isolated true stars, S/N > {SNR_MIN:g}; robust scatter {st.robust_scatter:.3g} mas, "
        f"{100 * beyond_50:.3g} % beyond 50 mas, "
        f"median dRA {st.dra_median:.3g}, dDec {st.ddec_median:.3g} mas"
    )
    return th.evaluate("truth_position_rms", st.rms, reason=reason, n=st.n, missing="no isolated true star")


def _completeness_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prim: Table,
    tru: Table,
    bands: list[str],
    i_tru: NDArray[np.intp],
    snr: dict[str, NDArray[np.float64]],
    footprint: PolygonFootprint,
) -> list[Check]:
    t_ra, t_dec, t_star = float_column(tru, "ra"), float_column(tru, "dec"), np.asarray(tru["is_star"], bool)
    in_fp = footprint.contains(t_ra, t_dec)
    matched = np.zeros(len(tru), bool)
    matched[i_tru] = True
    detectable = np.zeros(len(tru), bool)
    curves: dict[str, dict[str, CompletenessCurve]] = {}
    for band in bands:
        sky_err = sky_flux_error(
            float_column(prim, f"{band}_psfFlux"), float_column(prim, f"{band}_psfFluxErr")
        )
        detectable |= expected_snr(float_column(tru, f"{band}_flux"), sky_err) >= SNR_DETECT
        curves[band] = _band_curves(
            ctx, band, flux_to_mag(float_column(tru, f"{band}_flux")), in_fp, t_star, matched
        )
    plot = None
    if ctx.make_plots and curves:
        path, plot = ctx.figure("truth_completeness.png")
        plots.plot_completeness(path, curves)
    sel = in_fp & t_star & detectable
    value = float(np.mean(matched[sel])) if sel.any() else float("nan")
    return [
        th.evaluate(
            "truth_completeness",
            value,
            n=int(sel.sum()),
            plot=plot,
            missing="no true star in the footprint",
            reason=f"{int(sel.sum())} true point sources in the footprint, expected S/N >= {SNR_DETECT:g}",
        )
    ]


def _band_curves(
    ctx: VerifyContext,
    band: str,
    mag: NDArray[np.float64],
    in_fp: NDArray[np.bool_],
    t_star: NDArray[np.bool_],
    matched: NDArray[np.bool_],
) -> dict[str, CompletenessCurve]:
    edges = magnitude_bins(mag[in_fp], width=MAG_BIN)
    out = {}
    for cls, sel in (("star", t_star), ("galaxy", ~t_star), ("all", np.ones_like(t_star))):
        use = in_fp & sel
        out[cls] = curve = completeness_curve(mag[use], matched[use], bin_edges=edges)
        for level in (50, 90):
            ctx.add_metric(
                f"truth_completeness_mag{level}_{cls}",
                band,
                completeness_limit(curve, level=level / 100),
                "mag",
            )
    return out


def _star_galaxy_check(
    ctx: VerifyContext,
    th: Thresholds,
    prim: Table,
    snr: dict[str, NDArray[np.float64]],
    best: NDArray[np.float64],
    i_obj: NDArray[np.intp],
    m_star: NDArray[np.bool_],
) -> Check:
    if "refExtendedness" not in prim.colnames:
        return th.not_available("truth_star_galaxy", "no refExtendedness in the Object table")
    ref_snr = best.copy()
    if "refBand" in prim.colnames:
        ref_band = np.asarray(prim["refBand"]).astype(str)
        for b, s in snr.items():
            ref_snr[ref_band == b] = s[ref_band == b]
    ext = float_column(prim, "refExtendedness")[i_obj]
    sel = (ref_snr[i_obj] > SNR_STAR_GALAXY) & np.isfinite(ext)
    stars, gals = sel & m_star, sel & ~m_star
    star_ok = float(np.mean(ext[stars] < 0.5)) if stars.any() else float("nan")
    gal_ok = float(np.mean(ext[gals] >= 0.5)) if gals.any() else float("nan")
    ctx.add_metric("truth_galaxy_classified_extended", "all", gal_ok, "fraction", n=int(gals.sum()))
    return th.evaluate(
        "truth_star_galaxy",
        star_ok,
        n=int(stars.sum()),
        missing="no true star with S/N > 20",
        reason=f"{int(stars.sum())} true stars S/N > {SNR_STAR_GALAXY:g} (refBand); "
        f"galaxies classified extended: {100 * gal_ok:.3g} % of {int(gals.sum())}",
    )


def _blind_scores(
    ctx: VerifyContext,
    prim: Table,
    unmatched: NDArray[np.bool_],
    bands: list[str],
    radius_arcsec: float,
    footprint: PolygonFootprint,
) -> NDArray[np.bool_]:
    """Record the blind-insertion scores as metrics; return the primary objects a blind insertion explains."""
    explained = np.zeros(len(prim), bool)
    blind = _read_blind(ctx.truth_dir)
    if blind is None:
        return explained
    b_ra, b_dec = blind["ra"].to_numpy(float), blind["dec"].to_numpy(float)
    idx = np.flatnonzero(unmatched)
    i_obj, _, _ = match_catalogs(
        float_column(prim, "coord_ra")[idx],
        float_column(prim, "coord_dec")[idx],
        b_ra,
        b_dec,
        radius_arcsec=radius_arcsec,
    )
    explained[idx[i_obj]] = True
    in_fp = footprint.contains(b_ra, b_dec)
    scores = blind_metrics(
        _to_pandas(prim),
        unmatched,
        blind,
        bands,
        in_footprint=in_fp,
        radius_arcsec=radius_arcsec,
        mag_bin_width=MAG_BIN,
        snr_min=SNR_MIN,
    )
    for key in ("n_inserted", "n_recovered", "n_unexplained_objects", "unexplained_fraction"):
        ctx.add_metric(f"blind_{key}", "all", scores[key]["value"], scores[key]["unit"])
    for kind, sec in scores["by_kind"].items():
        ctx.add_metric(
            "blind_recovered_fraction",
            kind,
            sec["recovered_fraction"]["value"],
            "fraction",
            n=sec["n_inserted"]["value"],
        )
    for band, sec in scores["bands"].items():
        ph = sec["photometry"]
        ctx.add_metric(
            "blind_flux_offset", band, ph["offset_median"]["value"], "fraction", n=ph["n"]["value"]
        )
    return explained


def _read_blind(truth_dir: Path | None) -> pd.DataFrame | None:
    if truth_dir is None:
        return None
    path = truth_dir / "sealed" / "blind.parquet"
    if not path.exists():
        return None
    df = pd.read_parquet(path)
    return df if len(df) else None
