"""Benchmark: warp 10 synthetic 2048 x 4176 calexps onto a 4000 x 4000 patch and coadd them.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_coadd.py                      # lanczos3, writes bench_out/coadd.json
    .venv/bin/python benchmarks/bench_coadd.py --interpolation all  # one subprocess per kernel
    .venv/bin/python benchmarks/bench_coadd.py --patch 1000 --visits 4 --ccd 512 1044   # quick

The flow is the pipeline's: each calexp is made (not timed), warped into a compact warp (its data box only,
``full_size=False``) and written to a temporary directory (.npy); then `assemble_coadd` streams the warps
from disk, twice (reference pass and clipped pass), holding one warp at a time.  CPU time is
`time.process_time` around the warping and the coadd (I/O of the warps included); peak memory is the
process's ``ru_maxrss``, which also includes the (untimed) calexp generation, one calexp at a time
(~0.1 GB).  Anchors (docs/ANCHORS.md): SWarp 26 CPU-s and 1.0 GB; numpy map_coordinates on a 32-px
WCS grid 7.4 s (bilinear) / 15.7 s (cubic).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.wcs import WCS, Sip

from opendrp.coadd import INTERPOLATIONS, assemble_coadd, warp_bbox, warp_exposure
from opendrp.image.exposure import Exposure
from opendrp.image.photo_calib import PhotoCalib
from opendrp.psf import CoaddPsf, PixelPsf

SCALE_DEG = 0.168 / 3600.0
RA0, DEC0 = 150.0, 2.0


def patch_wcs(size: int) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA0, DEC0]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    wcs.wcs.cd = [[-SCALE_DEG, 0.0], [0.0, SCALE_DEG]]
    wcs.wcs.set()
    return wcs


def calexp_wcs(shape: tuple[int, int], rot_deg: float, offset: tuple[float, float]) -> WCS:
    """TAN-SIP with HSC-like distortion (pixel-scale gradient ~1e-5 per px, as ~10000 px off-axis)."""
    ny, nx = shape
    t = np.radians(rot_deg)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [RA0 - offset[0] * SCALE_DEG / np.cos(np.radians(DEC0)), DEC0 + offset[1] * SCALE_DEG]
    wcs.wcs.crpix = [nx / 2 + 0.5, ny / 2 + 0.5]
    wcs.wcs.cd = SCALE_DEG * np.array([[-np.cos(t), -np.sin(t)], [-np.sin(t), np.cos(t)]])
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[1, 1], a[0, 2], a[3, 0], a[1, 2] = 3e-6, 2e-6, 1e-6, 1.3e-10, 1.3e-10
    b[0, 2], b[1, 1], b[2, 0], b[0, 3], b[2, 1] = 3e-6, 2e-6, 1e-6, 1.3e-10, 1.3e-10
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def make_calexp(shape: tuple[int, int], visit: int, patch: int, rng: np.random.Generator) -> Exposure:
    ny, nx = shape
    offset = (rng.uniform(-0.25, 0.25) * patch, rng.uniform(-0.08, 0.08) * patch)
    wcs = calexp_wcs(shape, rng.uniform(-2.0, 2.0), offset)
    sky_sigma = 8.0
    image = rng.normal(0.0, sky_sigma, shape).astype(np.float32)
    sigma = rng.uniform(1.5, 2.2)
    yy, xx = np.mgrid[-10:11, -10:11].astype(np.float32)
    for x, y, f in zip(
        rng.uniform(10, nx - 11, 1500), rng.uniform(10, ny - 11, 1500), rng.lognormal(8, 1.5, 1500)
    ):
        ix, iy = int(x), int(y)
        stamp = np.exp(-0.5 * ((xx - (x - ix)) ** 2 + (yy - (y - iy)) ** 2) / sigma**2)
        image[iy - 10 : iy + 11, ix - 10 : ix + 11] += f / (2 * np.pi * sigma**2) * stamp
    for _ in range(200):  # cosmic rays
        ix, iy = rng.integers(2, nx - 2), rng.integers(2, ny - 2)
        image[iy, ix] += rng.uniform(200, 2000)
    variance = np.full(shape, sky_sigma**2, np.float32)
    psf = PixelPsf.gaussian(sigma, size=25, x_range=(0, nx - 1), y_range=(0, ny - 1))
    return Exposure(
        image,
        np.zeros(shape, np.int32),
        variance,
        wcs=wcs,
        psf=psf,
        photo_calib=PhotoCalib(rng.uniform(0.04, 0.06)),
        metadata={"visit": visit, "detector": 0, "band": "i", "exposure_time": 200.0},
    )


class WarpStore:
    """A lazy sequence of compact warps kept on disk (.npy, data box only), read back on access."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.entries: list[tuple[Path, WCS, dict, CoaddPsf | None]] = []

    def append(self, warp: Exposure) -> None:
        path = self.directory / f"warp{len(self.entries)}"
        for name in ("image", "mask", "variance"):
            np.save(path.with_suffix(f".{name}.npy"), getattr(warp, name))
        psf = warp.psf if isinstance(warp.psf, CoaddPsf) else None
        self.entries.append((path, warp.wcs, dict(warp.metadata), psf))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, k: int) -> Exposure:
        path, wcs, metadata, psf = self.entries[k]
        arrays = {name: np.load(path.with_suffix(f".{name}.npy")) for name in ("image", "mask", "variance")}
        return Exposure(**arrays, wcs=wcs, psf=psf, photo_calib=PhotoCalib(1.0), metadata=metadata)


