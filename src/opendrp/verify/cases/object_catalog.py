"""DRP-00-25: scientific verification of the object catalog (reference 000 §5.5).

Primary objects (``detect_isPrimary``) of ``objectTable_tract`` (``objectTable`` when there is none).  The
**bright stars** of a band: point-like (``refExtendedness == 0``), no ``{band}_pixelFlags_saturated``,
``_edge``, ``_bad`` or ``{band}_psfFlux_flag``, S/N = ``{band}_psfFlux / {band}_psfFluxErr`` >
`~opendrp.verify.cases.source_catalog.SNR_MIN` (and so in the reference catalog), isolated (no other primary
object within `~opendrp.verify.cases.source_catalog.ISOLATION_FWHM` coadd PSF FWHM: the median over the
objects of ``{band}_ixxPSF, {band}_iyyPSF`` times the sky map's pixel scale), matched one to one to the
reference catalog within `~opendrp.verify.cases.source_catalog.MATCH_FWHM` FWHM.

Checks (rules of `opendrp.verify.catalogs`; fraction units unless stated):

- per band and tract: photometry against the reference catalog's fluxes (median, robust scatter, outliers)
  and astrometry (unclipped rms per axis, fraction beyond 100 mas), as for DRP-00-15;
- per band: forced vs unforced psfFlux (median ``forced / unforced - 1`` of bright isolated stars), from
  ``deepCoadd_forced_src`` and ``deepCoadd_meas`` joined on ``objectId`` (else on tract, patch and pixel
  position within half a FWHM) -- not available without ``deepCoadd_meas``;
- per band: aperture-correction consistency of the forced fluxes (``kronFlux``, ``gaussianFlux``,
  ``calibFlux`` over ``psfFlux``; a failure makes the case partial, as DM-13058 did);
- stellar locus, bands in order of the camera's filter wavelengths: per adjacent colour (``g-r``) the median
  offset (mag) of the bright stars' colour from the reference catalog's; the locus width (mag): with three or
  more bands the robust perpendicular scatter about the straight locus fitted in each adjacent colour-colour
  plane (``g-r`` vs ``r-i``), with two bands the robust scatter of the colour about the reference's;
- per band: the PSF ellipticity residual (star - coadd PSF model) averaged per patch, rms over the patches
  (star-by-star rms as a metric);
- with ``--truth``: the checks of `opendrp.verify.truth.object_truth_checks`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from ...qa import match_catalogs, radec_to_unit_vectors
from .. import _catalog_plots as plots
from .. import truth as truth_checks
from ..catalogs import (
    FWHM_PER_SIGMA,
    bright_star_mask,
    cell_residual_stats,
    colour,
    fit_locus,
    flag_column,
    float_column,
    flux_residuals,
    has_neighbour,
    ordered_bands,
    psf_residual_stats,
    psf_residuals,
    residual_stats,
    trace_radius,
)
from ..context import VerifyContext
from ..model import CaseResult, Check
from ..thresholds import Thresholds
from .source_catalog import (
    ISOLATION_FWHM,
    MATCH_FWHM,
    MIN_PER_CELL,
    SNR_MIN,
    RefMatch,
    apcorr_checks,
    reference_checks,
)

__all__ = ["run"]

CASE = "DRP-00-25"


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-25: checks of the Object table (rules in the module docstring)."""
    result = CaseResult(CASE, th.title(CASE), th.section(CASE))
    obj = _load_objects(ctx)
    if len(obj) == 0 or "detect_isPrimary" not in obj.colnames:
        why = "no objectTable_tract or objectTable in the collection"
        result.checks = [
            th.not_available(k, why) for k, s in th.specs.items() if s.case == CASE and not s.truth
        ]
        return result
    prim = obj[np.asarray(obj["detect_isPrimary"], bool)]
    bands = _bands(ctx, prim)
    fwhm = _fwhm_arcsec(ctx, prim, bands)
    if not fwhm > 0:
        why = "no coadd PSF model size ({band}_ixxPSF, {band}_iyyPSF) in the Object table"
        result.checks = [
            th.not_available(k, why) for k, s in th.specs.items() if s.case == CASE and not s.truth
        ]
        return result
    crowded = has_neighbour(
        radec_to_unit_vectors(float_column(prim, "coord_ra"), float_column(prim, "coord_dec")),
        radius=_chord(ISOLATION_FWHM * fwhm),
    )
    refcat = ctx.refcat()
    ref_index = np.full(len(prim), -1, np.intp)
    i_obj, i_ref, _ = match_catalogs(
        float_column(prim, "coord_ra"),
        float_column(prim, "coord_dec"),
        float_column(refcat, "coord_ra"),
        float_column(refcat, "coord_dec"),
        radius_arcsec=MATCH_FWHM * fwhm,
    )
    ref_index[i_obj] = i_ref
    tracts = np.asarray(prim["tract"]) if "tract" in prim.colnames else np.zeros(len(prim), int)
    bright: dict[str, NDArray[np.bool_]] = {}
    for band in bands:
        m = _ref_match(prim, refcat, band, ref_index, crowded)
        bright[band] = m.selected
        result.checks += reference_checks(ctx, th, "obj", band, tracts, m, refcat, figures=result.figures)
        cols = {a: f"{band}_{a}" for a in ("kronFlux", "gaussianFlux", "calibFlux", "psfFlux")}
        result.checks += apcorr_checks(ctx, th, "obj", band, prim, m.selected, columns=cols)
        result.checks += _psf_checks(ctx, th, band, prim, m.isolated_bright)
    result.checks += _forced_unforced_checks(ctx, th, bands, fwhm)
    result.checks += _locus_checks(ctx, th, prim, bands, bright, refcat, ref_index)
    if ctx.truth() is not None:
        result.checks += truth_checks.object_truth_checks(
            ctx, th, prim, bands, crowded=crowded, radius_arcsec=MATCH_FWHM * fwhm
        )
    ctx.add_metric("obj_psf_fwhm_median", "all", fwhm, "arcsec")
    return result


