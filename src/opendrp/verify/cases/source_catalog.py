"""DRP-00-15: scientific verification of the source catalog (reference 000 §5.4).

Selection of the **bright stars** (every rule from the data, nothing from the camera's name):

- point-like in the data (``extendedness == 0``), no rejecting pixel flag (``pixelFlags_saturated``,
  ``_saturatedCenter``, ``_bad``, ``_edge``, ``_suspect``, ``_cr``, ``psfFlux_flag``), not deblended;
- isolated: no other source of the same CCD of the same visit within `ISOLATION_FWHM` PSF FWHM (the median
  FWHM of that CCD's PSF model at the sources, from ``ixxPSF, iyyPSF``, in pixels);
- S/N = psfFlux / psfFluxErr > `SNR_MIN`, and the reference catalog's S/N in the band > `SNR_MIN`;
- matched to the reference catalog (which holds stars) within `MATCH_FWHM` times the median PSF FWHM (arcsec:
  pixels times the camera's pixel scale), nearest reference star (several visits of a star share it).

Checks, per band and tract (the tract of each source from the sky map): photometry against the reference
catalog's own fluxes (``psfFlux / ref_flux - 1``: median, robust scatter, fraction of 5-sigma-and-5 %
outliers; the run's colour terms are not applied, so a zero-point error shows); astrometry (unclipped rms
per axis, median offset, fraction beyond 100 mas).

Checks per band: aperture-correction consistency (median of ``kronFlux``, ``gaussianFlux``, ``calibFlux``
over ``psfFlux`` minus 1, on the same stars); PSF shape residuals on bright isolated point sources (the
reference match not required): the star - PSF model ellipticity residual averaged over the stars of each CCD
of each visit, rms over those cells per component (star-by-star residuals are dominated by shape noise and
are reported as metrics), and the median fractional trace-radius residual.  The SRD metrics (PA1 ... TE2)
come from `opendrp.verify.srd`; with ``--truth``, the single-visit truth checks of `opendrp.verify.truth`.

Extra metrics (``ctx.metrics``): unclipped std, expected scatter from the errors (measured and reference in
quadrature), pulls, 3-sigma tail fractions, and the same photometry on crowded (blended) bright stars.
Figures: magnitude vs residual, sky and focal-plane maps of the residuals, PSF whiskers on the focal plane,
per-CCD maps of the calexp metadata ZEROPT (mag), PSF_FWHM (arcsec) and ASTRMRMS (mas).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray

from ...qa import flux_to_mag, match_to_nearest, sky_offsets_mas
from .. import _catalog_plots as plots
from .. import truth as truth_checks
from ..catalogs import (
    FWHM_PER_SIGMA,
    bright_star_mask,
    cell_residual_stats,
    evaluate_checks,
    flag_column,
    float_column,
    flux_residuals,
    group_indices,
    has_neighbour,
    position_residual_stats,
    psf_residual_stats,
    psf_residuals,
    residual_stats,
    signal_to_noise,
    trace_radius,
)
from ..context import VerifyContext
from ..model import CaseResult, Check
from ..thresholds import Thresholds

__all__ = [
    "ISOLATION_FWHM",
    "MATCH_FWHM",
    "SNR_MIN",
    "RefMatch",
    "reference_checks",
    "run",
]

CASE = "DRP-00-15"
SNR_MIN = 50.0
"""Minimum S/N of a bright star, in the data and in the reference catalog."""
ISOLATION_FWHM = 3.0
"""Isolation radius in PSF FWHM."""
MATCH_FWHM = 1.0
"""Match radius to the reference catalog in PSF FWHM."""
OUTLIER_SIGMA, OUTLIER_FLUX, OUTLIER_MAS = 5.0, 0.05, 100.0
"""Photometric outliers: beyond 5 robust sigma and 5 %; astrometric: beyond 100 mas."""
APCORR_FLUXES = ("kronFlux", "gaussianFlux", "calibFlux")
MIN_PER_CELL = 5
"""Fewest stars in a cell (a CCD of a visit) of the PSF ellipticity check."""

_BAD_FLAGS = (
    "pixelFlags_saturated",
    "pixelFlags_saturatedCenter",
    "pixelFlags_bad",
    "pixelFlags_edge",
    "pixelFlags_suspect",
    "pixelFlags_cr",
    "psfFlux_flag",
)
_COLUMNS = (
    "coord_ra coord_dec coord_raErr coord_decErr x y psfFlux psfFluxErr kronFlux kronFluxErr gaussianFlux "
    "gaussianFluxErr calibFlux calibFluxErr ixx iyy ixy ixxPSF iyyPSF ixyPSF extendedness deblend_blended "
    "calib_psf_used visit detector band"
).split() + list(_BAD_FLAGS)


@dataclass
class RefMatch:
    """Sources (or objects) of one band matched to the reference catalog.

    Attributes
    ----------
    ra, dec : `numpy.ndarray`
        Measured positions (deg), all rows.
    flux, flux_err : `numpy.ndarray`
        PSF flux and error (nJy).
    err_mas : `numpy.ndarray`
        Per-axis position error, measured and reference in quadrature (mas; NaN when unknown).
    ref_index : `numpy.ndarray` of int
        Row of the matched reference star, -1 if none.
    selected : `numpy.ndarray` of bool
        The bright-star selection of the checks (matched included).
    crowded_bright : `numpy.ndarray` of bool
        Bright matched point sources that failed only the isolation cut (reported, not checked).
    isolated_bright : `numpy.ndarray` of bool
        Bright isolated point sources, matched or not (the PSF checks).
    """

    ra: NDArray[np.float64]
    dec: NDArray[np.float64]
    flux: NDArray[np.float64]
    flux_err: NDArray[np.float64]
    err_mas: NDArray[np.float64]
    ref_index: NDArray[np.intp]
    selected: NDArray[np.bool_]
    crowded_bright: NDArray[np.bool_]
    isolated_bright: NDArray[np.bool_]

    @classmethod
    def from_masks(
        cls,
        cat: Table,
        *,
        flux_columns: tuple[str, str],
        err_mas: NDArray[np.float64],
        ref_index: NDArray[np.intp],
        point: NDArray[np.bool_],
        crowded: NDArray[np.bool_],
        matched: NDArray[np.bool_],
    ) -> RefMatch:
        """The match of the rows of ``cat`` from their masks (the selections of the module docstring).

        Parameters
        ----------
        cat : `astropy.table.Table`
            The sources or objects, with ``coord_ra`` and ``coord_dec`` (deg).
        flux_columns : `tuple` [`str`, `str`]
            The PSF flux and error columns (nJy), e.g. ``("g_psfFlux", "g_psfFluxErr")``.
        err_mas : `numpy.ndarray`
            Per-axis position error of each row (mas; NaN when unknown).
        ref_index : `numpy.ndarray` of int
            Row of the matched reference star, -1 if none.
        point, crowded, matched : `numpy.ndarray` of bool
            Bright clean point sources; with a neighbour (or deblended); matched to a usable reference star.
        """
        return cls(
            ra=float_column(cat, "coord_ra"),
            dec=float_column(cat, "coord_dec"),
            flux=float_column(cat, flux_columns[0]),
            flux_err=float_column(cat, flux_columns[1]),
            err_mas=err_mas,
            ref_index=ref_index,
            selected=point & ~crowded & matched,
            crowded_bright=point & crowded & matched,
            isolated_bright=point & ~crowded,
        )


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-15: checks of the single-visit source catalogs (rules in the module docstring)."""
    result = CaseResult(CASE, th.title(CASE), th.section(CASE))
    src = _load_sources(ctx)
    if len(src) == 0:
        why = "no src catalogs in the collection"
        result.checks = [th.not_available(k, why) for k in _own_keys(th)]
        return result
    refcat = ctx.refcat()
    crowded, bad, fwhm_pix = _crowding(src)
    fwhm_arcsec = float(np.nanmedian(fwhm_pix)) * float(ctx.camera.pixel_scale_arcsec)
    if not fwhm_arcsec > 0:
        result.checks = [
            th.not_available(k, "no PSF model size (ixxPSF, iyyPSF) in src") for k in _own_keys(th)
        ]
        return result
    ra, dec = float_column(src, "coord_ra"), float_column(src, "coord_dec")
    ref_index = match_to_nearest(
        ra,
        dec,
        float_column(refcat, "coord_ra"),
        float_column(refcat, "coord_dec"),
        radius_arcsec=MATCH_FWHM * fwhm_arcsec,
    )
    tracts = np.asarray(ctx.skymap.find_tract(ra, dec))
    bands = np.asarray(src["band"]).astype(str)
    for band in sorted(set(bands.tolist())):
        rows = np.flatnonzero(bands == band)
        m = _ref_match(src[rows], refcat, band, ref_index[rows], crowded[rows], bad[rows])
        result.checks += _band_checks(ctx, th, band, src[rows], m, refcat, tracts[rows], result.figures)
    result.checks += _srd_checks(ctx, th, result)
    if ctx.truth() is not None:
        result.checks += truth_checks.source_truth_checks(
            ctx, th, src, clean=~(crowded | bad), radius_arcsec=MATCH_FWHM * fwhm_arcsec
        )
    result.figures += _ccd_maps(ctx, result)
    ctx.add_metric("src_psf_fwhm_median", "all", fwhm_arcsec, "arcsec")
    return result