def run(
    interpolation: str,
    n_visits: int,
    patch: int,
    ccd: tuple[int, int],
    seed: int,
    exact_variance: bool = True,
) -> dict:
    rng = np.random.default_rng(seed)
    wcs = patch_wcs(patch)
    shape = (patch, patch)
    warp_cpu = write_cpu = 0.0
    warped_pixels = 0
    t_wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_coadd_") as tmp:
        store = WarpStore(Path(tmp))
        for visit in range(n_visits):
            calexp = make_calexp((ccd[1], ccd[0]), visit, patch, rng)
            t0 = time.process_time()
            warp = warp_exposure(
                calexp,
                wcs,
                shape,
                interpolation=interpolation,
                exact_variance=exact_variance,
                full_size=False,
            )
            t1 = time.process_time()
            warp_cpu += t1 - t0
            if warp is not None:
                bbox = warp_bbox(warp)
                warped_pixels += bbox.width * bbox.height
                store.append(warp)
            write_cpu += time.process_time() - t1
            del calexp, warp
        t0 = time.process_time()
        coadd = assemble_coadd(store, shape=shape, wcs=wcs)
        coadd_cpu = time.process_time() - t0
    wall = time.perf_counter() - t_wall
    good = np.isfinite(coadd.variance)
    return {
        "interpolation": interpolation,
        "exact_variance": exact_variance,
        "n_visits": n_visits,
        "patch_pixels": [patch, patch],
        "calexp_pixels": [ccd[1], ccd[0]],
        "n_warps": len(store),
        "warped_pixels": int(warped_pixels),
        "cpu_warp_s": round(warp_cpu, 3),
        "cpu_warp_ns_per_pixel": round(1e9 * warp_cpu / max(warped_pixels, 1), 1),
        "cpu_warp_write_s": round(write_cpu, 3),
        "cpu_coadd_s": round(coadd_cpu, 3),
        "cpu_total_s": round(warp_cpu + write_cpu + coadd_cpu, 3),
        "wall_s_incl_generation": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "coadd_coverage": round(float(good.mean()), 4),
        "n_clipped": int(coadd.metadata["NCLIPPED"]),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interpolation", default="lanczos3", help=f"one of {INTERPOLATIONS} or 'all'")
    parser.add_argument("--visits", type=int, default=10)
    parser.add_argument("--patch", type=int, default=4000)
    parser.add_argument("--ccd", type=int, nargs=2, default=(2048, 4176), metavar=("NX", "NY"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--approx-variance", action="store_true", help="bilinear variance x sum(w**2)")
    parser.add_argument("--out", default="bench_out/coadd.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.interpolation == "all":
        results = []
        for name in ("bilinear", "cubic", "lanczos3"):
            part = out.with_name(f"{out.stem}_{name}.json")
            cmd = [sys.executable, __file__, "--interpolation", name, "--out", str(part)]
            cmd += ["--visits", str(args.visits), "--patch", str(args.patch), "--seed", str(args.seed)]
            cmd += ["--ccd", str(args.ccd[0]), str(args.ccd[1])]
            cmd += ["--approx-variance"] if args.approx_variance else []
            subprocess.run(cmd, check=True, env=dict(os.environ))
            results.extend(json.loads(part.read_text())["runs"])
            part.unlink()
    else:
        exact = not args.approx_variance
        results = [run(args.interpolation, args.visits, args.patch, tuple(args.ccd), args.seed, exact)]
    out.write_text(json.dumps({"benchmark": "coadd", "runs": results}, indent=2) + "\n")
    for r in results:
        print(
            f"{r['interpolation']:9s} warp {r['cpu_warp_s']:6.2f} CPU-s ({r['cpu_warp_ns_per_pixel']} ns/px)"
            f"  write {r['cpu_warp_write_s']:5.2f}"
            f"  coadd {r['cpu_coadd_s']:6.2f} CPU-s  total {r['cpu_total_s']:6.2f} CPU-s"
            f"  peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