def _chord(arcsec: float) -> float:
    return float(2.0 * np.sin(np.radians(arcsec / 3600.0) / 2.0))


def _load_objects(ctx: VerifyContext) -> Table:
    for name in ("objectTable_tract", "objectTable"):
        if ctx.refs(name):
            return ctx.table(name)
    return Table()


def _bands(ctx: VerifyContext, prim: Table) -> list[str]:
    """Bands of the Object table in order of the camera's filter wavelengths."""
    names = sorted(c[: -len("_psfFlux")] for c in prim.colnames if c.endswith("_psfFlux"))
    waves = []
    for b in names:
        try:
            waves.append(float(ctx.camera.filter_for_band(b).wavelength_nm))
        except (KeyError, LookupError, ValueError):
            waves.append(float("inf"))
    return ordered_bands(names, waves)


def _fwhm_arcsec(ctx: VerifyContext, prim: Table, bands: list[str]) -> float:
    """Median coadd PSF FWHM (arcsec) over the objects and bands, pixels times the sky map's pixel scale."""
    fwhm = [
        FWHM_PER_SIGMA * trace_radius(float_column(prim, f"{b}_ixxPSF"), float_column(prim, f"{b}_iyyPSF"))
        for b in bands
        if f"{b}_ixxPSF" in prim.colnames
    ]
    pix = float(np.nanmedian(np.concatenate(fwhm))) if fwhm else float("nan")
    return pix * float(ctx.skymap.config.pixel_scale_arcsec)


def _bad(prim: Table, band: str) -> NDArray[np.bool_]:
    bad = np.zeros(len(prim), bool)
    for flag in ("pixelFlags_saturated", "pixelFlags_edge", "pixelFlags_bad", "psfFlux_flag"):
        bad |= flag_column(prim, f"{band}_{flag}")
    return bad


