"""DRP-00-30: scientific verification of processed visit images (reference 000 §5.6).

"Artifacts are correctly masked and backgrounds are not over-subtracted", measured on the calexps:

* ``visit_mask_fraction[plane=P]``: fraction of a CCD's pixels with plane P (BAD, SAT, CR, INTRP, EDGE), the
  worst CCD per plane (every calexp, mask component only).
* ``saturated_masked``: fraction of the pixels whose raw value reaches the amplifier's saturation level
  (camera) that are masked SAT in the calexp, bleed columns included (the raw of each sampled calexp, found
  from its provenance).
* ``unmasked_cr_pixels``: unmasked (no BAD, SAT, CR, INTRP, SUSPECT, EDGE, STREAK, NO_DATA) pixels above 5
  sigma that are sharper than the calexp's own PSF model allows (`opendrp.verify.images.find_sharp_pixels`),
  per pixel of the sampled CCDs.
* ``visit_background_residual[band=b]``: mean residual sky in 5-30 arcsec annuli around the bright sources
  (psfFlux S/N >= 100, the 30 brightest per CCD) with every source masked, in sky sigma per pixel.
* ``visit_flat_filter`` / ``visit_calib_detector``: fraction of calexps whose flat (from the calexp's
  provenance cards ``LSST BUTLER INPUT k``) records the calexp's own physical filter (FILTER01 of its input
  exposures), and whose bias, dark and flat record the calexp's own detector (DET-ID).
* With ``--truth`` (simulations): ``truth_cr_masked`` (true cosmic-ray pixels above 5 sigma masked CR, SAT
  or BAD) and ``truth_bleed_masked`` (true full-well bleed pixels masked SAT); the truth's ``exposure_id`` is
  matched with the calexp's visit (one exposure per visit, as the simulator writes).

The pixel-level checks read at most `MAX_CCDS` calexps, evenly spaced in data-ID order (deterministic).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import numpy as np

from ...image.mask import mask_bit
from .. import images as im
from .._image_plots import plot_annulus_profiles, plot_focal_plane_map
from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds

__all__ = ["MAX_CCDS", "run"]

CASE = "DRP-00-30"
#: Largest number of calexps read pixel by pixel (evenly spaced sample beyond).
MAX_CCDS = 36
#: Planes reported by visit_mask_fraction.
FRACTION_PLANES = ("BAD", "SAT", "CR", "INTRP", "EDGE")
#: Planes that make a pixel "masked" for the cosmic-ray-like test.
MASKED_PLANES = ("BAD", "SAT", "CR", "INTRP", "SUSPECT", "EDGE", "STREAK", "NO_DATA")
#: Annuli around bright sources (arcsec), and the S/N of a bright source.
ANNULUS_ARCSEC = (5.0, 30.0)
BRIGHT_SNR = 100.0
N_BRIGHT_PER_CCD = 30


def sample_refs(refs: list[Any], n_max: int) -> list[Any]:
    """At most ``n_max`` refs evenly spaced over the (sorted) list."""
    if len(refs) <= n_max:
        return list(refs)
    idx = np.unique(np.linspace(0, len(refs) - 1, n_max).round().astype(int))
    return [refs[i] for i in idx]


def provenance_inputs(metadata: dict[str, Any]) -> dict[str, list[str]]:
    """Dataset type -> input dataset IDs, from the ``LSST BUTLER INPUT k`` cards of a dataset's metadata."""
    out: dict[str, list[str]] = defaultdict(list)
    n = int(metadata.get("LSST BUTLER N_INPUTS", 0) or 0)
    for k in range(n):
        dtype = metadata.get(f"LSST BUTLER INPUT {k} DATASETTYPE")
        ident = metadata.get(f"LSST BUTLER INPUT {k} ID")
        if dtype and ident:
            out[str(dtype)].append(str(ident))
    return out


def _input_metadata(ctx: VerifyContext, ident: str) -> tuple[Any, dict[str, Any]] | None:
    key = f"h30:meta:{ident}"
    if key not in ctx._cache:
        ref = ctx.butler.get_dataset(uuid.UUID(ident))
        ctx._cache[key] = None if ref is None else (ref, dict(ctx.component(ref, "metadata")))
    return ctx._cache[key]


