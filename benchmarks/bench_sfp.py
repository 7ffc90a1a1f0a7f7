"""Benchmark: one full-size CCD from raw to calexp + src, side by side with SExtractor + PSFEx + SCAMP.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_sfp.py                    # simulates a CCD, writes bench_out/sfp.json
    .venv/bin/python benchmarks/bench_sfp.py --sim OUTDIR --detector 0 --runs 5

Set-up (not timed): a simulation with full-size CCDs (made here unless ``--sim`` names one, whose raws must
include biases, flats and, optionally, darks); master bias, dark, flat and defects of the detector are built
in-process and written as FITS / parquet; the reference catalog shards are merged into one file.

Timed, as whole processes under ``/usr/bin/time -v`` (CPU = user + system, peak RSS), medians of ``--runs``:

- ``opendrp``: one Python process that reads the raw and the calibrations, runs ISR (overscan, bias, dark,
  flat, defects, variance), `calibrate_exposure` (cosmic rays, background, detection, PSF model,
  measurement, aperture corrections, astrometry, zero point) and writes the calexp, background and src.
  Interpreter start-up, imports and the interpreter's teardown at the normal end of the process are
  included.  The process calls `opendrp.image.memory.tune_memory` first, as ``CalibrateImageTask`` does,
  and freezes its import-time objects out of the garbage collector's reach, as a warm worker does.
- the peers on the same post-ISR image (written once, untimed, with the header pointing WCS):
  ``source-extractor`` (vignettes for PSFEx and the catalog for SCAMP), ``psfex`` (spatial degree 2),
  ``source-extractor`` with the PSF model (PSF fluxes), ``scamp`` (astrometry against the same reference
  catalog, distortion degree 3).  Their configurations are ``/work/shared/bench-peers``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import measure  # noqa: E402

PEERS = Path(os.environ.get("OPENDRP_BENCH_PEERS", "/work/shared/bench-peers"))

SIM_OVERRIDES: dict[str, Any] = {
    "camera": {"n_detectors": 1, "nx": 2048, "ny": 4176},
    "bands": {
        "g": {"n_visits": 0},
        "r": {"n_visits": 1},
        "i": {"n_visits": 0},
    },
    "instrument": {
        "dark_current": 0.01,
        "hot_pixel_fraction": 0.0002,
        "n_bad_columns": 3,
        "cosmic_ray_rate": 0.02,
    },
    "calibration": {"n_bias": 3, "n_flat": 3, "n_dark": 2},
}


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def simulate_ccd(outdir: Path) -> Path:
    """Simulate one full-size HSC CCD (1 visit, calibration exposures, artefacts on)."""
    import yaml

    from opendrp.sim import simulate
    from opendrp.sim.config import load_sim_config, preset_yaml

    cfg = _deep_update(yaml.safe_load(preset_yaml("small")), SIM_OVERRIDES)
    simulate(load_sim_config(cfg), outdir / "sim", progress=False)
    return outdir / "sim"


def _raws_by_type(sim: Path, detector: int) -> dict[str, list[Path]]:
    from opendrp.raw.format import read_raw_header

    out: dict[str, list[Path]] = {}
    for f in sorted((sim / "raw").rglob("*.fits")):
        h = read_raw_header(f)
        if h.detector == detector:
            out.setdefault(h.observation_type, []).append(f)
    return out


def prepare(sim: Path, detector: int, work: Path) -> dict[str, Any]:
    """Master calibrations, merged refcat and the post-ISR image for the peers (untimed)."""
    from astropy.table import Table, vstack

    from opendrp.calib import combine_bias, combine_dark, combine_flat, defects_from_calibs
    from opendrp.image.exposure import write_exposure
    from opendrp.instrument import load_camera
    from opendrp.instrument.geometry import Pointing, detector_wcs
    from opendrp.isr import run_isr
    from opendrp.raw.format import read_raw

    camera = load_camera(sim / "camera.yaml")
    det = camera.detector(detector)
    raws = _raws_by_type(sim, detector)
    science = raws["science"][0]
    sci = read_raw(science)
    band_filter = sci.header.physical_filter
    bias = combine_bias([read_raw(p) for p in raws["bias"]], det)
    dark = combine_dark([read_raw(p) for p in raws["dark"]], det, bias=bias) if raws.get("dark") else None
    flats = [read_raw(p) for p in raws["flat"]]
    flats = [r for r in flats if r.header.physical_filter == band_filter]
    flat = combine_flat(flats, det, bias=bias, dark=dark)
    defects = defects_from_calibs(dark=dark, flats=[flat])
    write_exposure(work / "bias.fits", bias)
    if dark is not None:
        write_exposure(work / "dark.fits", dark)
    write_exposure(work / "flat.fits", flat)
    defects.write(work / "defects.parquet", overwrite=True)
    shards = [Table.read(p) for p in sorted((sim / "refcat").rglob("*.parquet"))]
    refcat = vstack(shards, metadata_conflicts="silent")
    refcat.write(work / "refcat.parquet", overwrite=True)
    # post-ISR image for the peers, with the header pointing WCS (what our calibrate_exposure starts from)
    from opendrp.calib import defects_to_mask

    exp = run_isr(sci, det, bias=bias, dark=dark, flat=flat, defects=defects_to_mask(defects, det.shape))
    h = sci.header
    wcs = detector_wcs(camera, detector, Pointing(h.boresight_ra, h.boresight_dec, h.boresight_rotation))
    _write_peer_image(work / "postisr.fits", exp.image, wcs)
    _write_ref_ldac(work / "ref.ldac", refcat, band=_band_of(camera, band_filter))
    return {
        "raw": str(science),
        "camera": str(sim / "camera.yaml"),
        "detector": detector,
        "band": _band_of(camera, band_filter),
        "shape": list(det.shape),
        "has_dark": dark is not None,
        "n_defect_pixels": int(defects.meta["NPIXBAD"]),
    }


def _band_of(camera: Any, physical_filter: str) -> str:
    return str(camera.filter(physical_filter).band)


def _write_peer_image(path: Path, image: np.ndarray, wcs: Any) -> None:
    from astropy.io import fits

    hdr = wcs.to_header(relax=True)
    # SExtractor/SCAMP read TAN + SIP poorly; give them the linear TAN part (SCAMP fits the distortion)
    for key in list(hdr.keys()):
        if key[:2] in ("A_", "B_", "AP", "BP") and "_" in key:
            del hdr[key]
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["GAIN"] = 1.0
    hdr["EXPTIME"] = 1.0
    hdr["MJD-OBS"] = 60745.0
    hdr["EQUINOX"] = 2000.0
    fits.PrimaryHDU(np.asarray(image, np.float32), header=hdr).writeto(path, overwrite=True)


def _write_ref_ldac(path: Path, refcat: Any, *, band: str) -> None:
    """The reference catalog as a FITS-LDAC file SCAMP reads (ASTREF_CATALOG FILE)."""
    from astropy.io import fits

    flux = np.asarray(refcat[f"{band}_flux"], float)
    ok = flux > 0
    mag = np.where(ok, -2.5 * np.log10(np.where(ok, flux, 1.0)) + 31.4, 99.0)
    err_col = f"{band}_fluxErr"
    magerr = (
        1.0857 * np.asarray(refcat[err_col], float) / np.where(ok, flux, 1.0)
        if err_col in refcat.colnames
        else np.full(len(flux), 0.02)
    )
    perr = np.full(len(flux), 5e-3 / 3600.0)
    for name in ("coord_raErr", "coord_decErr"):
        if name in refcat.colnames:
            perr = np.maximum(perr, np.asarray(refcat[name], float))
    cols = [
        fits.Column("X_WORLD", "1D", unit="deg", array=np.asarray(refcat["coord_ra"], float)),
        fits.Column("Y_WORLD", "1D", unit="deg", array=np.asarray(refcat["coord_dec"], float)),
        fits.Column("ERRA_WORLD", "1E", unit="deg", array=perr),
        fits.Column("ERRB_WORLD", "1E", unit="deg", array=perr),
        fits.Column("ERRTHETA_WORLD", "1E", unit="deg", array=np.zeros(len(flux))),
        fits.Column("MAG", "1E", unit="mag", array=mag),
        fits.Column("MAGERR", "1E", unit="mag", array=magerr),
        fits.Column("OBSDATE", "1D", unit="yr", array=np.full(len(flux), 2016.0)),
    ]
    hdr_str = fits.Header({"NAXIS": 0}).tostring()
    imhead = fits.BinTableHDU.from_columns(
        [fits.Column("Field Header Card", f"{len(hdr_str)}A", array=np.array([hdr_str]))], name="LDAC_IMHEAD"
    )
    objects = fits.BinTableHDU.from_columns(cols, name="LDAC_OBJECTS")
    fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(path, overwrite=True)


WORKER = r"""
import json, os, sys, time
t0 = time.process_time()
from pathlib import Path
import numpy as np
from astropy.io import fits
from astropy.table import Table
from opendrp.calib import defects_to_mask
from opendrp.image.exposure import read_exposure, write_exposure
from opendrp.instrument import load_camera
from opendrp.instrument.geometry import Pointing, detector_wcs
from opendrp.isr import run_isr
from opendrp.raw.format import read_raw
from opendrp.sfp import calibrate_exposure
from opendrp.image.memory import tune_memory
tune_memory()  # as CalibrateImageTask.runQuantum does
import gc
gc.collect(); gc.freeze()  # as a warm worker does once its imports are done (execution._worker._warm_up)
t_import = time.process_time() - t0
info = json.loads(sys.argv[1]); work = Path(sys.argv[2])
t0 = time.process_time()
camera = load_camera(info["camera"]); det = camera.detector(info["detector"])
raw = read_raw(info["raw"])
from opendrp.image import Exposure, mask_bit
def light(path, variance=False):  # image and mask (and the flat's variance), as calibrateImage reads them
    if not path.exists():
        return None
    image = read_exposure(path, "image")
    var = read_exposure(path, "variance") if variance else np.broadcast_to(np.float32(0), image.shape)
    return Exposure(image, (read_exposure(path, "mask") & mask_bit("BAD")).astype(np.uint8), var)
