"""Validation: single-frame processing accuracy against the simulation truth (issue #4 targets).

Run on demand (not a test), on a repository with built calibrations (``opendrp run REPO --steps calibs``) of a
simulation with artefact truth (the ``rc`` preset, or a cut-down copy with full-size CCDs)::

    .venv/bin/python benchmarks/validate_sfp.py REPO SIMDIR [--max-ccds 9] [--out bench_out/validate_sfp.json]
        [--cache DIR]

Each science raw (up to ``--max-ccds``) is processed in-process by ``CalibrateImageTask`` with the certified
calibrations.  Measured, and compared with the issue's targets in the JSON written to ``--out``:

- stars with S/N > 100 (matched to the truth within 0.5", unsaturated, PSF fit good, not within 2 FWHM of the
  CCD edge): astrometric residual vs the true positions (rms per coordinate, mas; also a robust rms and the
  rms of isolated stars, no other truth source brighter than 1% of the star within 3": the target applies to
  these, an unresolved blend's centroid is the blend's), median PSF-flux offset (psfFlux / true - 1) and
  the normalised scatter (robust rms of (psfFlux - true) / psfFluxErr);
- PSF model ellipticity residual: the model's adaptive-moment ellipticity at each PSF star minus that of the
  simulator's true PSF there (`opendrp.sim.psf.local_psf`, drawn with `moffat_stamp` at the same sub-pixel
  position and measured the same way), rms over both components;
- cosmic rays: the truth tracks (``truth/cosmic_rays.parquet``) re-deposited exactly as the simulator does;
  the fraction of pixels whose deposit exceeds 5 sigma (calexp variance) that are masked ``CR`` (or already
  masked ``SAT``/``BAD``);
- star centres wrongly flagged: truth stars detected with S/N > 20 whose central 3 x 3 pixels carry ``CR``
  although no true cosmic ray deposits more than 1 sigma within a pixel of them;
- saturated stars: the full-well runs of ``truth/bleed_trails.parquet`` grouped into stars (connected
  pixels); the fraction of stars all of whose full-well pixels are masked ``SAT``.

``--cache DIR`` keeps each CCD's results (src and artefact counts) so that a second run only re-evaluates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from opendrp.sim.artifacts import deposit_bilinear

TARGETS = {
    "astrom_rms_mas": 10.0,
    "psf_flux_median_offset_abs": 0.005,
    "psf_flux_norm_scatter_range": (0.8, 1.3),
    "psf_ellipticity_residual_rms": 0.005,
    "cr_pixels_masked_fraction_min": 0.99,
    "cr_false_flag_fraction_star_centres": 0.001,
    "saturated_stars_masked_fraction": 1.0,
}

_STAR_SNR = 100.0


def _robust_std(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else float("nan")


# ---------------------------------------------------------------- artefact truth on one CCD


def cosmic_ray_image(tracks: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Charge (electrons) of the truth cosmic-ray tracks on a CCD, deposited as `add_cosmic_rays` does.

    The simulator records each track's ends and the charge that fell on the CCD; it deposits ``charge /
    n_step`` at ``n_step = ceil(2 length)`` points spaced evenly along the track, bilinearly.
    """
    ny, nx = shape
    out = np.zeros(shape, np.float64)
    for x0, y0, x1, y1, electrons in tracks[["x0", "y0", "x1", "y1", "electrons"]].itertuples(index=False):
        length = float(np.hypot(x1 - x0, y1 - y0))
        n_step = max(1, int(np.ceil(length * 2.0)))
        s = (np.arange(n_step) + 0.5) / n_step
        xs, ys = x0 + s * (x1 - x0), y0 + s * (y1 - y0)
        inside = (xs > -0.5) & (xs < nx - 0.5) & (ys > -0.5) & (ys < ny - 0.5)
        if not inside.any():
            continue
        deposit_bilinear(out, xs, ys, float(electrons) / int(inside.sum()))
    return out


