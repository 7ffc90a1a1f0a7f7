"""Diagnostic: why coadd PSF fluxes of bright isolated stars scatter against the truth (issue 10, issue 11).

Run on demand (not a test) on the output directory of ``opendrp demo`` (its repository and truth)::

    PYTHONPATH=src .venv/bin/python benchmarks/diagnose_coadd_photometry.py /tmp/demo_tiny \
        --out bench_out/diagnose_coadd_tiny.json

For the isolated true stars with coadd S/N > 50 (no other truth source with more than 0.5 % of the star's
flux within 2.5 arcsec, nor with more than 10 % within 5 arcsec; not saturated; inside the patch's inner
region with its centre covered by an input; matched to an object within 0.5 arcsec), per band, it separates
the candidate causes:

i.    ``aperture``: the 12-pixel-radius aperture flux on the coadd at the true position over the truth (the
      coadd's photometric calibration itself; the Moffat wings beyond 12 px hold ~0.5 %).
ii.   ``psf_model`` / ``psf_empirical``: PSF flux at the true position with the coadd's PSF model, and with
      an empirical PSF: the unit-sum mean of the 12 nearest other selected stars' coadd stamps, each
      re-centred on its true position (the model's size and shape error shows as their difference; the
      empirical PSF is noisy, ~2 % per star on the tiny preset, and mixes coverages: (iii) is sharper).
iii.  ``moments``: ``T = Ixx + Iyy`` of each star (adaptive moments on the coadd, the Object table's
      ``ixx``/``iyy``) over the PSF model's at that position (``ixxPSF``...), also split by the number of
      inputs covering the star (stars where inputs start and stop have fewer).
iv.   ``clipping``: fraction of the pixels within one FWHM of each star flagged ``CLIPPED``; and the PSF flux
      on a coadd re-assembled from the same warps without artifact rejection.
v.    ``position``: the Object table's psfFlux (forced at the object position) against the PSF flux at the
      true position with the same model; and the position offsets (mas).
vi.   ``warping``: per input visit, the 12-pixel aperture flux on the warp over the aperture flux on the
      calibrated calexp (counts times the calibration) at the same true position.

Every figure is given as the median, robust scatter (1.4826 MAD), unclipped rms and the fraction beyond 3 %
(fluxes) or 50 mas (positions); pulls ``(flux - truth) / error`` beside residuals; the single-visit psfFlux
of the same stars (the ``src`` tables) for comparison.  JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sep
from astropy.table import Table
from scipy import ndimage
from scipy.spatial import cKDTree

from opendrp.coadd import assemble_coadd
from opendrp.image import mask_bit
from opendrp.measurement import measure_sources
from opendrp.psf.model import shift_image
from opendrp.repo import open_butler
from opendrp.repo.butler import get_skymap

ARCSEC = 1.0 / 3600.0
APERTURE_RADIUS = 12.0
EMPIRICAL_NEIGHBOURS = 12


def _stats(values: np.ndarray, *, tail: float) -> dict[str, Any]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    med = float(np.median(v))
    return {
        "n": int(v.size),
        "median": med,
        "robust_scatter": float(1.4826 * np.median(np.abs(v - med))),
        "rms": float(np.sqrt(np.mean(v**2))),
        "std": float(np.std(v)),
        "tail_fraction": float(np.mean(np.abs(v) > tail)),
        "tail": tail,
    }


def _frac(values: np.ndarray) -> dict[str, Any]:
    return _stats(values, tail=0.03)


def _pull(values: np.ndarray) -> dict[str, Any]:
    return _stats(values, tail=5.0)


def _psf_flux_at(image, bad, kernels, x, y) -> np.ndarray:
    """Unweighted PSF flux with the kernels ``kernels[k]`` (unit sum, centred) shifted to (x, y)."""
    out = np.full(len(x), np.nan)
    for k in range(len(x)):
        ker = kernels[k]
        half = ker.shape[0] // 2
        ix, iy = int(np.floor(x[k] + 0.5)), int(np.floor(y[k] + 0.5))
        p = shift_image(ker, x[k] - ix, y[k] - iy)
        sl = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
        if iy - half < 0 or ix - half < 0 or iy + half >= image.shape[0] or ix + half >= image.shape[1]:
            continue
        d, use = image[sl], ~bad[sl]
        pp = np.where(use, p, 0.0)
        out[k] = float((pp * d).sum() / (pp * pp).sum())
    return out


def _stamp(image: np.ndarray, x: float, y: float, half: int) -> np.ndarray | None:
    """A stamp re-centred (cubic spline) on (x, y), or None near the edges."""
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    h = half + 3
    if iy - h < 0 or ix - h < 0 or iy + h >= image.shape[0] or ix + h >= image.shape[1]:
        return None
    big = np.asarray(image[iy - h : iy + h + 1, ix - h : ix + h + 1], float)
    big = ndimage.shift(big, (iy - y, ix - x), order=3, mode="nearest")
    return big[3:-3, 3:-3]


def select_stars(truth: pd.DataFrame, band: str) -> np.ndarray:
    """Boolean: truth stars with no neighbour > 0.5 % of their flux within 2.5", nor > 10 % within 5"."""
    ra, dec = truth["ra"].to_numpy(), truth["dec"].to_numpy()
    c = np.cos(np.radians(np.median(dec)))
    xy = np.column_stack([ra * c, dec]) / ARCSEC
    flux = truth[f"{band}_flux"].to_numpy()
    tree = cKDTree(xy)
    isolated = np.ones(len(truth), bool)
    for radius, frac in ((2.5, 0.005), (5.0, 0.1)):
        for i, js in enumerate(tree.query_ball_point(xy, radius)):
            if not isolated[i]:
                continue
            others = [j for j in js if j != i]
            if others and np.max(flux[others]) > frac * flux[i]:
                isolated[i] = False
    return isolated & truth["is_star"].to_numpy()


class RepoData:
    """Coadds, warps and calexps of a finished run, read from its repository."""

    def __init__(self, butler: Any, collection: str) -> None:
        self.butler, self.collection = butler, collection
        self.skymap = get_skymap(butler)

    def patches(self, band: str) -> list[tuple[int, int]]:
        refs = self.butler.query_datasets(
            "deepCoadd", collections=self.collection, where=f"band='{band}'", limit=None
        )
        return sorted({(int(r.dataId["tract"]), int(r.dataId["patch"])) for r in refs})

    def coadd(self, tract: int, patch: int, band: str) -> Any:
        return self.butler.get("deepCoadd", tract=tract, patch=patch, band=band, skymap=self.skymap.name)

    def warps(self, tract: int, patch: int, band: str) -> list[tuple[int, Any]]:
        refs = self.butler.query_datasets(
            "deepCoadd_directWarp",
            collections=self.collection,
            where=f"band='{band}' AND tract={tract} AND patch={patch}",
            limit=None,
        )
        return [(int(r.dataId["visit"]), self.butler.get(r)) for r in refs]

    def calexps(self, visit: int) -> list[Any]:
        refs = self.butler.query_datasets(
            "calexp", collections=self.collection, where=f"visit={visit}", limit=None
        )
        return [self.butler.get(r) for r in refs]


class RerunData(RepoData):
    """Warps, coadds and the Object table recomputed in memory from the run's calexps with task configs
    (``overrides``: task label -> {field: value}), by the tasks' ``run()`` methods."""

    def __init__(self, butler: Any, collection: str, overrides: dict[str, dict[str, Any]]) -> None:
        super().__init__(butler, collection)
        from lsst.pipe.base import NoWorkFound

        from opendrp.tasks.coadd import AssembleCoaddTask, MakeWarpTask
        from opendrp.tasks.multiband import (
            DetectCoaddTask,
            ForcedPhotCoaddTask,
            MergeDetectionsTask,
            WriteObjectTableTask,
        )

        def make(cls: Any, label: str) -> Any:
            config = cls.ConfigClass()
            for k, v in overrides.get(label, {}).items():
                setattr(config, k, v)
            config.validate()
            return cls(config=config)

        warp_t, coadd_t = make(MakeWarpTask, "makeWarp"), make(AssembleCoaddTask, "assembleCoadd")
        det_t, merge_t = make(DetectCoaddTask, "detectCoadd"), make(MergeDetectionsTask, "mergeDetections")
        forced_t, obj_t = (
            make(ForcedPhotCoaddTask, "forcedPhotCoadd"),
            make(WriteObjectTableTask, "writeObjectTable"),
        )
        self._coadds: dict[tuple[int, int, str], Any] = {}
        self._warps: dict[tuple[int, int, str], list[tuple[int, Any]]] = {}
        refs = list(butler.query_datasets("deepCoadd", collections=collection, limit=None))
        keys = sorted({(int(r.dataId["tract"]), int(r.dataId["patch"]), str(r.dataId["band"])) for r in refs})
        self._bands_of: dict[tuple[int, int], list[str]] = {}
        visits = butler.query_datasets("calexp", collections=collection, limit=None)
        by_band: dict[str, set[int]] = {}
        for r in visits:
            by_band.setdefault(str(r.dataId["band"]), set()).add(int(r.dataId["visit"]))
        cal_cache = {v: self.butler_calexps(v) for vs in by_band.values() for v in vs}
        self._calexps = cal_cache
        tables = []
        for tract, patch in sorted({(t, p) for t, p, _ in keys}):
            info = self.skymap.tract(tract).patch(patch)
            dets, forced = {}, {}
            for band in sorted({b for t, p, b in keys if (t, p) == (tract, patch)}):
                warps = []
                for v in sorted(by_band[band]):
                    try:
                        warps.append(
                            (v, warp_t.run(calexps=cal_cache[v], patch=info, visit=v, band=band).warp)
                        )
                    except NoWorkFound:
                        pass
                self._warps[(tract, patch, band)] = warps
                coadd = coadd_t.run(warps=[w for _, w in warps], patch=info, band=band).coadd
                self._coadds[(tract, patch, band)] = coadd
                dets[band] = det_t.run(coadd=coadd).detections
            merged = merge_t.run(detections=dets, sky_map=self.skymap, tract=tract, patch=patch).merged
            for band in dets:
                forced[band] = forced_t.run(coadd=self._coadds[(tract, patch, band)], merged=merged).forced
            tables.append(obj_t.run(forced=forced, merged=merged).objects)
        from astropy.table import vstack

        self.objects = vstack(tables, metadata_conflicts="silent").to_pandas()

    def butler_calexps(self, visit: int) -> list[Any]:
        return RepoData.calexps(self, visit)

    def patches(self, band: str) -> list[tuple[int, int]]:
        return sorted((t, p) for t, p, b in self._coadds if b == band)

    def calexps(self, visit: int) -> list[Any]:
        return self._calexps[visit]

    def coadd(self, tract: int, patch: int, band: str) -> Any:
        return self._coadds[(tract, patch, band)]

    def warps(self, tract: int, patch: int, band: str) -> list[tuple[int, Any]]:
        return self._warps[(tract, patch, band)]