def _ref_match(
    prim: Table, refcat: Table, band: str, ref_index: NDArray[np.intp], crowded: NDArray[np.bool_]
) -> RefMatch:
    flux, err = float_column(prim, f"{band}_psfFlux"), float_column(prim, f"{band}_psfFluxErr")
    ext = (
        float_column(prim, "refExtendedness")
        if "refExtendedness" in prim.colnames
        else float_column(prim, f"{band}_extendedness")
    )
    point = bright_star_mask(flux, err, ext, snr_min=SNR_MIN, bad=_bad(prim, band))
    matched = ref_index >= 0
    if f"{band}_flux" in refcat.colnames:
        rf, re = float_column(refcat, f"{band}_flux"), float_column(refcat, f"{band}_fluxErr")
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_snr = np.where(matched, rf[np.maximum(ref_index, 0)] / re[np.maximum(ref_index, 0)], np.nan)
        matched &= ~(ref_snr <= SNR_MIN)
    ref_err = (
        float_column(refcat, "coord_decErr") if "coord_decErr" in refcat.colnames else np.zeros(len(refcat))
    )
    err_mas = 3.6e6 * np.where(ref_index >= 0, ref_err[np.maximum(ref_index, 0)], np.nan)
    return RefMatch.from_masks(
        prim,
        flux_columns=(f"{band}_psfFlux", f"{band}_psfFluxErr"),
        err_mas=err_mas,
        ref_index=ref_index,
        point=point,
        crowded=crowded,
        matched=matched,
    )


def _psf_checks(
    ctx: VerifyContext,
    th: Thresholds,
    band: str,
    prim: Table,
    sel: NDArray[np.bool_],
) -> list[Check]:
    """Coadd PSF ellipticity residual of the bright isolated point sources ``sel``, averaged per patch."""
    names = ("ixx", "iyy", "ixy", "ixxPSF", "iyyPSF", "ixyPSF")
    if any(f"{band}_{n}" not in prim.colnames for n in names):
        return [th.not_available("obj_psf_e_residual", "no shape columns", scope={"band": band})]
    m = [float_column(prim, f"{band}_{n}") for n in names]
    de1, de2, _ = psf_residuals(*m)
    patch = np.asarray(prim["tract"], np.int64) * 1_000_000 + np.asarray(prim["patch"], np.int64)
    cst = cell_residual_stats(de1[sel], de2[sel], patch[sel], min_per_cell=MIN_PER_CELL)
    st = psf_residual_stats(*(a[sel] for a in m))
    ctx.add_metric("obj_psf_e_residual_per_star_rms", band, st.e_rms, "", n=st.n, robust=st.e_robust_scatter)
    ctx.add_metric("obj_psf_size_residual", band, st.size_median, "fraction", n=st.n)
    plot = None
    if ctx.make_plots:
        path, plot = ctx.figure(f"obj_psf_whiskers_{band}.png")
        plots.plot_whiskers(
            path,
            float_column(prim, "coord_ra")[sel],
            float_column(prim, "coord_dec")[sel],
            de1[sel],
            de2[sel],
            title=f"Object {band}: star - coadd PSF e",
            xlabel="RA (deg)",
            ylabel="Dec (deg)",
        )
    reason = (
        f"{st.n} bright isolated point sources (S/N > {SNR_MIN:g}) in {cst.n_cells} patches; noise alone "
        f"gives {cst.noise:.3g}; per star: rms {st.e_rms:.3g}, robust {st.e_robust_scatter:.3g}"
    )
    return [
        th.evaluate(
            "obj_psf_e_residual",
            cst.rms,
            scope={"band": band},
            reason=reason,
            n=cst.n,
            plot=plot,
            missing=f"no patch with {MIN_PER_CELL} bright isolated point sources",
        )
    ]