bias, dark = light(work / "bias.fits"), light(work / "dark.fits")
flat = light(work / "flat.fits", variance=True)
defects = defects_to_mask(Table.read(work / "defects.parquet"), det.shape)
refcat = Table.read(work / "refcat.parquet")
t_read = time.process_time() - t0
t0 = time.process_time()
exp = run_isr(raw, det, bias=bias, dark=dark, flat=flat, defects=defects)
h = raw.header
pointing = Pointing(h.boresight_ra, h.boresight_dec, h.boresight_rotation)
exp.wcs = detector_wcs(camera, info["detector"], pointing)
exp.metadata.update({"VISIT": int(h.exposure_id), "DETECTOR": info["detector"], "BAND": info["band"]})
del raw, bias, dark, flat, defects  # as the task does: calibrations freed before calibration
t_isr = time.process_time() - t0
t0 = time.process_time()
res = calibrate_exposure(exp, refcat, band=info["band"])
t_cal = time.process_time() - t0
t0 = time.process_time()
write_exposure(work / "calexp.fits", res.calexp)
bkg = fits.HDUList([fits.PrimaryHDU(), res.background.to_hdu("BACKGROUND")])
bkg.writeto(work / "bkg.fits", overwrite=True)
res.src.write(work / "src.parquet", overwrite=True)
t_write = time.process_time() - t0
m = {k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}
print("RESULT " + json.dumps({"cpu_import_s": t_import, "cpu_read_s": t_read, "cpu_isr_s": t_isr,
      "cpu_calibrate_s": t_cal, "cpu_write_s": t_write, "metrics": m}))
