"""Validation: single-frame processing accuracy against the simulation truth (issue #4 targets).

Run on demand (not a test), on a repository with built calibrations (``opendrp run REPO --steps calibs``)::

    .venv/bin/python benchmarks/validate_sfp.py REPO SIMDIR [--max-ccds 9] [--out bench_out/validate_sfp.json]

Each science raw (up to ``--max-ccds``) is processed in-process by ``CalibrateImageTask`` with the certified
calibrations, and its ``src`` matched (0.5") to the truth stars.  Reported for stars with S/N > 100:
astrometric residual rms (mas), median PSF-flux offset (psfFlux / true - 1) and the normalised scatter
(robust rms of residual / error), PSF model ellipticity residual rms (star adaptive moments vs the model's),
the fraction of star centres wrongly flagged as cosmic rays, and the fraction of stars whose expected peak
exceeds the saturation level that have ``pixelFlags_saturatedCenter``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

TARGETS = {
    "astrom_rms_mas": 10.0,
    "psf_flux_median_offset_abs": 0.005,
    "psf_flux_norm_scatter_range": (0.8, 1.3),
    "psf_ellipticity_residual_rms": 0.005,
    "cr_false_flag_fraction": 0.001,
}


def _robust_std(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else float("nan")


def process(repo: str, max_ccds: int) -> tuple[list[Table], list[dict[str, Any]], list[str]]:
    from opendrp.repo.butler import calib_collection, defaults_chain, open_butler
    from opendrp.tasks.sfp import CalibrateImageTask, CalibrateImageTaskConfig

    butler = open_butler(repo)
    inst = "HSC"
    calib = calib_collection(inst)
    raws = list(
        butler.query_datasets(
            "raw",
            collections=defaults_chain(inst),
            where="exposure.observation_type = 'science'",
            explain=False,
            limit=None,
        )
    )[:max_ccds]
    camera = butler.get("camera", instrument=inst, collections=defaults_chain(inst))
    refs = butler.query_datasets("ref_cat", collections=defaults_chain(inst), explain=False, limit=None)
    refcat = vstack([butler.get(r) for r in refs], metadata_conflicts="silent")
    config = CalibrateImageTaskConfig()
    task = CalibrateImageTask(config=config)
    srcs, metrics, failures = [], [], []
    for ref in raws:
        did = ref.dataId
        det = int(did["detector"])
        raw = butler.get(ref)
        rec = butler.registry.expandDataId(did).records["exposure"]
        band = camera.filter(str(rec.physical_filter)).band

        def calib_get(name: str, det: int = det, **extra: Any) -> Any:
            try:
                return butler.get(name, instrument=inst, detector=det, collections=calib, **extra)
            except Exception:
                return None

        try:
            out = task.run(
                raws=[raw],
                camera=camera,
                detector=det,
                band=band,
                refcat=refcat,
                bias=calib_get("bias"),
                dark=calib_get("dark"),
                flat=calib_get("flat", physical_filter=str(rec.physical_filter)),
                defects=calib_get("defects"),
                visit=int(did["exposure"]),
            )
        except Exception as exc:  # a CCD that fails is reported, the others go on
            failures.append(f"exposure {did['exposure']} detector {det}: {type(exc).__name__}: {exc}")
            continue
        src = out.src
        src["psf_sigma"] = float(out.calexp.metadata.get("PSF_FWHM", np.nan))
        srcs.append(src)
        metrics.append({k: v for k, v in task.metadata.items() if isinstance(v, int | float)})
    return srcs, metrics, failures


def evaluate(srcs: list[Table], truth: pd.DataFrame) -> dict[str, Any]:
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
    clean = ~np.asarray(src["pixelFlags_saturatedCenter"]) & ~np.asarray(src["psfFlux_flag"])
    sel = ok & (snr > 100) & clean
    true_flux = stars[f"{band}_flux"].to_numpy()[idx]
    dra = (sc.ra.deg - tc.ra.deg[idx]) * np.cos(np.radians(tc.dec.deg[idx])) * 3.6e6
    ddec = (sc.dec.deg - tc.dec.deg[idx]) * 3.6e6
    astrom = float(np.sqrt(np.mean(dra[sel] ** 2 + ddec[sel] ** 2) / 2))
    ratio = flux[sel] / true_flux[sel]
    norm = (flux[sel] - true_flux[sel]) / err[sel]
    e_star = _ellipticity(src["ixx"], src["iyy"], src["ixy"])
    e_psf = _ellipticity(src["ixxPSF"], src["iyyPSF"], src["ixyPSF"])
    used = np.asarray(src["calib_psf_used"], bool)
    de = (e_star[0] - e_psf[0])[used], (e_star[1] - e_psf[1])[used]
    cr_flag = np.asarray(src["pixelFlags_cr"], bool)
    star_src = ok & (snr > 20)
    return {
        "band": band,
        "n_sources": len(src),
        "n_stars_snr100": int(sel.sum()),
        "astrom_rms_mas": astrom,
        "psf_flux_median_offset": float(np.median(ratio) - 1),
        "psf_flux_norm_scatter_robust": _robust_std(norm - np.median(norm)),
        "psf_ellipticity_residual_rms": float(np.sqrt(np.mean(np.concatenate(de) ** 2))),
        "n_psf_stars": int(used.sum()),
        "cr_false_flag_fraction_star_centres": float(cr_flag[star_src].mean()) if star_src.any() else None,
    }


def _ellipticity(ixx: Any, iyy: Any, ixy: Any) -> tuple[np.ndarray, np.ndarray]:
    ixx, iyy, ixy = (np.asarray(v, float) for v in (ixx, iyy, ixy))
    t = ixx + iyy
    return (ixx - iyy) / t, 2 * ixy / t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("sim", type=Path)
    ap.add_argument("--max-ccds", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path("bench_out/validate_sfp.json"))
    args = ap.parse_args()
    srcs, metrics, failures = process(args.repo, args.max_ccds)
    truth = pd.read_parquet(args.sim / "truth" / "truth.parquet")
    result: dict[str, Any] = {"n_ccds": len(srcs), "failures": failures, "targets": TARGETS}
    if srcs:
        result.update(evaluate(srcs, truth))
        result["per_ccd_astrom_rms_mas"] = [m.get("astrom_rms_mas") for m in metrics]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))
    return 0 if srcs else 1


if __name__ == "__main__":
    sys.exit(main())