def artefact_stats(
    calexp: Any,
    *,
    cr_tracks: pd.DataFrame,
    bleed: pd.DataFrame,
    star_xy: np.ndarray,
) -> dict[str, Any]:
    """Cosmic-ray masking, star-centre false flags and saturated-star masking on one calexp."""
    from scipy import ndimage

    from opendrp.image import mask_bit

    mask = np.asarray(calexp.mask)
    sigma = np.sqrt(np.maximum(np.asarray(calexp.variance, np.float64), 1e-12))
    shape = mask.shape
    ny, nx = shape
    out: dict[str, Any] = {}
    # ---- cosmic-ray pixels above 5 sigma
    cr_e = cosmic_ray_image(cr_tracks, shape)
    hit = cr_e > 5.0 * sigma
    cr_bit, other = mask_bit("CR"), mask_bit("SAT", "BAD", "NO_DATA")
    out["cr_pixels_5sigma"] = int(hit.sum())
    out["cr_pixels_masked_cr"] = int(((mask[hit] & cr_bit) != 0).sum())
    out["cr_pixels_masked_any"] = int(((mask[hit] & (cr_bit | other)) != 0).sum())
    # ---- star centres: CR in the central 3 x 3 pixels with no true cosmic ray > 1 sigma within 2 pixels
    real = ndimage.maximum_filter(cr_e > 1.0 * sigma, size=5)
    ix = np.rint(star_xy[:, 0]).astype(int)
    iy = np.rint(star_xy[:, 1]).astype(int)
    ok = (ix >= 1) & (ix < nx - 1) & (iy >= 1) & (iy < ny - 1)
    ix, iy = ix[ok], iy[ok]
    flagged = np.zeros(ix.size, bool)
    really = np.zeros(ix.size, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            flagged |= (mask[iy + dy, ix + dx] & cr_bit) != 0
            really |= real[iy + dy, ix + dx]
    out["star_centres"] = int(ix.size)
    out["star_centres_cr_flagged"] = int(flagged.sum())
    out["star_centres_cr_wrong"] = int((flagged & ~really).sum())
    # ---- saturated stars: connected full-well pixels of the truth bleed runs
    full = np.zeros(shape, bool)
    for x, y0, y1 in bleed[["x", "y0", "y1"]].itertuples(index=False):
        full[max(int(y0), 0) : int(y1) + 1, int(x)] = True
    labels, n_stars = ndimage.label(full, structure=np.ones((3, 3)))
    sat = (mask & mask_bit("SAT")) != 0
    if n_stars:
        unmasked = np.bincount(labels[full & ~sat], minlength=n_stars + 1)[1:]
        out["saturated_stars"] = int(n_stars)
        out["saturated_stars_masked"] = int((unmasked == 0).sum())
    else:
        out["saturated_stars"] = out["saturated_stars_masked"] = 0
    out["full_well_pixels"] = int(full.sum())
    out["full_well_pixels_masked"] = int((full & sat).sum())
    return out


# ---------------------------------------------------------------- processing


class CcdCalibrator:
    """calibrateImage on one science CCD of a repository, as the pipeline runs it: its certified calibrations,
    the whole reference catalog.  The camera, the reference catalog and the task are loaded on first use."""

    def __init__(self, butler: Any, inst: str = "HSC") -> None:
        self.butler = butler
        self.inst = inst
        self.task: Any = None

    def load(self) -> None:
        from opendrp.repo.butler import defaults_chain
        from opendrp.tasks.sfp import CalibrateImageTask, CalibrateImageTaskConfig

        chain = defaults_chain(self.inst)
        self.camera = self.butler.get("camera", instrument=self.inst, collections=chain)
        refs = self.butler.query_datasets("ref_cat", collections=chain, explain=False, limit=None)
        self.refcat = vstack([self.butler.get(r) for r in refs], metadata_conflicts="silent")
        self.task = CalibrateImageTask(config=CalibrateImageTaskConfig())

    def __call__(self, ref: Any) -> tuple[Any, str]:
        """Run the task on the raw ``ref``; return its result and the band."""
        from opendrp.repo.butler import calib_collection

        if self.task is None:
            self.load()
        butler, inst, calib = self.butler, self.inst, calib_collection(self.inst)
        exp_id, det = int(ref.dataId["exposure"]), int(ref.dataId["detector"])
        rec = butler.registry.expandDataId(ref.dataId).records["exposure"]
        band = self.camera.filter(str(rec.physical_filter)).band

        def calib_get(name: str, **extra: Any) -> Any:
            try:
                return butler.get(name, instrument=inst, detector=det, collections=calib, **extra)
            except Exception:
                return None

        result = self.task.run(
            raws=[butler.get(ref)],
            camera=self.camera,
            detector=det,
            band=band,
            refcat=self.refcat,
            bias=calib_get("bias"),
            dark=calib_get("dark"),
            flat=calib_get("flat", physical_filter=str(rec.physical_filter)),
            defects=calib_get("defects"),
            visit=exp_id,
        )
        return result, band


def process(
    repo: str, sim: Path, max_ccds: int, cache: Path | None
) -> tuple[list[Table], list[dict[str, Any]], list[str]]:
    from opendrp.repo.butler import defaults_chain, open_butler

    butler = open_butler(repo)
    inst = "HSC"
    raws = list(
        butler.query_datasets(
            "raw",
            collections=defaults_chain(inst),
            where="exposure.observation_type = 'science'",
            explain=False,
            limit=None,
        )
    )
    raws = sorted(raws, key=lambda r: (int(r.dataId["exposure"]), int(r.dataId["detector"])))[:max_ccds]
    truth_dir = sim / "truth"
    crs = (
        pd.read_parquet(truth_dir / "cosmic_rays.parquet")
        if (truth_dir / "cosmic_rays.parquet").exists()
        else None
    )
    bleeds = (
        pd.read_parquet(truth_dir / "bleed_trails.parquet")
        if (truth_dir / "bleed_trails.parquet").exists()
        else None
    )
    truth = pd.read_parquet(truth_dir / "truth.parquet")
    stars = truth[truth["is_star"]]
    calibrate = CcdCalibrator(butler, inst)
    srcs, metrics, failures = [], [], []
    for ref in raws:
        did = ref.dataId
        exp_id, det = int(did["exposure"]), int(did["detector"])
        key = f"{exp_id}_{det}"
        if cache is not None and (cache / f"{key}.json").exists():
            meta = json.loads((cache / f"{key}.json").read_text())
            if "failure" in meta:
                failures.append(meta["failure"])
            else:
                srcs.append(Table.read(cache / f"{key}.parquet"))
                metrics.append(meta)
            continue
        if calibrate.task is None:
            calibrate.load()  # (not a failure of the CCD)
        try:
            out, _ = calibrate(ref)
        except Exception as exc:  # a CCD that fails is reported, the others go on
            msg = f"exposure {exp_id} detector {det}: {type(exc).__name__}: {exc}"
            failures.append(msg)
            if cache is not None:
                (cache / f"{key}.json").write_text(json.dumps({"failure": msg}))
            continue
        src = out.src
        src["exposure_id"] = np.full(len(src), exp_id, np.int64)
        src["detector"] = np.full(len(src), det, np.int32)
        meta = {k: v for k, v in calibrate.task.metadata.items() if isinstance(v, int | float)}
        meta.update({"exposure_id": exp_id, "detector": det})
        if crs is not None and bleeds is not None:
            wcs = out.calexp.wcs
            sx, sy = wcs.all_world2pix(stars["ra"].to_numpy(), stars["dec"].to_numpy(), 0)
            sc = SkyCoord(np.asarray(src["coord_ra"]), np.asarray(src["coord_dec"]), unit="deg")
            tc = SkyCoord(stars["ra"].to_numpy(), stars["dec"].to_numpy(), unit="deg")
            idx, sep, _ = sc.match_to_catalog_sky(tc)
            snr = np.asarray(src["psfFlux"]) / np.asarray(src["psfFluxErr"])
            det_stars = np.unique(idx[(sep.arcsec < 0.5) & (snr > 20)])
            sel = (exp_id, det)
            meta.update(
                artefact_stats(
                    out.calexp,
                    cr_tracks=crs[(crs["exposure_id"] == sel[0]) & (crs["detector"] == sel[1])],
                    bleed=bleeds[(bleeds["exposure_id"] == sel[0]) & (bleeds["detector"] == sel[1])],
                    star_xy=np.column_stack([sx[det_stars], sy[det_stars]]),
                )
            )
        srcs.append(src)
        metrics.append(meta)
        if cache is not None:
            src.write(cache / f"{key}.parquet", overwrite=True)
            (cache / f"{key}.json").write_text(json.dumps(meta, default=float))
    return srcs, metrics, failures


# ---------------------------------------------------------------- evaluation


def true_psf_moments(src: Table, sim: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive moments ``ixx, iyy, ixy`` of the simulator's true PSF at each source's position.

    Drawn with `opendrp.sim.psf.moffat_stamp` (pixel-integrated) at the source's sub-pixel position and
    measured like the model's ``ixxPSF`` (`adaptive_moments`, fixed centre).
    """
    from opendrp.measurement.moments import adaptive_moments
    from opendrp.sim.config import load_sim_config
    from opendrp.sim.psf import local_psf, moffat_stamp
    from opendrp.sim.simulate import build_camera
    from opendrp.sim.survey import plan_exposures

    config = load_sim_config(sim / "sim_config.yaml")
    camera = build_camera(config)
    plans = {p.exposure_id: p for p in plan_exposures(config, camera)}
    n = len(src)
    radius = 12
    stamps = np.zeros((n, 2 * radius + 1, 2 * radius + 1))
    x0 = np.zeros(n)
    y0 = np.zeros(n)
    x, y = np.asarray(src["x"], float), np.asarray(src["y"], float)
    exp_ids, dets = np.asarray(src["exposure_id"]), np.asarray(src["detector"])
    for (e, d), rows in pd.Series(np.arange(n)).groupby([exp_ids, dets]):
        plan, det = plans[int(e)], camera.detector(int(d))
        idx = rows.to_numpy()
        fx, fy = det.pixel_to_focal_plane(x[idx], y[idx], camera.pixel_size_mm)
        fwhm, e1, e2 = local_psf(
            plan.psf, fx, fy, pixel_scale=camera.pixel_scale_arcsec, detector_rotation_deg=det.rotation_deg
        )
        for k, i in enumerate(idx):
            st, sx0, sy0 = moffat_stamp(
                1.0,
                x[i],
                y[i],
                fwhm=fwhm[k],
                beta=plan.psf.beta,
                e1=e1[k],
                e2=e2[k],
                radius=radius,
                oversampling=config.psf.oversampling,
            )
            stamps[i] = st
            x0[i], y0[i] = x[i] - (sx0 + radius), y[i] - (sy0 + radius)
    am = adaptive_moments(
        stamps, np.ones(stamps.shape, bool), x0=x0, y0=y0, sigma0=2.0, update_centroid=False
    )
    return am.ixx, am.iyy, am.ixy


def _ellipticity(ixx: Any, iyy: Any, ixy: Any) -> tuple[np.ndarray, np.ndarray]:
    ixx, iyy, ixy = (np.asarray(v, float) for v in (ixx, iyy, ixy))
    t = ixx + iyy
    return (ixx - iyy) / t, 2 * ixy / t


def evaluate(srcs: list[Table], truth: pd.DataFrame, sim: Path) -> dict[str, Any]:
    src = vstack(srcs, metadata_conflicts="silent")
    stars = truth[truth["is_star"]]
    band = str(src["band"][0])
    sc = SkyCoord(np.asarray(src["coord_ra"]), np.asarray(src["coord_dec"]), unit="deg")
    tc = SkyCoord(stars["ra"].to_numpy(), stars["dec"].to_numpy(), unit="deg")
    idx, sep, _ = sc.match_to_catalog_sky(tc)
    ok = sep.arcsec < 0.5
    flux = np.asarray(src["psfFlux"], float)
    err = np.asarray(src["psfFluxErr"], float)
    snr = flux / err
    clean = (
        ~np.asarray(src["pixelFlags_saturated"])
        & ~np.asarray(src["psfFlux_flag"])
        & ~np.asarray(src["pixelFlags_edge"])  # centre within 2 FWHM of the CCD edge: truncated profile
    )
    sel = ok & (snr > _STAR_SNR) & clean
    true_flux = stars[f"{band}_flux"].to_numpy()[idx]
    dra = (sc.ra.deg - tc.ra.deg[idx]) * np.cos(np.radians(tc.dec.deg[idx])) * 3.6e6
    ddec = (sc.dec.deg - tc.dec.deg[idx]) * 3.6e6
    # isolation: no other truth source (stars and galaxies) brighter than 1% of the star within 3"
    allc = SkyCoord(truth["ra"].to_numpy(), truth["dec"].to_numpy(), unit="deg")
    all_flux = truth[f"{band}_flux"].to_numpy()
    star_rows = np.flatnonzero(truth["is_star"].to_numpy())[idx]
    near_i, near_j, _, _ = allc.search_around_sky(allc[star_rows[sel]], 3.0 * u.arcsec)
    contaminated = np.zeros(int(sel.sum()), bool)
    other = star_rows[sel][near_i] != near_j
    contaminated[near_i[other & (all_flux[near_j] > 0.01 * true_flux[sel][near_i])]] = True
    isolated = np.zeros(len(src), bool)
    isolated[np.flatnonzero(sel)[~contaminated]] = True
    r2 = dra**2 + ddec**2
    ratio = flux[sel] / true_flux[sel]
    norm = (flux[sel] - true_flux[sel]) / err[sel]
    # PSF model ellipticity vs the true PSF at the PSF stars
    used = np.asarray(src["calib_psf_used"], bool)
    e_mod = _ellipticity(src["ixxPSF"][used], src["iyyPSF"][used], src["ixyPSF"][used])
    e_true = _ellipticity(*true_psf_moments(src[used], sim))
    de = np.concatenate([e_mod[0] - e_true[0], e_mod[1] - e_true[1]])
    e_star = _ellipticity(src["ixx"][used], src["iyy"][used], src["ixy"][used])
    return {
        "band": band,
        "n_sources": len(src),
        "n_stars_snr100": int(sel.sum()),
        "n_stars_snr100_isolated": int(isolated.sum()),
        "astrom_rms_mas": float(np.sqrt(np.mean(r2[sel]) / 2)),
        "astrom_robust_rms_mas": float(
            np.sqrt(0.5 * (_robust_std(dra[sel]) ** 2 + _robust_std(ddec[sel]) ** 2))
        ),
        "astrom_rms_isolated_mas": float(np.sqrt(np.mean(r2[isolated]) / 2)),
        "astrom_median_offset_mas": [float(np.median(dra[sel])), float(np.median(ddec[sel]))],
        "astrom_fraction_beyond_50mas": float(np.mean(np.sqrt(r2[sel]) > 50.0)),
        "psf_flux_median_offset": float(np.median(ratio) - 1),
        "psf_flux_norm_scatter_robust": _robust_std(norm - np.median(norm)),
        "psf_flux_norm_scatter_robust_isolated": _robust_std(
            ((flux - true_flux) / err)[isolated] - np.median(norm)
        ),
        "psf_ellipticity_residual_rms": float(np.sqrt(np.mean(de**2))),
        "psf_ellipticity_residual_mean": [
            float(np.mean(e_mod[0] - e_true[0])),
            float(np.mean(e_mod[1] - e_true[1])),
        ],
        "psf_star_ellipticity_residual_rms_incl_noise": float(
            np.sqrt(np.mean(np.concatenate([e_star[0] - e_mod[0], e_star[1] - e_mod[1]]) ** 2))
        ),
        "n_psf_stars": int(used.sum()),
    }


def artefact_summary(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    def total(k: str) -> int:
        return int(sum(m.get(k, 0) for m in metrics))

    if not any("cr_pixels_5sigma" in m for m in metrics):
        return {}
    n_cr = total("cr_pixels_5sigma")
    return {
        "cr_pixels_5sigma": n_cr,
        "cr_pixels_masked_fraction": total("cr_pixels_masked_any") / n_cr if n_cr else None,
        "cr_pixels_masked_cr_fraction": total("cr_pixels_masked_cr") / n_cr if n_cr else None,
        "star_centres": total("star_centres"),
        "cr_false_flag_fraction_star_centres": total("star_centres_cr_wrong") / max(total("star_centres"), 1),
        "saturated_stars": total("saturated_stars"),
        "saturated_stars_masked_fraction": total("saturated_stars_masked") / total("saturated_stars")
        if total("saturated_stars")
        else None,
        "full_well_pixels_masked_fraction": total("full_well_pixels_masked")
        / max(total("full_well_pixels"), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("sim", type=Path)
    ap.add_argument("--max-ccds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path("bench_out/validate_sfp.json"))
    ap.add_argument("--cache", type=Path, help="keep per-CCD results here and reuse them")
    args = ap.parse_args()
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    srcs, metrics, failures = process(args.repo, args.sim, args.max_ccds, args.cache)
    truth = pd.read_parquet(args.sim / "truth" / "truth.parquet")
    result: dict[str, Any] = {"n_ccds": len(srcs), "failures": failures, "targets": TARGETS}
    if srcs:
        result.update(evaluate(srcs, truth, args.sim))
        result.update(artefact_summary(metrics))
        result["per_ccd_astrom_fit_rms_mas"] = [m.get("astrom_rms_mas") for m in metrics]
        result["median_cpu_s_per_ccd"] = {
            k: float(np.median([m[k] for m in metrics if k in m])) for k in metrics[0] if k.startswith("cpu_")
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))
    return 0 if srcs else 1


if __name__ == "__main__":
    sys.exit(main())