# the process ends normally: the interpreter's teardown is part of the figure
"""


def run_opendrp(info: dict[str, Any], work: Path) -> dict[str, Any]:
    fig = measure([sys.executable, "-c", WORKER, json.dumps(info), str(work)])
    for line in fig.get("stdout_tail", "").splitlines():
        if line.startswith("RESULT "):
            fig.update(json.loads(line[7:]))
    if fig["returncode"] != 0:
        print(fig["stderr_tail"], file=sys.stderr)
    return fig


def _sex_params(work: Path) -> Path:
    names = (PEERS / "sex_psfexprep.param").read_text().split()
    for extra in ("ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "FLUXERR_AUTO"):
        if extra not in names:
            names.append(extra)
    path = work / "sex_prep_scamp.param"
    path.write_text("\n".join(names) + "\n")
    return path


def run_peers(work: Path) -> dict[str, Any]:
    """SExtractor (vignettes + SCAMP columns) -> PSFEx -> SExtractor PSF photometry -> SCAMP."""
    peer = work / "peers"
    peer.mkdir(exist_ok=True)
    common = ["-FILTER_NAME", str(PEERS / "default.conv"), "-STARNNW_NAME", str(PEERS / "default.nnw")]
    common += ["-VERBOSE_TYPE", "QUIET"]
    img = str(work / "postisr.fits")
    prep = str(peer / "prep.ldac")
    steps = {
        "sextractor_prep": [
            "source-extractor", img, "-c", str(PEERS / "sex_typical.sex"), "-CATALOG_NAME", prep,
            "-PARAMETERS_NAME", str(_sex_params(work)), *common,
        ],
        "psfex": [
            "psfex", prep, "-c", str(PEERS / "psfex.psfex"), "-PSF_DIR", str(peer), "-WRITE_XML", "N",
            "-VERBOSE_TYPE", "QUIET",
        ],
        "sextractor_psf": [
            "source-extractor", img, "-c", str(PEERS / "sex_typical.sex"), "-CATALOG_NAME",
            str(peer / "psf.ldac"), "-PARAMETERS_NAME", str(PEERS / "sex_psffit.param"),
            "-PSF_NAME", str(peer / "prep.psf"), *common,
        ],
        "scamp": [
            "scamp", prep, "-c", str(PEERS / "scamp.scamp"), "-ASTREFCAT_NAME", str(work / "ref.ldac"),
            "-WRITE_XML", "N", "-VERBOSE_TYPE", "QUIET", "-SOLVE_PHOTOM", "N",
        ],
    }  # fmt: skip
    out: dict[str, Any] = {}
    for name, cmd in steps.items():
        if shutil.which(cmd[0]) is None:
            out[name] = {"error": f"{cmd[0]} not installed (apt-get install source-extractor psfex scamp)"}
            continue
        fig = measure(cmd, cwd=str(peer))
        out[name] = fig
        if fig["returncode"] != 0:
            print(f"{name} failed: {fig['stderr_tail'][-500:]}", file=sys.stderr)
    out["n_sextractor_sources"] = _ldac_rows(Path(prep))
    out["scamp_head"] = (peer / "prep.head").read_text()[-800:] if (peer / "prep.head").exists() else ""
    return out


def _ldac_rows(path: Path) -> int:
    from astropy.io import fits

    if not path.exists():
        return 0
    with fits.open(path) as hdul:
        return int(hdul["LDAC_OBJECTS"].header["NAXIS2"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", type=Path, help="simulation directory with full-size CCDs (default: simulate)")
    ap.add_argument(
        "--detector", type=int, default=None, help="detector id (default: the first science raw's)"
    )
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each side (medians reported)")
    ap.add_argument("--out", type=Path, default=Path("bench_out/sfp.json"))
    ap.add_argument("--keep", type=Path, help="keep the working directory here")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench_sfp_")
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    t = time.time()
    sim = args.sim or simulate_ccd(work)
    detector = args.detector
    if detector is None:
        from opendrp.raw.format import read_raw_header

        first = sorted((sim / "raw").rglob("*.fits"))
        detector = next(h.detector for h in map(read_raw_header, first) if h.observation_type == "science")
    info = prepare(sim, detector, work)
    print(f"set-up {time.time() - t:.0f} s: {info}", flush=True)
    ours, peers = [], []
    for k in range(args.runs):  # interleaved, so both sides see the same machine load
        ours.append(run_opendrp(info, work))
        peers.append(run_peers(work))
        steps = [
            f"{n} {p.get('cpu_s', float('nan')):.2f}" for n, p in peers[-1].items() if isinstance(p, dict)
        ]
        cpu, rss = ours[-1].get("cpu_s", float("nan")), ours[-1].get("max_rss_mb", float("nan"))
        print(f"run {k}: opendrp {cpu:.2f} CPU-s {rss:.0f} MB; peers " + ", ".join(steps))

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        return statistics.median(vals) if vals else None

    peer_steps = ("sextractor_prep", "psfex", "sextractor_psf", "scamp")
    peer_cpu = {s: med([p[s] for p in peers if isinstance(p.get(s), dict)], "cpu_s") for s in peer_steps}
    peer_rss = {s: med([p[s] for p in peers if isinstance(p.get(s), dict)], "max_rss_mb") for s in peer_steps}
    chain = sum(v for v in peer_cpu.values() if v is not None) if all(peer_cpu.values()) else None
    our_cpu = med(ours, "cpu_s")
    result = {
        "benchmark": "sfp",
        "load_average_1min_at_end": os.getloadavg()[0],
        "input": info,
        "runs": args.runs,
        "opendrp": {
            "median_cpu_s": our_cpu,
            "median_wall_s": med(ours, "wall_s"),
            "median_max_rss_mb": med(ours, "max_rss_mb"),
            "median_cpu_by_stage_s": {
                k: med(ours, k)
                for k in ("cpu_import_s", "cpu_read_s", "cpu_isr_s", "cpu_calibrate_s", "cpu_write_s")
            },
            "metrics_last_run": ours[-1].get("metrics", {}),
            "calibrate_cpu_by_step_s": {
                k: v for k, v in ours[-1].get("metrics", {}).items() if k.startswith("cpu_")
            },
        },
        "peers": {
            "median_cpu_s": peer_cpu,
            "median_max_rss_mb": peer_rss,
            "chain_cpu_s": chain,
            "n_sextractor_sources": peers[-1].get("n_sextractor_sources"),
            "scamp_head_tail": peers[-1].get("scamp_head", ""),
        },
        "ratio_peers_over_opendrp": (chain / our_cpu) if chain and our_cpu else None,
        "targets": {
            "cpu_s_max": 4.0,
            "rss_mb_max": 700.0,
            "cpu_ok": our_cpu is not None and our_cpu <= 4.0,
            "rss_ok": (med(ours, "max_rss_mb") or 1e9) <= 700.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float))
    print(
        json.dumps({k: result[k] for k in ("opendrp", "ratio_peers_over_opendrp", "targets")}, default=float)[
            :1500
        ]
    )
    print(f"peers: {peer_cpu} chain {chain}")
    print(f"wrote {args.out}")
    return 0 if all(r.get("returncode") == 0 for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