def calibration_agreement(
    calibs: list[tuple[str, dict[str, Any]]], *, detector: int, physical_filter: str
) -> tuple[bool | None, bool | None]:
    """Whether the calibrations a calexp used are its own.

    Parameters
    ----------
    calibs : `list` [`tuple` [`str`, `dict`]]
        (dataset type, metadata) of each calibration input (bias, dark, flat).
    detector : `int`
        The calexp's detector.
    physical_filter : `str`
        The calexp's physical filter.

    Returns
    -------
    flat_ok, det_ok : `bool` or `None`
        Every flat records ``FILTER01 == physical_filter``; every calibration records ``DET-ID == detector``;
        None when no input records the card.
    """
    flat_ok: bool | None = None
    det_ok: bool | None = None
    for dtype, md in calibs:
        if "DET-ID" in md:
            det_ok = (det_ok is not False) and int(md["DET-ID"]) == detector
        if dtype == "flat" and "FILTER01" in md:
            flat_ok = (flat_ok is not False) and str(md["FILTER01"]) == physical_filter
    return flat_ok, det_ok


def calib_consistency(
    ctx: VerifyContext, ref: Any, metadata: dict[str, Any]
) -> tuple[bool | None, bool | None]:
    """`calibration_agreement` of a calexp, its calibrations found from its provenance cards."""
    inputs = provenance_inputs(metadata)
    calibs = []
    for dtype in ("bias", "dark", "flat"):
        for ident in inputs.get(dtype, []):
            found = _input_metadata(ctx, ident)
            if found is not None:
                calibs.append((dtype, found[1]))
    return calibration_agreement(
        calibs, detector=int(ref.dataId["detector"]), physical_filter=str(ref.dataId["physical_filter"])
    )


def _psf_kernels(psf: Any, shape: tuple[int, int]) -> list[np.ndarray]:
    ny, nx = shape
    pts = [(0.5, 0.5), (0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9)]
    return [np.asarray(psf.kernel_image(fx * (nx - 1), fy * (ny - 1))) for fx, fy in pts]


