"""DRP-00-35: scientific verification of coadd images (reference 000 §5.7).

"Artifacts are rejected (satellite trails, ghosts), backgrounds are not over-subtracted, interpolated
cosmic-ray pixels are used (DM-9953)", measured per (patch, band) coadd against its warps:

* ``coadd_artifacts_rejected[band=b]``: fraction of the single-epoch features (in one warp only, on empty sky,
  >= 3 warps covering; `opendrp.verify.images.single_epoch_features`) whose residue in the coadd exceeds 0.5
  (1: kept as by a plain weighted mean, 0: rejected).
* ``coadd_clipped_fraction[band=b]``: fraction of the covered coadd pixels (not NO_DATA) where an input was
  clipped (``CLIPPED``).
* ``coadd_background_residual[band=b]``: mean residual sky in 5-30 arcsec annuli around bright objects
  (psfFlux S/N >= 100) with every source masked, in sky sigma per pixel.
* ``coadd_interpolated_included[band=b]``: fraction of the warps' interpolated cosmic-ray pixels (``CR`` and
  ``INTRP``, not BAD/SAT) that contribute to the coadd.
* ``coadd_psf_size_residual[band=b]`` / ``coadd_psf_e_residual[band=b]``: adaptive moments of bright isolated
  point sources (refExtendedness 0, S/N >= 100, unsaturated) in the coadd against those of the CoaddPsf
  kernel at their positions: median fractional trace-radius residual; rms per component of the distortion
  residual with the shape noise (``2 / (S/N)`` per component) removed in quadrature, the larger component,
  on the stars whose shape noise is at most half the threshold (S/N >= 4 / threshold: 800 for 0.005).

At most `MAX_COADDS` coadds are read (those with the most warps, deterministic); warps are placed on the
coadd grid (full-size or compact, ``WARP_X0..Y1``); warp pixels NO_DATA, BAD or SAT are not usable (the
assembly's bad planes).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ...coadd.assemble import DEFAULT_BAD_MASK_PLANES
from ...coadd.warp import warp_bbox
from ...image.mask import mask_bit
from .. import images as im
from .._image_plots import plot_annulus_profiles, plot_feature_cutouts
from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds
from .visit_images import ANNULUS_ARCSEC, BRIGHT_SNR

__all__ = ["MAX_COADDS", "run"]

CASE = "DRP-00-35"
#: Largest number of coadds read pixel by pixel.
MAX_COADDS = 12
#: A feature "shows in the coadd" when more than this fraction of its single-epoch excess remains.
RESIDUE_SHOWS = 0.5
STAMP_HALF = 12
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def stack_warps(warps: list[Any], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Warps on the coadd grid: images and variances ``(n, ny, nx)`` (NaN where not usable), and masks."""
    n = len(warps)
    images = np.full((n, *shape), np.nan, np.float32)
    variances = np.full((n, *shape), np.nan, np.float32)
    masks = []
    bad = mask_bit("NO_DATA", *DEFAULT_BAD_MASK_PLANES)
    for i, w in enumerate(warps):
        box = warp_bbox(w)
        if w.shape == shape:
            rows, cols = box.slices
            img, var, msk = w.image[rows, cols], w.variance[rows, cols], w.mask[rows, cols]
        else:
            img, var, msk = w.image, w.variance, w.mask
        full = np.zeros(shape, np.int32) | mask_bit("NO_DATA")
        full[box.y0 : box.y1, box.x0 : box.x1] = msk
        masks.append(full)
        ok = ((msk & bad) == 0) & np.isfinite(var) & (var > 0)
        images[i, box.y0 : box.y1, box.x0 : box.x1] = np.where(ok, img, np.nan)
        variances[i, box.y0 : box.y1, box.x0 : box.x1] = np.where(ok, var, np.nan)
    return images, variances, masks


def deepest_coadds(coadds: list[Any], warps: list[Any], n_max: int) -> list[Any]:
    """At most ``n_max`` coadds, shared between the bands, those with the most warps first in each band (ties
    in data-ID order): the most area covered by >= 3 inputs, where single-epoch features can be told."""
    count: dict[tuple[Any, ...], int] = defaultdict(int)
    for w in warps:
        count[(w.dataId["tract"], w.dataId["patch"], w.dataId["band"])] += 1
    by_band: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(coadds):
        by_band[str(r.dataId["band"])].append(i)
    ranked = [
        sorted(idx, key=lambda i: -count[(coadds[i].dataId["tract"], coadds[i].dataId["patch"], band)])
        for band, idx in sorted(by_band.items())
    ]
    chosen: list[int] = []
    for depth in range(max(len(r) for r in ranked)):  # round robin over the bands
        chosen.extend(r[depth] for r in ranked if depth < len(r))
    return [coadds[i] for i in sorted(chosen[:n_max])]


