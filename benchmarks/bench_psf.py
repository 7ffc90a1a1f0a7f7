"""Benchmark: our pixel-basis PSF (`opendrp.psf.fit_psf`, PSFEx-like) against Piff's ``PixelGrid``.

Run on demand (needs the ``bench`` extra: ``pip install -e .[bench]`` for Piff), on a repository with built
calibrations of a simulation with a truth directory (the ``rc`` preset or a cut with full-size CCDs)::

    .venv/bin/python benchmarks/bench_psf.py REPO SIMDIR [--max-ccds 6] [--stride 2]
        [--out bench_out/psf.json] [--cache DIR]

Each selected science raw is processed by ``CalibrateImageTask`` (ISR, characterization, calibration: the
calexp and its ``src``; kept in ``--cache``).  On every calexp both PSF models are fitted to the same stars
(the pipeline's PSF candidates, ``calib_psf_candidate``), the same stamps (25 x 25 pixels) and the same
spatial polynomial (degree 2), without the detection segmentation (not persisted):

- ours: `opendrp.psf.fit.fit_psf` (pixel basis re-centred by cubic-spline interpolation, per-pixel polynomial,
  pixel and star clipping);
- Piff 1.7: ``SimplePSF(PixelGrid(scale=1, size=25), BasisPolynomial(order=2))`` on ``piff.Star`` targets cut
  from the calexp (weights ``1 / variance``, masked pixels zero), pixel coordinates as ``u, v``.

Reported per model (median over CCDs for CPU, pooled over stars otherwise):

- ``fit_cpu_s``: CPU seconds of the fit per CCD (`time.process_time`, this process only);
- ``e_residual_rms`` / ``e_residual_mean``: the model's adaptive-moment ellipticity at the PSF stars minus
  that of the simulator's true PSF there (drawn and measured as in ``validate_sfp.py``), rms of both
  components;
- ``size_residual_mean`` / ``size_residual_rms``: ``T_model / T_true - 1`` with ``T = Ixx + Iyy``;
- ``psf_flux_*``: PSF fluxes (`opendrp.measurement.psf_flux`, the same code for both models) of the matched,
  unsaturated stars with S/N > 100 against their true fluxes: ``psfFlux / true`` is divided by its median on
  each CCD (this removes the zero point and the aperture correction, common to both models), then its robust
  rms (fraction) and the robust rms of ``(ratio - 1) / (psfFluxErr / psfFlux)`` (normalised scatter) are
  reported; the PSF-model error is what makes these differ between models.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from opendrp.image import mask_bit  # noqa: E402
from opendrp.measurement.moments import adaptive_moments  # noqa: E402
from opendrp.measurement.psf_flux import psf_flux, psf_stamps  # noqa: E402
from opendrp.measurement.stamps import gather_stamps  # noqa: E402
from opendrp.psf.fit import fit_psf  # noqa: E402
from validate_sfp import CcdCalibrator, _ellipticity, _robust_std, true_psf_moments  # noqa: E402

_SIZE = 25
_DEGREE = 2
_BAD = ("BAD", "SAT", "NO_DATA", "CR")


# ---------------------------------------------------------------- calexps


def calexps(repo: str, max_ccds: int, stride: int, cache: Path) -> list[Path]:
    """Process every ``stride``-th science raw; keep the calexp arrays and src in ``cache``."""
    from opendrp.repo.butler import defaults_chain, open_butler

    butler = open_butler(repo)
    inst = "HSC"
    raws = butler.query_datasets(
        "raw",
        collections=defaults_chain(inst),
        where="exposure.observation_type = 'science'",
        explain=False,
        limit=None,
    )
    raws = sorted(raws, key=lambda r: (int(r.dataId["exposure"]), int(r.dataId["detector"])))
    raws = raws[::stride][:max_ccds]
    out: list[Path] = []
    calibrate = CcdCalibrator(butler, inst)
    for ref in raws:
        exp_id, det = int(ref.dataId["exposure"]), int(ref.dataId["detector"])
        path = cache / f"{exp_id}_{det}.pkl"
        out.append(path)
        if path.exists():
            continue
        res, band = calibrate(ref)
        c = res.calexp
        src = res.src
        src["exposure_id"] = np.full(len(src), exp_id, np.int64)
        src["detector"] = np.full(len(src), det, np.int32)
        with open(path, "wb") as fh:
            pickle.dump(
                {
                    "image": np.asarray(c.image, np.float32),
                    "variance": np.asarray(c.variance, np.float32),
                    "mask": np.asarray(c.mask),
                    "wcs": c.wcs,
                    "photo_calib": c.photo_calib,
                    "src": src,
                    "band": band,
                },
                fh,
            )
        print(f"processed {exp_id} {det}", flush=True)
    return out


# ---------------------------------------------------------------- the two fitters


def fit_ours(image: np.ndarray, variance: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> Any:
    ny, nx = image.shape
    res = fit_psf(
        image,
        variance,
        mask,
        x,
        y,
        size=_SIZE,
        degree=_DEGREE,
        x_range=(0.0, float(nx - 1)),
        y_range=(0.0, float(ny - 1)),
    )
    return res.psf


class PiffStamps:
    """A fitted Piff PSF drawn as unit-sum stamps laid out as `psf_stamps` does (`PsfModel.image_at`)."""

    def __init__(self, psf: Any) -> None:
        self.psf = psf

    def stamps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import galsim

        half = _SIZE // 2
        out = np.empty((len(x), _SIZE, _SIZE))
        ix = np.floor(np.asarray(x) + 0.5).astype(np.int64)
        iy = np.floor(np.asarray(y) + 0.5).astype(np.int64)
        for k in range(len(x)):
            b = galsim.BoundsI(ix[k] - half + 1, ix[k] + half + 1, iy[k] - half + 1, iy[k] + half + 1)
            xg, yg = float(x[k]) + 1.0, float(y[k]) + 1.0
            img = self.psf.draw(
                x=xg, y=yg, image=galsim.ImageD(b, wcs=galsim.PixelScale(1.0)), center=(xg, yg)
            )
            a = img.array
            out[k] = a / a.sum()
        return out, ix, iy


def fit_piff(image: np.ndarray, variance: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> Any:
    """Piff ``PixelGrid`` + ``BasisPolynomial`` on the same stars and stamps (pixel coordinates as u, v)."""
    import logging

    import galsim
    import piff

    half = _SIZE // 2
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    data, inside = gather_stamps(image, ix, iy, half, fill=0.0)
    var, _ = gather_stamps(variance, ix, iy, half, fill=0.0)
    bad, _ = gather_stamps((mask & mask_bit(*_BAD)) != 0, ix, iy, half, fill=True)
    ok = inside & ~bad & np.isfinite(data) & (var > 0)
    wcs = galsim.PixelScale(1.0)
    stars = []
    for k in range(len(x)):
        x0, y0 = int(ix[k] - half + 1), int(iy[k] - half + 1)  # GalSim pixels are 1-based
        im = galsim.ImageD(np.where(ok[k], data[k], 0.0).astype(np.float64), xmin=x0, ymin=y0, wcs=wcs)
        wt = galsim.ImageD(
            np.where(ok[k], 1.0 / np.where(ok[k], var[k], 1.0), 0.0), xmin=x0, ymin=y0, wcs=wcs
        )
        stars.append(
            piff.Star.makeTarget(x=float(x[k]) + 1.0, y=float(y[k]) + 1.0, image=im, weight=wt, wcs=wcs)
        )
    psf = piff.SimplePSF(
        piff.PixelGrid(scale=1.0, size=_SIZE),
        piff.BasisPolynomial(order=_DEGREE),
        outliers=[piff.ChisqOutliers(nsigma=4.0)],
    )
    logger = logging.getLogger("piff-bench")
    logger.setLevel(logging.WARNING)
    psf.set_context({0: wcs}, {0: None})
    psf.fit(stars, logger=logger)
    return PiffStamps(psf)


# ---------------------------------------------------------------- evaluation


def model_stamps(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return model.stamps(x, y) if isinstance(model, PiffStamps) else psf_stamps(model, x, y)


def evaluate_ccd(d: dict[str, Any], model: Any, stars: pd.DataFrame, sim: Path) -> dict[str, np.ndarray]:
    src: Table = d["src"]
    image, variance, mask = d["image"], d["variance"], d["mask"]
    # PSF moments at the PSF candidates vs the true PSF there
    cand = np.flatnonzero(np.asarray(src["calib_psf_candidate"], bool))
    x, y = np.asarray(src["x"], float)[cand], np.asarray(src["y"], float)[cand]
    st, pix, piy = model_stamps(model, x, y)
    am = adaptive_moments(
        st, np.ones_like(st, bool), x0=x - pix, y0=y - piy, sigma0=2.0, update_centroid=False
    )
    t_ixx, t_iyy, t_ixy = true_psf_moments(src[cand], sim)
    e_mod, e_true = _ellipticity(am.ixx, am.iyy, am.ixy), _ellipticity(t_ixx, t_iyy, t_ixy)
    size = (am.ixx + am.iyy) / (t_ixx + t_iyy) - 1.0
    # PSF fluxes of the S/N > 100 stars vs the truth (ratio normalised by its median on this CCD)
    sc = SkyCoord(np.asarray(src["coord_ra"]), np.asarray(src["coord_dec"]), unit="deg")
    tc = SkyCoord(stars["ra"].to_numpy(), stars["dec"].to_numpy(), unit="deg")
    idx, sep, _ = sc.match_to_catalog_sky(tc)
    snr = np.asarray(src["psfFlux"]) / np.asarray(src["psfFluxErr"])
    sel = np.flatnonzero(
        (sep.arcsec < 0.5)
        & (snr > 100)
        & ~np.asarray(src["pixelFlags_saturated"])
        & ~np.asarray(src["pixelFlags_edge"])
        & ~np.asarray(src["psfFlux_flag"])
    )
    sx, sy = np.asarray(src["x"], float)[sel], np.asarray(src["y"], float)[sel]
    fst, fix, fiy = model_stamps(model, sx, sy)
    bad = (mask & mask_bit(*_BAD)) != 0
    pf = psf_flux(image, variance, bad, fst, fix, fiy)
    true = stars[f"{d['band']}_flux"].to_numpy()[idx[sel]]
    ratio = pf.flux * d["photo_calib"].calibration_at(sx, sy) / true
    ratio /= np.nanmedian(ratio)
    return {
        "de1": e_mod[0] - e_true[0],
        "de2": e_mod[1] - e_true[1],
        "size": size,
        "flux_ratio": ratio,
        "flux_norm": (ratio - 1.0) / (pf.flux_err / pf.flux),
    }


def summarize(per_ccd: list[dict[str, np.ndarray]], cpu: list[float]) -> dict[str, Any]:
    cat = {k: np.concatenate([p[k] for p in per_ccd]) for k in per_ccd[0]}
    de = np.concatenate([cat["de1"], cat["de2"]])
    return {
        "fit_cpu_s_median": float(np.median(cpu)),
        "fit_cpu_s": [float(c) for c in cpu],
        "n_psf_stars": int(cat["de1"].size),
        "e_residual_rms": float(np.sqrt(np.nanmean(de**2))),
        "e_residual_mean": [float(np.nanmean(cat["de1"])), float(np.nanmean(cat["de2"]))],
        "size_residual_mean": float(np.nanmean(cat["size"])),
        "size_residual_rms": float(np.sqrt(np.nanmean(cat["size"] ** 2))),
        "n_flux_stars": int(cat["flux_ratio"].size),
        "psf_flux_ratio_robust_rms": _robust_std(cat["flux_ratio"]),
        "psf_flux_norm_scatter_robust": _robust_std(cat["flux_norm"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo")
    ap.add_argument("sim", type=Path)
    ap.add_argument("--max-ccds", type=int, default=6)
    ap.add_argument("--stride", type=int, default=2, help="take every n-th science raw (spread over visits)")
    ap.add_argument("--out", type=Path, default=Path("bench_out/psf.json"))
    ap.add_argument("--cache", type=Path, default=Path("bench_out/psf_cache"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    paths = calexps(args.repo, args.max_ccds, args.stride, args.cache)
    truth = pd.read_parquet(args.sim / "truth" / "truth.parquet")
    stars = truth[truth["is_star"]]
    fitters = {"pixel_psf": fit_ours, "piff_pixelgrid": fit_piff}
    per: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in fitters}
    cpu: dict[str, list[float]] = {k: [] for k in fitters}
    ccds = []
    for path in paths:
        with open(path, "rb") as fh:
            d = pickle.load(fh)
        src = d["src"]
        cand = np.asarray(src["calib_psf_candidate"], bool)
        x, y = np.asarray(src["x"], float)[cand], np.asarray(src["y"], float)[cand]
        ccds.append(path.stem)
        for name, fitter in fitters.items():
            t0 = time.process_time()
            model = fitter(d["image"], d["variance"], d["mask"], x, y)
            cpu[name].append(time.process_time() - t0)
            per[name].append(evaluate_ccd(d, model, stars, args.sim))
            print(f"{path.stem} {name}: fit {cpu[name][-1]:.2f} CPU-s", flush=True)
    result: dict[str, Any] = {
        "ccds": ccds,
        "stamp_size": _SIZE,
        "spatial_degree": _DEGREE,
        "models": {name: summarize(per[name], cpu[name]) for name in fitters},
    }
    try:
        import piff

        result["piff_version"] = piff.__version__
    except ImportError:  # pragma: no cover
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