def _band_checks(
    ctx: VerifyContext,
    th: Thresholds,
    band: str,
    sub: Table,
    m: RefMatch,
    refcat: Table,
    tracts: NDArray[Any],
    figures: list[str],
) -> list[Check]:
    """Reference, aperture-correction and PSF checks of the sources ``sub`` of one band."""
    outlines = ccd_outlines(ctx, np.unique(np.asarray(sub["detector"])))
    checks = reference_checks(
        ctx, th, "src", band, tracts, m, refcat, focal=_focal(ctx, sub), outlines=outlines, figures=figures
    )
    checks += apcorr_checks(ctx, th, "src", band, sub, m.selected)
    return checks + _psf_checks(ctx, th, band, sub, m.isolated_bright)


def _own_keys(th: Thresholds) -> list[str]:
    srd = {"PA1", "PF1", "PA2", "AM1", "AM2", "AM3", "AD1", "AD2", "AD3", "AF1", "AF2", "AF3", "TE1", "TE2"}
    return [k for k, s in th.specs.items() if s.case == CASE and k not in srd and not s.truth]


def _load_sources(ctx: VerifyContext) -> Table:
    refs = ctx.refs("src")
    if not refs:
        return Table()
    present = set(ctx.get(refs[0]).colnames) | {"visit", "detector", "band"}
    return ctx.table("src", columns=[c for c in _COLUMNS if c in present])