def _psf_sigma(psf: Any, shape: tuple[int, int]) -> float:
    ixx, iyy, _ = psf.moments((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    return float(np.sqrt(0.5 * (ixx + iyy)))


def _bright_centres(src: Any, visit: int, detector: int) -> np.ndarray:
    if len(src) == 0:
        return np.zeros((0, 2))
    sel = (np.asarray(src["visit"]) == visit) & (np.asarray(src["detector"]) == detector)
    flux, err = np.asarray(src["psfFlux"], float)[sel], np.asarray(src["psfFluxErr"], float)[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / err
    ok = np.isfinite(snr) & (snr >= BRIGHT_SNR)
    order = np.argsort(-flux[ok])[:N_BRIGHT_PER_CCD]
    x, y = np.asarray(src["x"], float)[sel][ok][order], np.asarray(src["y"], float)[sel][ok][order]
    return np.column_stack([x, y])


def _raw_saturation(ctx: VerifyContext, ref: Any, metadata: dict[str, Any], shape: tuple[int, int]) -> Any:
    raw_ids = provenance_inputs(metadata).get("raw", [])
    if not raw_ids:
        return None
    raw_ref = ctx.butler.get_dataset(uuid.UUID(raw_ids[0]))
    if raw_ref is None:
        return None
    det = ctx.camera.detector(int(ref.dataId["detector"]))
    if det.shape != shape:
        return None
    return im.raw_saturated(np.asarray(ctx.get(raw_ref).pixels), det.amplifiers, shape)


def _truth_masks(ctx: VerifyContext, ref: Any, exp: Any) -> dict[str, tuple[int, int]]:
    """(masked, total) true cosmic-ray pixels above 5 sigma and true bleed pixels of one calexp."""
    out: dict[str, tuple[int, int]] = {}
    visit, det = int(ref.dataId["visit"]), int(ref.dataId["detector"])
    crs = ctx.truth("cosmic_rays.parquet")
    if crs is not None:
        sel = (np.asarray(crs["exposure_id"]) == visit) & (np.asarray(crs["detector"]) == det)
        tracks = np.column_stack(
            [np.asarray(crs[c], float)[sel] for c in ("x0", "y0", "x1", "y1", "electrons")]
        )
        charge = im.track_deposit(tracks, exp.shape)
        with np.errstate(invalid="ignore"):
            true_cr = charge > 5.0 * np.sqrt(exp.variance)
        hit = np.count_nonzero(exp.mask[true_cr] & mask_bit("CR", "SAT", "BAD"))
        out["cr"] = (int(hit), int(np.count_nonzero(true_cr)))
    bleeds = ctx.truth("bleed_trails.parquet")
    if bleeds is not None:
        sel = (np.asarray(bleeds["exposure_id"]) == visit) & (np.asarray(bleeds["detector"]) == det)
        true_sat = np.zeros(exp.shape, bool)
        for x, y0, y1 in zip(*(np.asarray(bleeds[c], int)[sel] for c in ("x", "y0", "y1")), strict=True):
            true_sat[max(y0, 0) : y1 + 1, x] = True
        hit = np.count_nonzero(exp.mask[true_sat] & mask_bit("SAT"))
        out["bleed"] = (int(hit), int(np.count_nonzero(true_sat)))
    return out


def measure_ccd(ctx: VerifyContext, ref: Any, src: Any, *, pixels: bool) -> dict[str, Any]:
    """Every measurement of one calexp (``pixels``: the pixel-level ones too, else masks and calibrations)."""
    row: dict[str, Any] = {
        "detector": int(ref.dataId["detector"]),
        "visit": int(ref.dataId["visit"]),
        "band": str(ref.dataId["band"]),
    }
    if not pixels:
        mask = ctx.component(ref, "mask")
        row["fractions"] = im.mask_plane_fractions(mask, FRACTION_PLANES)
        md = dict(ctx.component(ref, "metadata"))
        row["flat_ok"], row["det_ok"] = calib_consistency(ctx, ref, md)
        return row
    exp = ctx.get(ref)
    md = dict(exp.metadata)
    row["fractions"] = im.mask_plane_fractions(exp.mask, FRACTION_PLANES)
    row["flat_ok"], row["det_ok"] = calib_consistency(ctx, ref, md)
    row.update(_pixel_measurements(ctx, ref, exp, md, src))
    if ctx.truth_dir is not None:
        row["truth"] = _truth_masks(ctx, ref, exp)
    return row


def _pixel_measurements(
    ctx: VerifyContext, ref: Any, exp: Any, md: dict[str, Any], src: Any
) -> dict[str, Any]:
    """Saturation against the raw, cosmic-ray-like pixels and annulus residuals of one calexp."""
    row: dict[str, Any] = {}
    visit, detector = int(ref.dataId["visit"]), int(ref.dataId["detector"])
    sat = _raw_saturation(ctx, ref, md, exp.shape)
    row["sat"] = None if sat is None else im.fraction_masked(sat, exp.mask, ["SAT"])
    masked = (exp.mask & mask_bit(*MASKED_PLANES)) != 0
    limits = im.psf_contrast_limits(_psf_kernels(exp.psf, exp.shape))
    sharp = im.find_sharp_pixels(exp.image, exp.variance, limits, exclude=masked)
    row["n_sharp"], row["n_pixels"] = int(np.count_nonzero(sharp)), int(exp.image.size)
    scale = im.pixel_scale_arcsec(exp.wcs)
    sources = im.source_mask(exp.image, exp.variance, psf_sigma=_psf_sigma(exp.psf, exp.shape))
    row["annulus"] = im.annulus_residuals(
        exp.image,
        exp.variance,
        _bright_centres(src, visit, detector),
        r_in=ANNULUS_ARCSEC[0] / scale,
        r_out=ANNULUS_ARCSEC[1] / scale,
        exclude=sources | masked,
    )
    row["pixel_scale"] = scale
    return row


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-30 on the calexps of the collection."""
    result = CaseResult(CASE, th.title(CASE), th.section(CASE))
    refs = ctx.refs("calexp")
    if not refs:
        for key in (
            "visit_mask_fraction",
            "saturated_masked",
            "unmasked_cr_pixels",
            "visit_background_residual",
            "visit_flat_filter",
            "visit_calib_detector",
        ):
            result.checks.append(th.evaluate(key, None, missing="no calexp in the collection"))
        return result
    sample = {id(r) for r in sample_refs(refs, MAX_CCDS)}
    src = ctx.table("src", columns=["x", "y", "psfFlux", "psfFluxErr"])
    rows = [measure_ccd(ctx, r, src, pixels=id(r) in sample) for r in refs]
    pix = [r for r in rows if "n_sharp" in r]
    note = f"{len(pix)} of {len(rows)} calexps read pixel by pixel (evenly spaced in data-ID order)"
    result.checks.extend(_mask_checks(ctx, th, rows))
    result.checks.extend(_artifact_checks(ctx, th, pix, note))
    result.checks.extend(_background_checks(ctx, th, pix, note))
    result.checks.extend(_calib_checks(th, rows))
    if ctx.truth_dir is not None:
        result.checks.extend(_truth_checks(th, pix, note))
    return result


def _focal_plane(
    ctx: VerifyContext, name: str, values: dict[int, float], *, title: str, label: str
) -> str | None:
    if not ctx.make_plots or not values:
        return None
    path, rel = ctx.figure(name)
    plot_focal_plane_map(ctx.camera, values, path, title=title, label=label)
    return rel


def _per_detector(rows: list[dict[str, Any]], key: Any) -> dict[int, float]:
    """Mean over visits of ``key(row)`` per detector (rows where it is not None)."""
    acc: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        v = key(r)
        if v is not None and np.isfinite(v):
            acc[r["detector"]].append(float(v))
    return {d: float(np.mean(v)) for d, v in acc.items()}


def _mask_checks(ctx: VerifyContext, th: Thresholds, rows: list[dict[str, Any]]) -> list[Any]:
    checks = []
    for plane in FRACTION_PLANES:
        vals = np.array([r["fractions"][plane] for r in rows])
        worst = int(np.nanargmax(vals))
        w = rows[worst]
        plot = _focal_plane(
            ctx,
            f"drp0030_mask_{plane}.png",
            _per_detector(rows, lambda r, p=plane: r["fractions"][p]),
            title=f"{plane} masked fraction (mean over visits)",
            label="fraction",
        )
        checks.append(
            th.evaluate(
                "visit_mask_fraction",
                float(vals[worst]),
                scope={"plane": plane},
                n=len(rows),
                plot=plot,
                reason=f"worst CCD visit {w['visit']} detector {w['detector']}; "
                f"median {np.median(vals):.3g}, "
                f"mean {np.mean(vals):.3g} over {len(rows)} calexps",
            )
        )
    return checks


def _artifact_checks(ctx: VerifyContext, th: Thresholds, pix: list[dict[str, Any]], note: str) -> list[Any]:
    sat = [r["sat"] for r in pix if r.get("sat") is not None and r["sat"][1] > 0]
    n_sat = sum(n for _, n in sat)
    hit = sum(f * n for f, n in sat)
    value = hit / n_sat if n_sat else None
    missing = (
        "no pixel at the saturation level in the raws of the sampled calexps" if pix else "no calexp read"
    )
    checks = [
        th.evaluate(
            "saturated_masked",
            value,
            n=n_sat,
            missing=missing,
            reason=f"{n_sat} raw pixels at the amplifiers' saturation level; {note}",
        )
    ]
    n_sharp = sum(r["n_sharp"] for r in pix)
    n_pixels = sum(r["n_pixels"] for r in pix)
    worst = max(pix, key=lambda r: r["n_sharp"]) if pix else None
    plot = _focal_plane(
        ctx,
        "drp0030_cr_like.png",
        _per_detector(pix, lambda r: r["n_sharp"] / r["n_pixels"]),
        title="unmasked cosmic-ray-like pixels (per pixel)",
        label="fraction",
    )
    reason = (
        f"{n_sharp} unmasked > 5 sigma pixels sharper than the PSF in {n_pixels} pixels"
        + (
            f" (worst: visit {worst['visit']} detector {worst['detector']}, {worst['n_sharp']})"
            if worst
            else ""
        )
        + f"; {note}"
    )
    checks.append(
        th.evaluate(
            "unmasked_cr_pixels",
            n_sharp / n_pixels if n_pixels else None,
            n=n_pixels,
            reason=reason,
            plot=plot,
            missing="no calexp read",
        )
    )
    return checks


def _background_checks(ctx: VerifyContext, th: Thresholds, pix: list[dict[str, Any]], note: str) -> list[Any]:
    checks = []
    by_band: dict[str, list[im.AnnulusResult]] = defaultdict(list)
    for r in pix:
        if r["annulus"].n_pixels:
            by_band[r["band"]].append(r["annulus"])
    plot = None
    if ctx.make_plots and by_band:
        path, plot = ctx.figure("drp0030_annulus_profiles.png")
        scale = float(np.median([r["pixel_scale"] for r in pix]))
        plot_annulus_profiles(
            by_band,
            path,
            pixel_scale=scale,
            title="calexp: residual sky around bright sources",
            threshold=float(th.spec("visit_background_residual").threshold or 0.0),
        )
    fp = _focal_plane(
        ctx,
        "drp0030_background_residual.png",
        _per_detector(pix, lambda r: r["annulus"].mean),
        title="mean residual sky in 5-30 arcsec annuli (sigma)",
        label="sigma per pixel",
    )
    for band in sorted(by_band) or [""]:
        res = by_band.get(band, [])
        n = sum(a.n_pixels for a in res)
        mean = sum(a.mean * a.n_pixels for a in res) / n if n else None
        median = float(np.median([a.median for a in res])) if res else float("nan")
        tail = sum(a.low_tail * a.n_pixels for a in res) / n if n else float("nan")
        checks.append(
            th.evaluate(
                "visit_background_residual",
                mean,
                scope={"band": band} if band else None,
                n=n,
                plot=plot or fp,
                missing="no bright source (psfFlux S/N >= 100) with usable annulus pixels",
                reason=f"{sum(a.n_sources for a in res)} bright sources on {len(res)} CCDs, "
                f"{n} annulus pixels; "
                f"median of CCD medians {median:.3f} sigma; fraction below -3 sigma "
                f"{tail:.2g} (Gaussian 0.0013); {note}",
            )
        )
    return checks


def _calib_checks(th: Thresholds, rows: list[dict[str, Any]]) -> list[Any]:
    checks = []
    for key, field, what in (
        ("visit_flat_filter", "flat_ok", "flat FILTER01"),
        ("visit_calib_detector", "det_ok", "calibration DET-ID"),
    ):
        known = [r for r in rows if r[field] is not None]
        bad = [r for r in known if not r[field]]
        first = "" if not bad else f"; e.g. visit {bad[0]['visit']} detector {bad[0]['detector']}"
        checks.append(
            th.evaluate(
                key,
                (len(known) - len(bad)) / len(known) if known else None,
                n=len(known),
                missing=f"no calexp records a calibration with {what} in its provenance",
                reason=f"{len(bad)} of {len(known)} calexps with a mismatching {what}{first}",
            )
        )
    return checks


def _truth_checks(th: Thresholds, pix: list[dict[str, Any]], note: str) -> list[Any]:
    checks = []
    for key, part, what in (
        ("truth_cr_masked", "cr", "true cosmic-ray pixels above 5 sigma"),
        ("truth_bleed_masked", "bleed", "true full-well bleed pixels"),
    ):
        pairs = [r["truth"][part] for r in pix if part in r.get("truth", {})]
        total = sum(n for _, n in pairs)
        hit = sum(h for h, _ in pairs)
        checks.append(
            th.evaluate(
                key,
                hit / total if total else None,
                n=total,
                missing=f"no {what} in the truth of the sampled calexps",
                reason=f"{hit} of {total} {what} masked; {note}",
            )
        )
    return checks