def _forced_unforced_checks(ctx: VerifyContext, th: Thresholds, bands: list[str], fwhm: float) -> list[Check]:
    if not ctx.refs("deepCoadd_meas"):
        why = (
            "no deepCoadd_meas (the unforced coadd measurement, issue 10) in the collection: forced "
            "photometry cannot be compared with unforced"
        )
        return [th.not_available("forced_unforced", why, scope={"band": b}) for b in bands]
    forced, meas = ctx.table("deepCoadd_forced_src"), ctx.table("deepCoadd_meas")
    radius_pix = 0.5 * fwhm / float(ctx.skymap.config.pixel_scale_arcsec)
    checks = []
    for band in bands:
        f = forced[np.asarray(forced["band"]).astype(str) == band]
        u = meas[np.asarray(meas["band"]).astype(str) == band]
        i_f, i_u = join_catalogs(f, u, radius_pix=radius_pix)
        crowded = has_neighbour(
            np.column_stack([float_column(f, "x"), float_column(f, "y")]),
            radius=ISOLATION_FWHM * 2 * radius_pix,
            group=_patch_key(f),
        )
        bad = (
            flag_column(f, "pixelFlags_saturated")
            | flag_column(f, "pixelFlags_edge")
            | flag_column(f, "psfFlux_flag")
        )
        sel = bright_star_mask(
            f["psfFlux"], f["psfFluxErr"], f["extendedness"], snr_min=SNR_MIN, bad=bad, crowded=crowded
        )[i_f]
        frac, frac_err = flux_residuals(
            float_column(f, "psfFlux")[i_f],
            float_column(f, "psfFluxErr")[i_f],
            float_column(u, "psfFlux")[i_u],
        )
        st = residual_stats(frac[sel], frac_err[sel])
        checks.append(
            th.evaluate(
                "forced_unforced",
                st.median,
                scope={"band": band},
                n=st.n,
                reason=f"{st.n} bright isolated point sources; robust scatter "
                f"{100 * st.robust_scatter:.3g} %, rms {100 * st.std:.3g} %",
                missing="no bright isolated point source in both catalogs",
            )
        )
    return checks


def _patch_key(t: Table) -> NDArray[np.int64]:
    return np.asarray(t["tract"], np.int64) * 1_000_000 + np.asarray(t["patch"], np.int64)


