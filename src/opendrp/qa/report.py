"""`run_qa`: match the Object table to the truth and the reference catalog, write metrics.json, index.html."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

import opendrp
from opendrp.errors import ConfigurationError

from ._blind import blind_metrics
from ._footprint import OccupancyFootprint, PolygonFootprint
from ._json import astrometry_json, clean, curve_json, photometry_json, q
from ._match import match_catalogs
from ._sources import source_metrics, source_tables
from ._stats import flux_to_mag, sky_offsets_mas
from ._tables import TableInput, as_bool, as_float, load_table, require_columns
from .config import QAConfig
from .metrics import (
    AstrometryStats,
    CompletenessCurve,
    PhotometryStats,
    astrometry_stats,
    completeness_curve,
    completeness_limit,
    magnitude_bins,
    photometry_stats,
    star_galaxy_stats,
)

__all__ = ["METRICS_SCHEMA_VERSION", "run_qa"]

METRICS_SCHEMA_VERSION = 1

_OBJECT = "object table"
_TRUTH = "truth catalog"
_REFCAT = "reference catalog"


@dataclass
class _BandPlotData:
    """Arrays kept for the figures of one band."""

    star_mag_true: NDArray[np.float64]
    star_frac_offset: NDArray[np.float64]
    star_selected: NDArray[np.bool_]
    dra_mas: NDArray[np.float64]
    ddec_mas: NDArray[np.float64]
    curves: dict[str, CompletenessCurve] = field(default_factory=dict)
    limits: dict[str, dict[str, float]] = field(default_factory=dict)


def _find_bands(
    obj: pd.DataFrame, truth: pd.DataFrame, bands: list[str] | None, obj_label: str, truth_label: str
) -> list[str]:
    if bands is None:
        truth_bands = {c[: -len("_flux")] for c in truth.columns if c.endswith("_flux")}
        bands = [
            c[: -len("_psfFlux")]
            for c in obj.columns
            if c.endswith("_psfFlux") and c[: -len("_psfFlux")] in truth_bands
        ]
        if not bands:
            raise ConfigurationError(
                f"no band has both '{{band}}_psfFlux' in the {_OBJECT} and '{{band}}_flux' in the {_TRUTH}",
                where=obj_label,
                fix="check the inputs or pass bands=[...]",
            )
    else:
        bands = list(bands)
        if not bands:
            raise ConfigurationError(
                "bands is empty", where="run_qa(bands=...)", fix="give at least one band"
            )
    for b in bands:
        require_columns(
            obj,
            [f"{b}_psfFlux", f"{b}_psfFluxErr"],
            role=_OBJECT,
            label=obj_label,
            expected=f"PSF flux and error of band {b!r} (nJy)",
        )
        require_columns(
            truth, [f"{b}_flux"], role=_TRUTH, label=truth_label, expected=f"true flux of band {b!r} (nJy)"
        )
    return bands


def _check(
    name: str, band: str, metric: str, value: float, threshold: float, unit: str, *, absolute: bool
) -> dict[str, Any]:
    v = abs(value) if absolute else value
    if not math.isfinite(v):
        status = "no data"
    else:
        status = "pass" if v < threshold else "fail"
    return {
        "name": name,
        "band": band,
        "metric": metric,
        "value": clean(float(value)),
        "threshold": threshold,
        "unit": unit,
        "comparison": "abs(value) < threshold" if absolute else "value < threshold",
        "status": status,
        "passed": status == "pass",
    }


def _band_checks(
    prefix: str, band: str, phot: PhotometryStats, ast: AstrometryStats, cfg: QAConfig, source: str
) -> list[dict[str, Any]]:
    snr = f"S/N>{cfg.snr_min:g}"
    return [
        _check(
            f"{band}: {prefix}stars {snr}: |median psfFlux offset| < {100 * cfg.max_abs_flux_offset:g}%",
            band,
            f"{source}.photometry.{band}.offset_median",
            phot.offset_median,
            cfg.max_abs_flux_offset,
            "fraction",
            absolute=True,
        ),
        _check(
            f"{band}: {prefix}stars {snr}: psfFlux scatter < {100 * cfg.max_flux_scatter:g}%",
            band,
            f"{source}.photometry.{band}.offset_scatter",
            phot.offset_scatter,
            cfg.max_flux_scatter,
            "fraction",
            absolute=False,
        ),
        _check(
            f"{band}: {prefix}stars {snr}: coordinate scatter < {cfg.max_coord_scatter_mas:g} mas",
            band,
            f"{source}.astrometry.{band}.coord_scatter",
            ast.coord_scatter,
            cfg.max_coord_scatter_mas,
            "mas",
            absolute=False,
        ),
    ]


def _object_snr(obj: pd.DataFrame, bands: list[str]) -> dict[str, NDArray[np.float64]]:
    out = {}
    for b in bands:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b] = as_float(obj, f"{b}_psfFlux") / as_float(obj, f"{b}_psfFluxErr")
    return out


def _reference_snr(obj: pd.DataFrame, snr: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
    """S/N in each object's refBand when known, else the best S/N over the processed bands."""
    best = np.fmax.reduce(np.vstack(list(snr.values())), axis=0)
    if "refBand" not in obj.columns:
        return best
    ref_band = np.array(
        [v.decode() if isinstance(v, bytes) else str(v) for v in obj["refBand"].to_numpy()], dtype=object
    )
    out = best.copy()
    for b, s in snr.items():
        sel = ref_band == b
        out[sel] = s[sel]
    return out