def _weights(images: np.ndarray, variances: np.ndarray) -> np.ndarray:
    return np.array(
        [im.inverse_variance_weight(np.nan_to_num(v, nan=np.inf), np.isfinite(v)) for v in variances]
    )


def _bright_objects(ctx: VerifyContext, ref: Any) -> Any:
    tract, patch, band = ref.dataId["tract"], ref.dataId["patch"], ref.dataId["band"]
    objs = ctx.refs("objectTable", tract=tract, patch=patch)
    if not objs:
        return None
    t = ctx.get(objs[0])
    flux, err = np.asarray(t[f"{band}_psfFlux"], float), np.asarray(t[f"{band}_psfFluxErr"], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["snr"] = flux / err
    return t


def _star_moments(coadd: Any, objs: Any, band: str, psf_sigma: float) -> dict[str, np.ndarray]:
    """Moments of bright isolated point sources and of the coadd PSF at their positions."""
    x, y, snr = np.asarray(objs["x"], float), np.asarray(objs["y"], float), np.asarray(objs["snr"], float)
    ext = np.asarray(
        objs["refExtendedness"] if "refExtendedness" in objs.colnames else objs[f"{band}_extendedness"]
    )
    sat = (
        np.asarray(objs[f"{band}_pixelFlags_saturated"], bool)
        if f"{band}_pixelFlags_saturated" in objs.colnames
        else np.zeros(len(objs), bool)
    )
    d = (
        np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) + np.eye(len(x)) * 1e9
        if len(x)
        else np.zeros((0, 0))
    )
    isolated = d.min(axis=1) > 2 * STAMP_HALF if len(x) > 1 else np.ones(len(x), bool)
    ny, nx = coadd.shape
    inside = (x > STAMP_HALF) & (x < nx - STAMP_HALF - 1) & (y > STAMP_HALF) & (y < ny - STAMP_HALF - 1)
    sel = np.nonzero((ext == 0) & (snr >= BRIGHT_SNR) & ~sat & isolated & inside)[0]
    star, psf, nu = [], [], []
    for k in sel:
        ix, iy = int(round(x[k])), int(round(y[k]))
        stamp = coadd.image[iy - STAMP_HALF : iy + STAMP_HALF + 1, ix - STAMP_HALF : ix + STAMP_HALF + 1]
        bad = coadd.mask[iy - STAMP_HALF : iy + STAMP_HALF + 1, ix - STAMP_HALF : ix + STAMP_HALF + 1]
        if (bad & mask_bit("NO_DATA", "SAT", "BAD")).any():
            continue
        ms = im.adaptive_moments(stamp, sigma_guess=psf_sigma)
        mp = im.adaptive_moments(np.asarray(coadd.psf.kernel_image(x[k], y[k])), sigma_guess=psf_sigma)
        if ms is None or mp is None:
            continue
        star.append(ms[:3])
        psf.append(mp[:3])
        nu.append(snr[k])
    return {"star": np.array(star).reshape(-1, 3), "psf": np.array(psf).reshape(-1, 3), "snr": np.array(nu)}


def measure_coadd(ctx: VerifyContext, ref: Any) -> dict[str, Any]:
    """Every measurement of one (patch, band) coadd."""
    coadd = ctx.get(ref)
    band = str(ref.dataId["band"])
    row: dict[str, Any] = {"band": band, "patch": ref.dataId["patch"], "tract": ref.dataId["tract"]}
    covered = (coadd.mask & mask_bit("NO_DATA")) == 0
    row["clipped"] = (int(np.count_nonzero(coadd.mask[covered] & mask_bit("CLIPPED"))), int(covered.sum()))
    cx, cy = (coadd.shape[1] - 1) / 2.0, (coadd.shape[0] - 1) / 2.0
    ixx, iyy, _ = coadd.psf.moments(cx, cy)
    psf_sigma = float(np.sqrt(0.5 * (ixx + iyy)))
    warp_refs = ctx.refs(
        "deepCoadd_directWarp", tract=ref.dataId["tract"], patch=ref.dataId["patch"], band=band
    )
    warps = [ctx.get(w) for w in warp_refs]
    images, variances, masks = stack_warps(warps, coadd.shape)
    weights = _weights(images, variances)
    bad = mask_bit(*DEFAULT_BAD_MASK_PLANES)
    masked = np.logical_or.reduce([(m & bad) != 0 for m in masks]) if masks else None
    feats = im.single_epoch_features(
        images, variances, weights, protect_radius=2.0 * FWHM_PER_SIGMA * psf_sigma, protect=masked
    )
    row["residues"] = im.feature_residues(feats, images, weights, coadd.image, variances)
    row["cutouts"] = _cutouts(feats, row["residues"], images, variances, weights, coadd.image, warp_refs)
    included = []
    for i, m in enumerate(masks):
        pix = np.nonzero(
            ((m & mask_bit("CR")) != 0) & ((m & mask_bit("INTRP")) != 0) & np.isfinite(images[i])
        )
        if pix[0].size:
            included.append(im.included_in_coadd(images, variances, weights, coadd.image, i, pix))
    row["included"] = np.concatenate(included) if included else np.zeros(0)
    objs = _bright_objects(ctx, ref)
    scale = im.pixel_scale_arcsec(coadd.wcs)
    row["pixel_scale"] = scale
    exclude = im.source_mask(coadd.image, coadd.variance, psf_sigma=psf_sigma) | ~covered
    centres = (
        np.zeros((0, 2))
        if objs is None
        else np.column_stack([np.asarray(objs["x"], float), np.asarray(objs["y"], float)])[
            np.asarray(objs["snr"]) >= BRIGHT_SNR
        ]
    )
    row["annulus"] = im.annulus_residuals(
        coadd.image,
        coadd.variance,
        centres,
        r_in=ANNULUS_ARCSEC[0] / scale,
        r_out=ANNULUS_ARCSEC[1] / scale,
        exclude=exclude,
    )
    row["moments"] = None if objs is None else _star_moments(coadd, objs, band, psf_sigma)
    return row