def join_catalogs(a: Table, b: Table, *, radius_pix: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows of two coadd catalogs of one band that are the same object: on ``objectId`` when both have it,
    else the nearest within ``radius_pix`` pixels in the same tract and patch."""
    if "objectId" in a.colnames and "objectId" in b.colnames:
        _, ia, ib = np.intersect1d(np.asarray(a["objectId"]), np.asarray(b["objectId"]), return_indices=True)
        return ia.astype(np.intp), ib.astype(np.intp)
    offset = 1e9  # pixels between patches in the joint tree: never matched across patches
    pa = np.column_stack([float_column(a, "x"), float_column(a, "y"), _patch_key(a) * offset])
    pb = np.column_stack([float_column(b, "x"), float_column(b, "y"), _patch_key(b) * offset])
    if len(pb) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    dist, idx = cKDTree(pb).query(pa, k=1, distance_upper_bound=radius_pix)
    ok = np.isfinite(dist)
    return np.flatnonzero(ok).astype(np.intp), idx[ok].astype(np.intp)


def _locus_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prim: Table,
    bands: list[str],
    bright: dict[str, NDArray[np.bool_]],
    refcat: Table,
    ref_index: NDArray[np.intp],
) -> list[Check]:
    if len(bands) < 2:
        return [
            th.not_available(k, "fewer than two bands")
            for k in ("stellar_locus_width", "stellar_locus_offset")
        ]
    checks = []
    colours: list[tuple[str, NDArray[np.float64], NDArray[np.bool_]]] = []
    for a, b in zip(bands[:-1], bands[1:], strict=True):
        sel = bright[a] & bright[b]
        name = f"{a}-{b}"
        c, err = colour(
            float_column(prim, f"{a}_psfFlux"),
            float_column(prim, f"{b}_psfFlux"),
            float_column(prim, f"{a}_psfFluxErr"),
            float_column(prim, f"{b}_psfFluxErr"),
        )
        colours.append((name, c, sel))
        if f"{a}_flux" not in refcat.colnames or f"{b}_flux" not in refcat.colnames:
            checks.append(
                th.not_available(
                    "stellar_locus_offset", f"the reference catalog lacks {name}", scope={"colour": name}
                )
            )
            continue
        r = np.maximum(ref_index, 0)
        rc, rerr = colour(
            float_column(refcat, f"{a}_flux")[r],
            float_column(refcat, f"{b}_flux")[r],
            float_column(refcat, f"{a}_fluxErr")[r],
            float_column(refcat, f"{b}_fluxErr")[r],
        )
        st = residual_stats((c - rc)[sel], np.hypot(err, rerr)[sel])
        checks += _colour_checks(ctx, th, name, st, c[sel], (c - rc)[sel], two_bands=len(bands) == 2)
    for (n1, c1, s1), (n2, c2, s2) in zip(colours[:-1], colours[1:], strict=True):
        checks.append(_locus_width_check(ctx, th, n1, n2, c1[s1 & s2], c2[s1 & s2]))
    return checks


def _colour_checks(
    ctx: VerifyContext,
    th: Thresholds,
    name: str,
    st: Any,
    c: NDArray[np.float64],
    resid: NDArray[np.float64],
    *,
    two_bands: bool,
) -> list[Check]:
    plot = None
    if ctx.make_plots:
        path, plot = ctx.figure(f"stellar_locus_{name}.png")
        plots.plot_stellar_locus(
            path,
            c,
            resid,
            xlabel=f"{name} (mag)",
            ylabel=f"{name} - reference {name} (mag)",
            title=f"bright stars: {name} against the reference catalog",
        )
    reason = (
        f"{st.n} bright isolated stars in both bands; robust scatter {st.robust_scatter:.3g} mag, rms "
        f"{st.std:.3g} mag, expected from the errors {st.expected_scatter:.3g} mag"
    )
    ctx.add_metric(
        "colour_residual_scatter",
        name,
        st.robust_scatter,
        "mag",
        n=st.n,
        std=st.std,
        expected=st.expected_scatter,
    )
    out = [
        th.evaluate(
            "stellar_locus_offset",
            st.median,
            scope={"colour": name},
            reason=reason,
            n=st.n,
            plot=plot,
            missing="no bright star in both bands",
        )
    ]
    if two_bands:
        out.append(
            th.evaluate(
                "stellar_locus_width",
                st.robust_scatter,
                scope={"colour": name},
                n=st.n,
                plot=plot,
                reason=f"two bands: scatter of the colour about the reference's; {reason}",
                missing="no bright star in both bands",
            )
        )
    return out


def _locus_width_check(
    ctx: VerifyContext, th: Thresholds, n1: str, n2: str, c1: NDArray[np.float64], c2: NDArray[np.float64]
) -> Check:
    locus = fit_locus(c1, c2)
    plot = None
    if ctx.make_plots:
        path, plot = ctx.figure(f"stellar_locus_{n1}_{n2}.png")
        plots.plot_stellar_locus(
            path,
            c1,
            c2,
            xlabel=f"{n1} (mag)",
            ylabel=f"{n2} (mag)",
            title=f"stellar locus, width {locus.width:.3g} mag",
            line=(locus.c1_0, locus.c2_0, locus.angle),
        )
    return th.evaluate(
        "stellar_locus_width",
        locus.width,
        scope={"plane": f"{n1} vs {n2}"},
        n=locus.n,
        plot=plot,
        reason=f"{locus.n} bright isolated stars kept by the 3-sigma clipping of {len(c1)}",
        missing="fewer than 3 bright stars in all three bands",
    )