def run_qa(
    object_table: TableInput,
    truth: TableInput,
    *,
    refcat: TableInput | None = None,
    sources: TableInput | dict[str, TableInput] | None = None,
    bands: list[str] | None = None,
    outdir: str | os.PathLike[str],
    config: QAConfig | None = None,
    footprint_polygons: Sequence[tuple[Any, Any]] | None = None,
    blind: TableInput | None = None,
) -> dict[str, Any]:
    """Compare an Object table with the truth (and a reference catalog), write metrics.json and index.html.

    Only primary objects (``detect_isPrimary``) are used. They are matched one-to-one to the truth and to
    the reference catalog within ``config.match_radius_arcsec``. Completeness counts truth sources inside the
    footprint: the union of ``footprint_polygons`` (e.g. the outlines of the processed CCDs) when given,
    otherwise an occupancy grid of the primary objects (see `OccupancyFootprint`).

    Parameters
    ----------
    object_table : path, `pandas.DataFrame` or `astropy.table.Table`
        Object table with ``objectId, coord_ra, coord_dec`` (deg), ``detect_isPrimary``,
        ``{band}_psfFlux, {band}_psfFluxErr`` (nJy) and optionally ``refExtendedness``, ``refBand``.
    truth : path, `pandas.DataFrame` or `astropy.table.Table`
        Truth catalog with ``id, ra, dec`` (deg), ``is_star`` and ``{band}_flux`` (nJy).
    refcat : path, `pandas.DataFrame` or `astropy.table.Table`, optional
        Reference catalog with ``id, coord_ra, coord_dec`` (deg) and ``{band}_flux, {band}_fluxErr`` (nJy)
        for the bands it has.
    sources : path, table, or `dict` of band -> table, optional
        Single-visit Source table(s) with ``coord_ra, coord_dec`` (deg), ``psfFlux, psfFluxErr`` (nJy),
        and a ``band`` column if a single table is given. Reported (no checks): photometry and astrometry of
        true stars with S/N > ``snr_min``, and the repeatability (median per-star rms of the single-visit
        magnitudes).
    bands : `list` of `str`, optional
        Bands to evaluate; default: every band with ``{band}_psfFlux`` in the Object table and ``{band}_flux``
        in the truth.
    outdir : path
        Directory for ``metrics.json``, ``index.html`` and the PNG figures (created if needed).
    config : `QAConfig`, optional
        Configuration; defaults if None.

    Returns
    -------
    metrics : `dict`
        The content of metrics.json (see the package documentation for the schema).

    footprint_polygons : sequence of ``(ra, dec)`` arrays, optional
        Convex sky polygons (deg) whose union is the surveyed area, e.g. the outlines of the processed CCDs
        (`opendrp.execution.coverage_polygons`); completeness then counts exactly the truth sources observed.

    Raises
    ------
    opendrp.errors.ConfigurationError
        An input is unreadable or lacks a required column, or the configuration is invalid.

    A ``blind`` table (the unsealed blind insertions, ``ra``, ``dec``, ``kind``, ``{band}_flux``) adds the
    section ``blind``: which insertions the primary objects unmatched to the truth recovered, and how many
    unmatched objects remain unexplained (spurious).
    """
    cfg = config if config is not None else QAConfig()
    cfg.validate()
    obj, obj_label = load_table(object_table, role=_OBJECT)
    tru, tru_label = load_table(truth, role=_TRUTH)
    require_columns(
        obj,
        ["coord_ra", "coord_dec"],
        role=_OBJECT,
        label=obj_label,
        expected="object positions in deg (Rubin Object schema)",
    )
    require_columns(
        obj,
        ["detect_isPrimary"],
        role=_OBJECT,
        label=obj_label,
        expected="a boolean primary flag (Rubin Object schema)",
    )
    require_columns(
        tru, ["id", "ra", "dec"], role=_TRUTH, label=tru_label, expected="truth source id and position in deg"
    )
    require_columns(tru, ["is_star"], role=_TRUTH, label=tru_label, expected="a boolean star flag")
    band_list = _find_bands(obj, tru, bands, obj_label, tru_label)
    ref: pd.DataFrame | None = None
    ref_label: str | None = None
    if refcat is not None:
        ref, ref_label = load_table(refcat, role=_REFCAT)
        require_columns(
            ref,
            ["coord_ra", "coord_dec"],
            role=_REFCAT,
            label=ref_label,
            expected="reference positions in deg",
        )

    src_tables: dict[str, pd.DataFrame] | None = None
    src_label: str | None = None
    if sources is not None:
        src_tables, src_label = source_tables(sources, band_list)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    # --- primary objects matched to the truth -----------------------------------------------------------
    n_objects = len(obj)
    prim = obj[as_bool(obj, "detect_isPrimary")].reset_index(drop=True)
    p_ra, p_dec = as_float(prim, "coord_ra"), as_float(prim, "coord_dec")
    t_ra, t_dec = as_float(tru, "ra"), as_float(tru, "dec")
    t_star = as_bool(tru, "is_star")
    i_obj, i_tru, _sep = match_catalogs(p_ra, p_dec, t_ra, t_dec, radius_arcsec=cfg.match_radius_arcsec)
    truth_matched = np.zeros(len(tru), bool)
    truth_matched[i_tru] = True
    footprint: OccupancyFootprint | PolygonFootprint
    if footprint_polygons is not None:
        footprint = PolygonFootprint.from_polygons(list(footprint_polygons))
    else:
        footprint = OccupancyFootprint.from_positions(p_ra, p_dec, cell_arcsec=cfg.footprint_cell_arcsec)
    in_fp = footprint.contains(t_ra, t_dec)
    snr = _object_snr(prim, band_list)
    m_star = t_star[i_tru]

    metrics: dict[str, Any] = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "opendrp_version": opendrp.__version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "inputs": {"object_table": obj_label, "truth": tru_label, "refcat": ref_label, "sources": src_label},
        "config": cfg.to_dict(),
        "bands": band_list,
        "summary": {
            "n_objects": q(n_objects, "count"),
            "n_primary": q(len(prim), "count"),
            "n_truth": q(len(tru), "count"),
            "n_truth_in_footprint": q(int(in_fp.sum()), "count"),
            "n_matched": q(int(i_obj.size), "count"),
            "matched_fraction": q(i_obj.size / len(prim) if len(prim) else float("nan"), "fraction"),
            "truth_matched_fraction": q(
                truth_matched[in_fp].sum() / in_fp.sum() if in_fp.any() else float("nan"), "fraction"
            ),
            "footprint_area": q(footprint.area_deg2, "deg2"),
            "footprint_cell": q(footprint.cell_arcsec, "arcsec"),
            "match_radius": q(cfg.match_radius_arcsec, "arcsec"),
        },
        "completeness": {},
        "photometry": {},
        "astrometry": {},
        "refcat": None,
        "star_galaxy": None,
        "sources": None,
        "blind": None,
        "checks": [],
        "ok": False,
    }
    obj_unmatched = np.ones(len(prim), bool)
    obj_unmatched[i_obj] = False
    metrics["summary"]["n_unmatched"] = q(int(obj_unmatched.sum()), "count")
    if blind is not None:
        bl, _ = load_table(blind, role="blind insertions")
        require_columns(
            bl, ["ra", "dec"], role="blind insertions", label=str(blind), expected="positions (deg)"
        )
        metrics["blind"] = blind_metrics(
            prim,
            obj_unmatched,
            bl,
            band_list,
            in_footprint=footprint.contains(as_float(bl, "ra"), as_float(bl, "dec")),
            radius_arcsec=cfg.match_radius_arcsec,
            mag_bin_width=cfg.mag_bin_width,
            snr_min=cfg.snr_min,
        )
    checks: list[dict[str, Any]] = []
    plot_data: dict[str, _BandPlotData] = {}

    for b in band_list:
        t_mag = flux_to_mag(as_float(tru, f"{b}_flux"))
        edges = magnitude_bins(t_mag[in_fp], width=cfg.mag_bin_width, mag_range=cfg.mag_range)
        comp: dict[str, Any] = {"mag_bin_edges": q(edges, "mag")}
        curves: dict[str, CompletenessCurve] = {}
        limits: dict[str, dict[str, float]] = {}
        for cls, sel in (("star", t_star), ("galaxy", ~t_star), ("all", np.ones_like(t_star))):
            use = in_fp & sel
            curve = completeness_curve(t_mag[use], truth_matched[use], bin_edges=edges)
            lim = {
                "mag_50": completeness_limit(curve, level=0.5, min_count=cfg.min_bin_count),
                "mag_90": completeness_limit(curve, level=0.9, min_count=cfg.min_bin_count),
            }
            comp[cls] = curve_json(curve, lim["mag_50"], lim["mag_90"])
            curves[cls], limits[cls] = curve, lim
        metrics["completeness"][b] = comp

        flux = as_float(prim, f"{b}_psfFlux")[i_obj]
        err = as_float(prim, f"{b}_psfFluxErr")[i_obj]
        t_flux = as_float(tru, f"{b}_flux")[i_tru]
        bright = m_star & (snr[b][i_obj] > cfg.snr_min)
        phot = photometry_stats(flux[bright], err[bright], t_flux[bright])
        ast = astrometry_stats(
            p_ra[i_obj][bright], p_dec[i_obj][bright], t_ra[i_tru][bright], t_dec[i_tru][bright]
        )
        metrics["photometry"][b] = photometry_json(phot, cfg.snr_min)
        metrics["astrometry"][b] = astrometry_json(ast, cfg.snr_min)
        checks += _band_checks("", b, phot, ast, cfg, "truth")

        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (flux - t_flux) / t_flux
        dra, ddec = sky_offsets_mas(
            p_ra[i_obj][bright], p_dec[i_obj][bright], t_ra[i_tru][bright], t_dec[i_tru][bright]
        )
        plot_data[b] = _BandPlotData(
            star_mag_true=flux_to_mag(t_flux[m_star]),
            star_frac_offset=frac[m_star],
            star_selected=bright[m_star],
            dra_mas=dra,
            ddec_mas=ddec,
            curves=curves,
            limits=limits,
        )

    # --- star/galaxy separation --------------------------------------------------------------------------
    if "refExtendedness" in prim.columns:
        ref_snr = _reference_snr(prim, snr)[i_obj]
        sel = ref_snr > cfg.snr_min_star_galaxy
        sg = star_galaxy_stats(m_star[sel], as_float(prim, "refExtendedness")[i_obj][sel])
        metrics["star_galaxy"] = {
            "snr_min": q(cfg.snr_min_star_galaxy, ""),
            "n_star": q(sg.n_star, "count"),
            "n_galaxy": q(sg.n_galaxy, "count"),
            "star_fraction_correct": q(sg.star_fraction_correct, "fraction"),
            "galaxy_fraction_correct": q(sg.galaxy_fraction_correct, "fraction"),
        }

    # --- reference catalog -------------------------------------------------------------------------------
    if ref is not None:
        r_ra, r_dec = as_float(ref, "coord_ra"), as_float(ref, "coord_dec")
        j_obj, j_ref, _ = match_catalogs(p_ra, p_dec, r_ra, r_dec, radius_arcsec=cfg.match_radius_arcsec)
        if "refExtendedness" in prim.columns:
            point = as_float(prim, "refExtendedness")[j_obj] < 0.5
        else:
            point = np.ones(j_obj.size, bool)
        ref_bands = [b for b in band_list if f"{b}_flux" in ref.columns]
        refm: dict[str, Any] = {
            "n_refcat": q(len(ref), "count"),
            "n_matched": q(int(j_obj.size), "count"),
            "bands": ref_bands,
            "selection": "matched primary objects with refExtendedness == 0 (if present) and S/N > snr_min",
            "photometry": {},
            "astrometry": {},
        }
        for b in band_list:
            bright = point & (snr[b][j_obj] > cfg.snr_min)
            ast = astrometry_stats(
                p_ra[j_obj][bright], p_dec[j_obj][bright], r_ra[j_ref][bright], r_dec[j_ref][bright]
            )
            refm["astrometry"][b] = astrometry_json(ast, cfg.snr_min)
            if b in ref_bands:
                phot = photometry_stats(
                    as_float(prim, f"{b}_psfFlux")[j_obj][bright],
                    as_float(prim, f"{b}_psfFluxErr")[j_obj][bright],
                    as_float(ref, f"{b}_flux")[j_ref][bright],
                )
                refm["photometry"][b] = photometry_json(phot, cfg.snr_min)
                if cfg.check_refcat:
                    checks += _band_checks("refcat ", b, phot, ast, cfg, "refcat")
        metrics["refcat"] = refm

    if src_tables is not None and src_label is not None:
        metrics["sources"] = source_metrics(
            src_tables,
            src_label,
            truth=tru,
            t_star=t_star,
            radius_arcsec=cfg.match_radius_arcsec,
            snr_min=cfg.snr_min,
        )

    metrics["checks"] = checks
    metrics["ok"] = bool(checks) and all(c["passed"] for c in checks)

    figures: dict[str, str] = {}
    if cfg.make_plots:
        from ._plots import make_figures

        unmatched_truth = in_fp & ~truth_matched
        obj_matched = np.zeros(len(prim), bool)
        obj_matched[i_obj] = True
        figures = make_figures(
            outdir,
            plot_data,
            cfg,
            sky={
                "obj_ra": p_ra,
                "obj_dec": p_dec,
                "obj_matched": obj_matched,
                "missed_ra": t_ra[unmatched_truth],
                "missed_dec": t_dec[unmatched_truth],
            },
        )
    metrics["figures"] = figures

    with open(outdir / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=1, allow_nan=False)
        f.write("\n")
    from ._html import write_html

    write_html(outdir / "index.html", metrics)
    return metrics