def _cutouts(
    feats: list[im.Feature],
    residues: np.ndarray,
    images: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    coadd: np.ndarray,
    warp_refs: list[Any],
) -> list[Any]:
    """(warp, others' mean, coadd, caption) around the two most significant features."""
    out = []
    for k in np.argsort([-f.peak_sigma for f in feats])[:2]:
        f = feats[k]
        i, x, y = f.warp, int(round(f.x)), int(round(f.y))
        sl = (slice(max(y - 20, 0), y + 21), slice(max(x - 20, 0), x + 21))
        ref, _, _ = im.leave_one_out_reference(
            images[:, sl[0], sl[1]], variances[:, sl[0], sl[1]], weights, i
        )
        cap = f"visit {warp_refs[i].dataId['visit']} ({x},{y})\nresidue {residues[k]:.2f}"
        out.append((images[i][sl], ref, coadd[sl], cap))
    return out


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-35 on the coadds of the collection."""
    result = CaseResult(CASE, th.title(CASE), th.section(CASE))
    refs = ctx.refs("deepCoadd")
    keys = (
        "coadd_artifacts_rejected",
        "coadd_clipped_fraction",
        "coadd_background_residual",
        "coadd_interpolated_included",
        "coadd_psf_size_residual",
        "coadd_psf_e_residual",
    )
    if not refs:
        result.checks.extend(th.evaluate(k, None, missing="no deepCoadd in the collection") for k in keys)
        return result
    sample = deepest_coadds(refs, ctx.refs("deepCoadd_directWarp"), MAX_COADDS)
    rows = [measure_coadd(ctx, r) for r in sample]
    note = f"{len(sample)} of {len(refs)} coadds (those with the most warps)"
    by_band: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_band[r["band"]].append(r)
    plots = _plots(ctx, th, by_band)
    for band in sorted(by_band):
        result.checks.extend(_band_checks(th, band, by_band[band], note, plots))
    return result


def _plots(
    ctx: VerifyContext, th: Thresholds, by_band: dict[str, list[dict[str, Any]]]
) -> dict[str, str | None]:
    if not ctx.make_plots:
        return {}
    out: dict[str, str | None] = {}
    path, out["annulus"] = ctx.figure("drp0035_annulus_profiles.png")
    scale = float(np.median([r["pixel_scale"] for rows in by_band.values() for r in rows]))
    plot_annulus_profiles(
        {b: [r["annulus"] for r in rows if r["annulus"].n_pixels] for b, rows in by_band.items()},
        path,
        pixel_scale=scale,
        title="coadd: residual sky around bright sources",
        threshold=float(th.spec("coadd_background_residual").threshold or 0.0),
    )
    for band, rows in by_band.items():
        cut = [c for r in rows for c in r["cutouts"]][:4]
        path, out[f"cutouts:{band}"] = ctx.figure(f"drp0035_features_{band}.png")
        plot_feature_cutouts(cut, path, title=f"{band}: single-epoch features (warp, other warps, coadd)")
    return out


def _band_checks(
    th: Thresholds, band: str, rows: list[dict[str, Any]], note: str, plots: dict[str, Any]
) -> list[Any]:
    scope = {"band": band}
    res = np.concatenate([r["residues"] for r in rows])
    res = res[np.isfinite(res)]
    shows = int(np.count_nonzero(res > RESIDUE_SHOWS))
    checks = [
        th.evaluate(
            "coadd_artifacts_rejected",
            shows / res.size if res.size else None,
            scope=scope,
            n=int(res.size),
            plot=plots.get(f"cutouts:{band}"),
            missing=f"no single-epoch feature found in the warps; {note}",
            reason=f"{shows} of {res.size} single-epoch features show in the coadd "
            f"(residue > {RESIDUE_SHOWS}); "
            f"median residue {np.median(res) if res.size else float('nan'):.2f}; {note}",
        )
    ]
    n_clip, n_cov = sum(r["clipped"][0] for r in rows), sum(r["clipped"][1] for r in rows)
    checks.append(
        th.evaluate(
            "coadd_clipped_fraction",
            n_clip / n_cov if n_cov else None,
            scope=scope,
            n=n_cov,
            reason=f"{n_clip} of {n_cov} covered pixels CLIPPED; {note}",
        )
    )
    ann = [r["annulus"] for r in rows if r["annulus"].n_pixels]
    n_pix = sum(a.n_pixels for a in ann)
    mean = sum(a.mean * a.n_pixels for a in ann) / n_pix if n_pix else None
    checks.append(
        th.evaluate(
            "coadd_background_residual",
            mean,
            scope=scope,
            n=n_pix,
            plot=plots.get("annulus"),
            missing="no bright object (S/N >= 100) with usable annulus pixels",
            reason=f"{sum(a.n_sources for a in ann)} bright objects, {n_pix} annulus pixels; median "
            f"{np.median([a.median for a in ann]) if ann else float('nan'):.3f} sigma; "
            f"fraction below -3 sigma "
            f"{sum(a.low_tail * a.n_pixels for a in ann) / max(n_pix, 1):.2g}; {note}",
        )
    )
    inc = np.concatenate([r["included"] for r in rows])
    inc = inc[np.isfinite(inc)]
    checks.append(
        th.evaluate(
            "coadd_interpolated_included",
            float(inc.mean()) if inc.size else None,
            scope=scope,
            n=int(inc.size),
            missing="no interpolated cosmic-ray pixel (CR and INTRP) in the warps",
            reason=f"{int(inc.sum())} of {inc.size} interpolated cosmic-ray warp pixels contribute; {note}",
        )
    )
    checks.extend(_psf_checks(th, scope, rows, note))
    return checks


def _psf_checks(th: Thresholds, scope: dict[str, Any], rows: list[dict[str, Any]], note: str) -> list[Any]:
    mom = [r["moments"] for r in rows if r["moments"] is not None and len(r["moments"]["snr"])]
    if not mom:
        why = "no bright isolated point source (refExtendedness 0, S/N >= 100, unsaturated)"
        return [
            th.evaluate("coadd_psf_size_residual", None, scope=scope, missing=why),
            th.evaluate("coadd_psf_e_residual", None, scope=scope, missing=why),
        ]
    star = np.concatenate([m["star"] for m in mom])
    psf = np.concatenate([m["psf"] for m in mom])
    snr = np.concatenate([m["snr"] for m in mom])
    r = im.shape_residuals(star, psf)
    size = r["size"]
    checks = [
        th.evaluate(
            "coadd_psf_size_residual",
            float(np.median(size)),
            scope=scope,
            n=len(size),
            reason=f"{len(size)} stars S/N >= {BRIGHT_SNR:g}; mean {np.mean(size):.4f}, "
            f"rms {np.std(size):.4f}; {note}",
        )
    ]
    # ellipticities: stars whose shape noise per component (2 / SNR) is at most half the threshold
    threshold = th.spec("coadd_psf_e_residual").threshold
    min_snr = max(BRIGHT_SNR, 4.0 / threshold) if threshold else BRIGHT_SNR
    sel = snr >= min_snr
    if not sel.any():
        checks.append(
            th.evaluate(
                "coadd_psf_e_residual",
                None,
                scope=scope,
                missing=f"no bright isolated point source with S/N >= {min_snr:g}",
            )
        )
        return checks
    noise2 = float(np.mean((2.0 / snr[sel]) ** 2))
    rms = [float(np.sqrt(np.mean(r[c][sel] ** 2))) for c in ("e1", "e2")]
    debiased = [float(np.sqrt(max(v * v - noise2, 0.0))) for v in rms]
    n_e = int(sel.sum())
    checks.append(
        th.evaluate(
            "coadd_psf_e_residual",
            max(debiased),
            scope=scope,
            n=n_e,
            reason=f"{n_e} stars S/N >= {min_snr:g}; rms e1 {rms[0]:.4f}, e2 {rms[1]:.4f} before removing "
            f"the shape noise {np.sqrt(noise2):.4f} (2/SNR) in quadrature; mean e1 "
            f"{np.mean(r['e1'][sel]):.4f}, e2 {np.mean(r['e2'][sel]):.4f}; {note}",
        )
    )
    return checks