def diagnose_band(data: RepoData, truth: pd.DataFrame, band: str, objects: pd.DataFrame, srcs: Table) -> dict:
    skymap = data.skymap
    isolated = select_stars(truth, band)
    results: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        results.setdefault(name, []).append(np.asarray(values, float))

    for tract, patch_id in data.patches(band):
        patch = skymap.tract(tract).patch(patch_id)
        coadd = data.coadd(tract, patch_id, band)
        ny, nx = coadd.shape
        xt, yt = patch.wcs.all_world2pix(truth["ra"].to_numpy(), truth["dec"].to_numpy(), 0)
        inside = patch.contains_inner(xt, yt) & (xt > 20) & (yt > 20) & (xt < nx - 21) & (yt < ny - 21)
        # a star whose centre no input covers (half a star at the coverage's edge) is not a measurement
        ixt = np.clip(np.rint(xt), 0, nx - 1).astype(int)
        iyt = np.clip(np.rint(yt), 0, ny - 1).astype(int)
        inside &= (coadd.mask[iyt, ixt] & mask_bit("NO_DATA")) == 0
        obj = objects[(objects["tract"] == tract) & (objects["patch"] == patch_id)]
        if len(obj) == 0:
            continue
        ox, oy = obj["x"].to_numpy(), obj["y"].to_numpy()
        d, j = cKDTree(np.column_stack([ox, oy])).query(np.column_stack([xt, yt]))
        matched = d < 0.5 / 0.168
        sn = obj[f"{band}_psfFlux"].to_numpy()[j] / obj[f"{band}_psfFluxErr"].to_numpy()[j]
        sat = obj[f"{band}_pixelFlags_saturated"].to_numpy()[j].astype(bool)
        base = inside & matched & ~sat & truth["is_star"].to_numpy()
        for label, sel in (
            ("isolated", base & isolated & (sn > 50)),
            ("blended", base & ~isolated & (sn > 50)),
        ):
            idx = np.flatnonzero(sel)
            if idx.size == 0:
                continue
            tf = truth[f"{band}_flux"].to_numpy()[idx]
            o = obj.iloc[j[idx]]
            x, y = xt[idx], yt[idx]
            pf, pe = o[f"{band}_psfFlux"].to_numpy(), o[f"{band}_psfFluxErr"].to_numpy()
            add(f"{label}/object_psfFlux", pf / tf - 1)
            add(f"{label}/object_pull", (pf - tf) / pe)
            add(f"{label}/object_sn", pf / pe)
            add(f"{label}/dx_mas", (o["x"].to_numpy() - x) * 168.0)
            add(f"{label}/dy_mas", (o["y"].to_numpy() - y) * 168.0)
            if label == "blended":
                continue
            bad = (coadd.mask & mask_bit("NO_DATA", "BAD", "SAT")) != 0
            img = np.asarray(coadd.image, float)
            f_ap, e_ap, _ = sep.sum_circle(
                img.astype(np.float32),
                x,
                y,
                APERTURE_RADIUS,
                var=np.where(np.isfinite(coadd.variance), coadd.variance, 0).astype(np.float32),
                subpix=5,
            )
            add("isolated/aperture", f_ap / tf - 1)
            add("isolated/aperture_pull", (f_ap - tf) / e_ap)
            model_true = measure_sources(
                coadd.image, coadd.variance, coadd.mask, coadd.psf, x, y, centroid=False, petrosian=False
            )
            fm = np.asarray(model_true["psfFlux"], float)
            add("isolated/psf_model_true_position", fm / tf - 1)
            add("isolated/psf_model_true_position_pull", (fm - tf) / np.asarray(model_true["psfFluxErr"]))
            add("isolated/position_effect", pf / fm - 1)
            # empirical PSF from the other selected stars
            half = coadd.psf.size // 2
            stamps = [_stamp(img, x[k], y[k], half) for k in range(len(x))]
            tree = cKDTree(np.column_stack([x, y]))
            empirical = []
            for k in range(len(x)):
                _, nb = tree.query([x[k], y[k]], k=min(EMPIRICAL_NEIGHBOURS + 1, len(x)))
                acc = np.zeros((2 * half + 1, 2 * half + 1))
                for i in (int(i) for i in np.atleast_1d(nb)):
                    st = stamps[i]
                    if i != k and st is not None:
                        acc += st / st.sum()
                empirical.append(acc / max(acc.sum(), 1e-30))
            fe = _psf_flux_at(img, bad, empirical, x, y)
            add("isolated/psf_empirical_true_position", fe / tf - 1)
            models = [coadd.psf.kernel_image(x[k], y[k]) for k in range(len(x))]
            fmod2 = _psf_flux_at(img, bad, models, x, y)
            add("isolated/psf_model_minus_empirical", fmod2 / fe - 1)
            # moments
            t_star = o[f"{band}_ixx"].to_numpy() + o[f"{band}_iyy"].to_numpy()
            t_psf = o[f"{band}_ixxPSF"].to_numpy() + o[f"{band}_iyyPSF"].to_numpy()
            ratio = np.sqrt(t_star / t_psf) - 1
            add("isolated/size_star_over_psf", ratio)
            ncov = np.array([coadd.psf.covering(x[k], y[k]).size for k in range(len(x))])
            add("isolated/n_inputs_covering", ncov)
            nvis = len(coadd.metadata.get("visits", [])) or int(ncov.max())
            add("isolated/size_ratio_full_cover", np.where(ncov >= nvis, ratio, np.nan))
            add("isolated/size_ratio_partial_cover", np.where(ncov < nvis, ratio, np.nan))
            add("isolated/psf_flux_full_cover", np.where(ncov >= nvis, pf / tf - 1, np.nan))
            add("isolated/psf_flux_partial_cover", np.where(ncov < nvis, pf / tf - 1, np.nan))
            # clipping
            fwhm = coadd.psf.fwhm_pixels(x[0], y[0])
            yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
            core = np.hypot(xx, yy) <= fwhm
            clipped = (coadd.mask & mask_bit("CLIPPED")) != 0
            cf = []
            for k in range(len(x)):
                ix, iy = int(round(x[k])), int(round(y[k]))
                cf.append(clipped[iy - half : iy + half + 1, ix - half : ix + half + 1][core].mean())
            add("isolated/clipped_core_fraction", np.array(cf))
            add("isolated/psf_flux_any_clipped", np.where(np.array(cf) > 0, pf / tf - 1, np.nan))
            add("isolated/psf_flux_none_clipped", np.where(np.array(cf) == 0, pf / tf - 1, np.nan))
            # re-assemble without clipping
            visit_warps = data.warps(tract, patch_id, band)
            warps = [w for _, w in visit_warps]
            noclip = assemble_coadd(warps, clip_sigma=None, shape=coadd.shape, wcs=patch.wcs)
            nc = measure_sources(
                noclip.image,
                noclip.variance,
                noclip.mask,
                noclip.psf,
                o["x"].to_numpy(),
                o["y"].to_numpy(),
                centroid=False,
                petrosian=False,
            )
            fnc = np.asarray(nc["psfFlux"], float)
            add("isolated/psf_flux_noclip", fnc / tf - 1)
            add("isolated/psf_flux_noclip_pull", (fnc - tf) / np.asarray(nc["psfFluxErr"]))
            # warping flux conservation, per visit
            for visit, warp in visit_warps:
                bx0 = int(warp.metadata.get("WARP_X0", 0))
                by0 = int(warp.metadata.get("WARP_Y0", 0))
                wimg = np.asarray(warp.image, np.float32)
                fw, _, flw = sep.sum_circle(wimg, x - bx0, y - by0, APERTURE_RADIUS, subpix=5)
                ok_w = (flw & sep.APER_TRUNC) == 0
                fc = np.full(len(x), np.nan)
                for cal in data.calexps(visit):
                    cx, cy = cal.wcs.all_world2pix(
                        truth["ra"].to_numpy()[idx], truth["dec"].to_numpy()[idx], 0
                    )
                    cny, cnx = cal.shape
                    on = (cx > 15) & (cy > 15) & (cx < cnx - 16) & (cy < cny - 16)
                    if not on.any():
                        continue
                    f, _, _ = sep.sum_circle(
                        np.ascontiguousarray(cal.image, np.float32), cx[on], cy[on], APERTURE_RADIUS, subpix=5
                    )
                    fc[on] = f * cal.photo_calib.calibration_at(cx[on], cy[on])
                add("isolated/warp_over_calexp_aperture", np.where(ok_w, fw / fc - 1, np.nan))
    out: dict[str, Any] = {}
    for name, parts in results.items():
        v = np.concatenate(parts)
        if name.endswith("_mas"):
            out[name] = _stats(v, tail=50.0)
        elif name.endswith("pull"):
            out[name] = _pull(v)
        elif name.endswith(("n_inputs_covering", "_sn", "clipped_core_fraction")):
            out[name] = {
                "n": int(np.isfinite(v).sum()),
                "mean": float(np.nanmean(v)),
                "median": float(np.nanmedian(v)),
                "max": float(np.nanmax(v)),
                "fraction_nonzero": float(np.nanmean(v > 0)),
            }
        else:
            out[name] = _frac(v)
    for label in ("isolated", "blended"):
        if f"{label}/dx_mas" in results:
            dx = np.concatenate(results[f"{label}/dx_mas"])
            dy = np.concatenate(results[f"{label}/dy_mas"])
            out[f"{label}/position"] = {
                "n": int(dx.size),
                "rms_x_mas": float(np.sqrt(np.mean(dx**2))),
                "rms_y_mas": float(np.sqrt(np.mean(dy**2))),
                "fraction_beyond_50mas": float(np.mean(np.hypot(dx, dy) > 50.0)),
            }
    out["single_visit"] = single_visit(truth, band, srcs, objects, isolated)
    return out