def _crowding(src: Table) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.float64]]:
    """(crowded, bad, PSF FWHM in pixels) per source; crowded: a neighbour within `ISOLATION_FWHM` FWHM
    of the same CCD and visit, or deblended."""
    fwhm = FWHM_PER_SIGMA * trace_radius(float_column(src, "ixxPSF"), float_column(src, "iyyPSF"))
    keys = np.column_stack([np.asarray(src["visit"], np.int64), np.asarray(src["detector"], np.int64)])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    radius = np.array([ISOLATION_FWHM * np.nanmedian(fwhm[group == k]) for k in range(int(group.max()) + 1)])
    points = np.column_stack([float_column(src, "x"), float_column(src, "y")])
    crowded = has_neighbour(points, radius=radius, group=group) | flag_column(src, "deblend_blended")
    bad = np.zeros(len(src), bool)
    for name in _BAD_FLAGS:
        bad |= flag_column(src, name)
    return crowded, bad, fwhm


def _ref_match(
    sub: Table,
    refcat: Table,
    band: str,
    ref_index: NDArray[np.intp],
    crowded: NDArray[np.bool_],
    bad: NDArray[np.bool_],
) -> RefMatch:
    flux, err = float_column(sub, "psfFlux"), float_column(sub, "psfFluxErr")
    ref_snr = _ref_snr(refcat, band, ref_index)
    point = bright_star_mask(flux, err, sub["extendedness"], snr_min=SNR_MIN, bad=bad)
    matched = (ref_index >= 0) & ~(ref_snr <= SNR_MIN)
    err_mas = 3.6e6 * np.hypot(float_column(sub, "coord_decErr"), _ref_col(refcat, "coord_decErr", ref_index))
    return RefMatch.from_masks(
        sub,
        flux_columns=("psfFlux", "psfFluxErr"),
        err_mas=err_mas,
        ref_index=ref_index,
        point=point,
        crowded=crowded,
        matched=matched,
    )