def single_visit(truth: pd.DataFrame, band: str, srcs: Table, objects: pd.DataFrame, isolated) -> dict:
    """Single-visit psfFlux / truth - 1 of the same selection (isolated truth stars, coadd S/N > 50)."""
    s = srcs[srcs["band"] == band]
    if len(s) == 0:
        return {}
    c = np.cos(np.radians(np.median(truth["dec"])))
    txy = np.column_stack([truth["ra"] * c, truth["dec"]]) / ARCSEC
    oxy = np.column_stack([objects["coord_ra"] * c, objects["coord_dec"]]) / ARCSEC
    d, j = cKDTree(oxy).query(txy)
    sn = objects[f"{band}_psfFlux"].to_numpy()[j] / objects[f"{band}_psfFluxErr"].to_numpy()[j]
    sat = objects[f"{band}_pixelFlags_saturated"].to_numpy()[j].astype(bool)
    keep = isolated & (d < 0.5) & (sn > 50) & ~sat & objects["detect_isPrimary"].to_numpy()[j].astype(bool)
    sxy = np.column_stack([np.asarray(s["coord_ra"]) * c, np.asarray(s["coord_dec"])]) / ARCSEC
    d2, j2 = cKDTree(txy[keep]).query(sxy)
    m = d2 < 0.3
    tf = truth[f"{band}_flux"].to_numpy()[keep][j2[m]]
    f = np.asarray(s["psfFlux"], float)[m]
    e = np.asarray(s["psfFluxErr"], float)[m]
    return {"psfFlux": _frac(f / tf - 1), "pull": _pull((f - tf) / e)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("demo_dir", type=Path)
    p.add_argument("--collection", default=None, help="output chain (default: {instrument}/runs/drp)")
    p.add_argument("--out", type=Path, default=Path("bench_out/diagnose_coadd.json"))
    p.add_argument("--bands", nargs="*", default=None)
    p.add_argument(
        "--rerun",
        default=None,
        help="JSON of task-config overrides ({label: {field: value}}): recompute warps, coadds and objects "
        "in memory from the run's calexps with the current code instead of reading the run's coadds",
    )
    args = p.parse_args(argv)
    repo = args.demo_dir / "repo"
    collection = args.collection or "HSC/runs/drp"
    butler = open_butler(repo, collections=[collection])
    truth = pd.read_parquet(args.demo_dir / "truth" / "truth.parquet")
    if args.rerun is not None:
        data: RepoData = RerunData(butler, collection, json.loads(args.rerun))
        objects = data.objects  # type: ignore[attr-defined]
        objects.to_parquet(args.out.with_suffix(".objects.parquet"))
    else:
        data = RepoData(butler, collection)
        objects = pd.read_parquet(args.demo_dir / "catalogs" / "object.parquet")
    refs = list(butler.query_datasets("src", collections=collection, limit=None))
    cols = ["coord_ra", "coord_dec", "psfFlux", "psfFluxErr", "band"]
    from astropy.table import vstack

    srcs = vstack([butler.get(r, parameters={"columns": cols}) for r in refs], metadata_conflicts="silent")
    bands = args.bands or sorted(c[: -len("_psfFlux")] for c in objects.columns if c.endswith("_psfFlux"))
    bands = [b for b in bands if data.patches(b)]
    report: dict[str, Any] = {b: diagnose_band(data, truth, b, objects, srcs) for b in bands}
    report["rerun"] = args.rerun
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for b, r in report.items():
        if not isinstance(r, dict):
            continue
        print(f"== band {b}")
        for k, v in r.items():
            if isinstance(v, dict) and "robust_scatter" in v:
                print(
                    f"  {k:45s} n={v['n']:4d} med={v['median']:+.4f} rob={v['robust_scatter']:.4f} "
                    f"rms={v['rms']:.4f} tail={v['tail_fraction']:.3f}"
                )
            else:
                print(f"  {k:45s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