def _ref_col(refcat: Table, name: str, index: NDArray[np.intp]) -> NDArray[np.float64]:
    """Reference column at the matched rows (NaN where unmatched or absent)."""
    if name not in refcat.colnames:
        return np.full(index.size, np.nan)
    vals = float_column(refcat, name)
    return np.where(index >= 0, vals[np.maximum(index, 0)], np.nan)


def _ref_snr(refcat: Table, band: str, index: NDArray[np.intp]) -> NDArray[np.float64]:
    if f"{band}_flux" not in refcat.colnames:
        return np.full(index.size, np.nan)
    snr = signal_to_noise(_ref_col(refcat, f"{band}_flux", index), _ref_col(refcat, f"{band}_fluxErr", index))
    return np.where(np.isfinite(snr), snr, np.inf)  # a reference without errors counts as exact


def _focal(ctx: VerifyContext, sub: Table) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Focal-plane position (mm) of each source from its CCD and pixel position (the camera's geometry)."""
    cam = ctx.camera
    fx, fy = np.full(len(sub), np.nan), np.full(len(sub), np.nan)
    det = np.asarray(sub["detector"], np.int64)
    for d in np.unique(det):
        rows = det == d
        fx[rows], fy[rows] = cam.detector(int(d)).pixel_to_focal_plane(
            float_column(sub, "x")[rows], float_column(sub, "y")[rows], cam.pixel_size_mm
        )
    return fx, fy


def ccd_outlines(ctx: VerifyContext, detectors: Any) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Focal-plane outlines (mm) of CCDs, from the camera."""
    cam = ctx.camera
    out = []
    for d in detectors:
        det = cam.detector(int(d))
        x = np.array([-0.5, det.nx - 0.5, det.nx - 0.5, -0.5])
        y = np.array([-0.5, -0.5, det.ny - 0.5, det.ny - 0.5])
        fx, fy = det.pixel_to_focal_plane(x, y, cam.pixel_size_mm)
        out.append((np.asarray(fx), np.asarray(fy)))
    return out


def reference_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prefix: str,
    band: str,
    tracts: NDArray[Any],
    m: RefMatch,
    refcat: Table,
    *,
    focal: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
    outlines: list[tuple[NDArray[np.float64], NDArray[np.float64]]] | None = None,
    figures: list[str] | None = None,
) -> list[Check]:
    """Photometry and astrometry against the reference catalog per tract of one band (``prefix``: ``src`` or
    ``obj``: the check keys ``{prefix}_ref_phot_offset`` ...), with their metrics and figures.

    ``focal``: the focal-plane positions (mm) of the rows, for a focal-plane residual map with the CCD
    ``outlines``; the maps (not tied to one check) are appended to ``figures``.
    """
    ref_flux = _ref_col(refcat, f"{band}_flux", m.ref_index)
    ref_err = _ref_col(refcat, f"{band}_fluxErr", m.ref_index)
    frac, frac_err = flux_residuals(m.flux, m.flux_err, ref_flux, np.nan_to_num(ref_err))
    dra, ddec = sky_offsets_mas(
        m.ra, m.dec, _ref_col(refcat, "coord_ra", m.ref_index), _ref_col(refcat, "coord_dec", m.ref_index)
    )
    plot_phot, plot_ast = _reference_plots(ctx, prefix, band, m, ref_flux, frac, dra, ddec, th)
    maps = _residual_maps(ctx, prefix, band, m, frac, focal, outlines)
    if figures is not None:
        figures += maps
    checks: list[Check] = []
    has_flux = f"{band}_flux" in refcat.colnames
    for (tract,), rows in group_indices(tracts).items():
        scope = {"band": band, "tract": tract}
        sel = rows[m.selected[rows]]
        what = f"{sel.size} bright isolated stars (S/N > {SNR_MIN:g}) matched to the reference catalog"
        if has_flux:
            ph = residual_stats(
                frac[sel], frac_err[sel], outlier_sigma=OUTLIER_SIGMA, outlier_min=OUTLIER_FLUX
            )
            checks += _phot_checks(th, prefix, scope, ph, what, plot_phot)
            _phot_metrics(ctx, f"{prefix}_ref_phot", f"{band}/{tract}", ph)
            crowd = rows[m.crowded_bright[rows]]
            cr = residual_stats(frac[crowd], frac_err[crowd])
            ctx.add_metric(
                f"{prefix}_ref_phot_scatter_crowded",
                f"{band}/{tract}",
                cr.robust_scatter,
                "fraction",
                n=cr.n,
                median=cr.median,
            )
        else:
            why = f"the reference catalog has no {band}_flux"
            checks += [th.not_available(f"{prefix}_ref_phot_{k}", why, scope=scope) for k in _PHOT]
        checks += _astrom_checks(ctx, th, prefix, scope, dra[sel], ddec[sel], m.err_mas[sel], what, plot_ast)
    return checks


_PHOT = ("offset", "scatter", "outliers")


def _phot_checks(
    th: Thresholds, prefix: str, scope: dict[str, Any], ph: Any, what: str, plot: str | None
) -> list[Check]:
    extra = (
        f"{what}; rms {100 * ph.std:.3g} %, expected from the errors {100 * ph.expected_scatter:.3g} %, "
        f"pull scatter {ph.pull_scatter:.3g}"
    )
    key, none = f"{prefix}_ref_phot", "no bright isolated star matched"
    offset = [("offset", ph.median, what)]
    spread = [
        ("scatter", ph.robust_scatter, extra),
        ("outliers", ph.outlier_fraction, f"{what}; 3-sigma tail {100 * ph.tail_fraction:.3g} %"),
    ]
    checks = evaluate_checks(th, key, offset, scope=scope, n=ph.n, plot=plot, missing=f"{none} ({what})")
    return checks + evaluate_checks(th, key, spread, scope=scope, n=ph.n, plot=plot, missing=none)


def _phot_metrics(ctx: VerifyContext, name: str, scope: str, ph: Any) -> None:
    ctx.add_metric(f"{name}_std", scope, ph.std, "fraction", n=ph.n)
    ctx.add_metric(f"{name}_expected_scatter", scope, ph.expected_scatter, "fraction", n=ph.n)
    ctx.add_metric(f"{name}_pull_median", scope, ph.pull_median, "sigma", n=ph.n)
    ctx.add_metric(f"{name}_pull_scatter", scope, ph.pull_scatter, "sigma", n=ph.n)
    ctx.add_metric(f"{name}_tail_fraction", scope, ph.tail_fraction, "fraction", n=ph.n)


def _astrom_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prefix: str,
    scope: dict[str, Any],
    dra: NDArray[np.float64],
    ddec: NDArray[np.float64],
    err_mas: NDArray[np.float64],
    what: str,
    plot: str | None,
) -> list[Check]:
    st = position_residual_stats(dra, ddec, err_mas=err_mas, outlier_mas=OUTLIER_MAS)
    label = f"{scope['band']}/{scope['tract']}"
    ctx.add_metric(f"{prefix}_ref_astrom_robust_scatter", label, st.robust_scatter, "mas", n=st.n)
    ctx.add_metric(f"{prefix}_ref_astrom_expected_scatter", label, st.expected_scatter, "mas", n=st.n)
    reason = (
        f"{what}; robust scatter {st.robust_scatter:.3g} mas, expected from the errors "
        f"{st.expected_scatter:.3g} mas; median dRA {st.dra_median:.3g}, dDec {st.ddec_median:.3g} mas"
    )
    items = [("rms", st.rms, reason), ("outliers", st.outlier_fraction, what)]
    if f"{prefix}_ref_astrom_offset" in th.specs:
        items.append(("offset", st.offset, reason))
    none = "no bright isolated star matched"
    return evaluate_checks(th, f"{prefix}_ref_astrom", items, scope=scope, n=st.n, plot=plot, missing=none)


def _reference_plots(
    ctx: VerifyContext,
    prefix: str,
    band: str,
    m: RefMatch,
    ref_flux: NDArray[np.float64],
    frac: NDArray[np.float64],
    dra: NDArray[np.float64],
    ddec: NDArray[np.float64],
    th: Thresholds,
) -> tuple[str | None, str | None]:
    if not ctx.make_plots:
        return None, None
    matched = m.ref_index >= 0
    mag = flux_to_mag(ref_flux)
    s = m.selected
    p_phot, rel_phot = ctx.figure(f"{prefix}_ref_phot_{band}.png")
    plots.plot_mag_residual(
        p_phot,
        mag[matched],
        100 * frac[matched],
        s[matched],
        ylabel="psfFlux / ref - 1 (%)",
        title=f"{prefix} {band}: photometry vs reference",
        limit=100 * (th.spec(f"{prefix}_ref_phot_offset").threshold or 0),
    )
    p_ast, rel_ast = ctx.figure(f"{prefix}_ref_astrom_{band}.png")
    plots.plot_mag_residual(
        p_ast,
        np.concatenate([mag[matched]] * 2),
        np.concatenate([dra[matched], ddec[matched]]),
        np.concatenate([s[matched]] * 2),
        ylabel="dRA cos(Dec), dDec (mas)",
        title=f"{prefix} {band}: astrometry vs reference (both axes)",
        limit=OUTLIER_MAS,
    )
    return rel_phot, rel_ast


def _residual_maps(
    ctx: VerifyContext,
    prefix: str,
    band: str,
    m: RefMatch,
    frac: NDArray[np.float64],
    focal: tuple[NDArray[np.float64], NDArray[np.float64]] | None,
    outlines: list[tuple[NDArray[np.float64], NDArray[np.float64]]] | None,
) -> list[str]:
    """Photometric residuals of the check's stars on the sky and (sources) on the focal plane."""
    if not ctx.make_plots:
        return []
    s = m.selected
    p_sky, rel_sky = ctx.figure(f"{prefix}_ref_phot_sky_{band}.png")
    plots.plot_residual_map(
        p_sky,
        m.ra[s],
        m.dec[s],
        100 * frac[s],
        label="psfFlux / ref - 1 (%)",
        title=f"{prefix} {band}: photometric residual on the sky",
    )
    out = [rel_sky]
    if focal is not None:
        p_fp, rel_fp = ctx.figure(f"{prefix}_ref_focal_plane_{band}.png")
        out.append(rel_fp)
        plots.plot_residual_map(
            p_fp,
            focal[0][s],
            focal[1][s],
            100 * frac[s],
            label="psfFlux / ref - 1 (%)",
            title=f"{prefix} {band}: photometric residual on the focal plane",
            xlabel="focal plane x (mm)",
            ylabel="focal plane y (mm)",
            outlines=outlines or (),
            invert_x=False,
        )
    return out


def apcorr_checks(
    ctx: VerifyContext,
    th: Thresholds,
    prefix: str,
    band: str,
    cat: Table,
    selected: NDArray[np.bool_],
    *,
    columns: dict[str, str] | None = None,
) -> list[Check]:
    """Median ``flux_alg / psfFlux - 1`` of the selected stars for each aperture-corrected algorithm.

    ``columns`` maps the algorithm (``kronFlux``) to the column of ``cat`` (default: the same name, with
    ``psfFlux`` as the reference); for an Object table ``{"kronFlux": "g_kronFlux", "psfFlux": "g_psfFlux"}``.
    """
    cols = columns or {c: c for c in (*APCORR_FLUXES, "psfFlux")}
    psf, psf_err = float_column(cat, cols["psfFlux"]), float_column(cat, cols["psfFlux"] + "Err")
    key = f"{prefix}_apcorr_consistency"
    checks = []
    for alg in APCORR_FLUXES:
        scope = {"band": band, "flux": alg}
        if cols.get(alg) not in cat.colnames:
            checks.append(th.not_available(key, f"no {alg} column", scope=scope))
            continue
        err_name = cols[alg] + "Err"
        err = float_column(cat, err_name) if err_name in cat.colnames else np.zeros(len(cat))
        ratio, ratio_err = flux_residuals(float_column(cat, cols[alg]), err, psf, psf_err)
        st = residual_stats(
            ratio[selected], ratio_err[selected], outlier_sigma=OUTLIER_SIGMA, outlier_min=OUTLIER_FLUX
        )
        plot = None
        if ctx.make_plots:
            path, plot = ctx.figure(f"{prefix}_apcorr_{alg}_{band}.png")
            plots.plot_mag_residual(
                path,
                flux_to_mag(psf),
                100 * ratio,
                selected,
                ylabel=f"{alg} / psfFlux - 1 (%)",
                title=f"{prefix} {band}: aperture corrections",
                limit=100 * (th.spec(key).threshold or 0),
            )
        reason = (
            f"{st.n} bright isolated stars; robust scatter {100 * st.robust_scatter:.3g} %, "
            f"outliers {100 * st.outlier_fraction:.3g} %"
        )
        checks.append(
            th.evaluate(
                key,
                st.median,
                scope=scope,
                reason=reason,
                n=st.n,
                plot=plot,
                missing="no bright isolated star",
            )
        )
        ctx.add_metric(f"{key}_scatter", f"{band}/{alg}", st.robust_scatter, "fraction", n=st.n)
    return checks


def _psf_checks(
    ctx: VerifyContext, th: Thresholds, band: str, sub: Table, bright: NDArray[np.bool_]
) -> list[Check]:
    m = [float_column(sub, c) for c in ("ixx", "iyy", "ixy", "ixxPSF", "iyyPSF", "ixyPSF")]
    de1, de2, _ = psf_residuals(*m)
    st = psf_residual_stats(*(a[bright] for a in m))
    cell = np.asarray(sub["visit"], np.int64) * 1_000_000 + np.asarray(sub["detector"], np.int64)
    cst = cell_residual_stats(de1[bright], de2[bright], cell[bright], min_per_cell=MIN_PER_CELL)
    used = bright & flag_column(sub, "calib_psf_used")
    for label, sel in (("psf_used", used), ("not_psf_used", bright & ~used)):
        sub_st = cell_residual_stats(de1[sel], de2[sel], cell[sel], min_per_cell=MIN_PER_CELL)
        ctx.add_metric(f"src_psf_e_residual_{label}", band, sub_st.rms, "", n=sub_st.n, noise=sub_st.noise)
    ctx.add_metric("src_psf_e_residual_per_star_rms", band, st.e_rms, "", n=st.n, robust=st.e_robust_scatter)
    plot = None
    if ctx.make_plots:
        fx, fy = _focal(ctx, sub)
        path, plot = ctx.figure(f"src_psf_whiskers_{band}.png")
        plots.plot_whiskers(
            path,
            fx[bright],
            fy[bright],
            de1[bright],
            de2[bright],
            title=f"src {band}: star - PSF e",
            xlabel="focal plane x (mm)",
            ylabel="focal plane y (mm)",
            outlines=ccd_outlines(ctx, np.unique(np.asarray(sub["detector"]))),
        )
    what = f"{st.n} bright isolated point sources (S/N > {SNR_MIN:g})"
    return [
        th.evaluate(
            "src_psf_e_residual",
            cst.rms,
            scope={"band": band},
            n=cst.n,
            plot=plot,
            reason=f"{what} in {cst.n_cells} CCD-visits; noise alone gives {cst.noise:.3g}; per star: rms "
            f"{st.e_rms:.3g}, robust {st.e_robust_scatter:.3g}, median de1 {st.de1_median:.3g}, "
            f"de2 {st.de2_median:.3g}",
            missing=f"no CCD with {MIN_PER_CELL} bright isolated point sources",
        ),
        th.evaluate(
            "src_psf_size_residual",
            st.size_median,
            scope={"band": band},
            n=st.n,
            plot=plot,
            reason=f"{what}; robust scatter {100 * st.size_scatter:.3g} %",
            missing="no bright isolated point source",
        ),
    ]


def _srd_checks(ctx: VerifyContext, th: Thresholds, result: CaseResult) -> list[Check]:
    """The SRD checks of `opendrp.verify.srd` (another module; absent until it is written)."""
    try:
        func = importlib.import_module("opendrp.verify.srd").srd_checks
    except (ImportError, AttributeError):
        result.comments.append(
            "SRD metrics (PA1 ... TE2) not available: opendrp.verify.srd.srd_checks missing"
        )
        return []
    checks: list[Check] = func(ctx, th)
    return checks


def _ccd_maps(ctx: VerifyContext, result: CaseResult) -> list[str]:
    """Per-CCD table and focal-plane maps of ZEROPT (mag), PSF_FWHM (arcsec), ASTRMRMS (mas), median over
    the visits of each band."""
    rows = []
    for ref in ctx.refs("calexp"):
        md = ctx.component(ref, "metadata") or {}
        rows.append(
            {
                "visit": ref.dataId["visit"],
                "detector": ref.dataId["detector"],
                "band": ref.dataId["band"],
                **{k: _num(md.get(k)) for k in ("ZEROPT", "PSF_FWHM", "ASTRMRMS")},
            }
        )
    if not rows:
        return []
    result.tables["per-CCD calexp metadata"] = rows
    if not ctx.make_plots:
        return []
    figures = []
    units = {
        "ZEROPT": "zero point (mag)",
        "PSF_FWHM": "PSF FWHM (arcsec)",
        "ASTRMRMS": "astrometric rms (mas)",
    }
    for band in sorted({r["band"] for r in rows}):
        dets = sorted({r["detector"] for r in rows if r["band"] == band})
        outlines = ccd_outlines(ctx, dets)
        for key, label in units.items():
            vals = [
                float(np.nanmedian([r[key] for r in rows if r["band"] == band and r["detector"] == d]))
                for d in dets
            ]
            path, rel = ctx.figure(f"ccd_{key.lower()}_{band}.png")
            plots.plot_ccd_map(
                path, outlines, vals, label=label, title=f"{band}: {key} per CCD (median over visits)"
            )
            figures.append(rel)
    return figures


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
