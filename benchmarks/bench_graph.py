"""Graph-building benchmark: quantum graphs of 10k and 100k quanta of the DRP's step1 (calibrateImage per
visit x detector) on a synthetic registry, built the way `opendrp run` builds them
(`opendrp.execution.graph.build_graph` with datastore records, then ``.assemble()``).  Target (issue 5):
100k quanta in <= 120 s wall and <= 4 GB, on 2 cores.

The registry holds dimension records only (instrument, 100 detectors, N visits with their exposures,
visit_definition, visit_detector_region with regions) and registry-only datasets (no files): one ``raw`` per
exposure x detector, the ``camera``, and one ``ref_cat`` shard per htm7 trixel of the field, so the
builder does the same spatial prerequisite look-ups as on real data.  Calibration look-ups are off
(``do_bias=False do_flat=False``) unless ``--calibs`` (then a certified bias per detector and flat per
detector x filter are added and looked up by validity range).

Each build runs in a fresh process under ``/usr/bin/time -v`` (whole-process CPU of the process and its
chunk workers, wall, peak RSS of the largest process); the child also samples the summed RSS of itself and
its workers (``tree_rss_mb``).  Medians of ``--repeat`` runs; the load average (1 min) before and after each
run is recorded, as others share the 2 cores.  ``--processes 1`` builds in one process (no chunks).

usage: python benchmarks/bench_graph.py [--sizes 100,1000] [--repeat 3] [--processes 0] [--calibs]
                                        [--out bench_out/graph.json]
       python benchmarks/bench_graph.py --profile 100     # cProfile of one build in one process
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import measure, summarize  # noqa: E402

N_DETECTORS = 100
INSTRUMENT = "HSC"
WHERE = f"instrument = '{INSTRUMENT}'"
OVERRIDES = {"calibrateImage": {"do_bias": False, "do_flat": False}}
TARGET = {"quanta": 100_000, "wall_s": 120, "max_rss_mb": 4096}


def _box(ra0: float, dec0: float, size: float):  # type: ignore[no-untyped-def]
    from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

    pts = [(ra0, dec0), (ra0 + size, dec0), (ra0 + size, dec0 + size), (ra0, dec0 + size)]
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d)) for r, d in pts])


def make_registry(root: Path, n_visits: int, *, calibs: bool = False) -> float:
    """A repository with dimension records and registry-only datasets for ``n_visits`` x 100 detectors
    (``calibs``: also a certified bias per detector and flat per detector); returns the seconds it took."""
    import astropy.units as u
    from astropy.time import Time, TimeDelta
    from lsst.daf.butler import Butler, CollectionType, DatasetType, Timespan
    from lsst.sphgeom import ConvexPolygon, HtmPixelization

    from opendrp.repo.butler import seed_config_path

    t0 = time.perf_counter()
    Butler.makeRepo(str(root), config=str(seed_config_path()))
    butler = Butler.from_config(str(root), writeable=True)
    reg = butler.registry
    reg.insertDimensionData(
        "instrument",
        {"name": INSTRUMENT, "visit_max": 10**7, "exposure_max": 10**7, "detector_max": 200,
         "class_name": "opendrp.instrument.Camera"},
    )  # fmt: skip
    reg.insertDimensionData("physical_filter", {"instrument": INSTRUMENT, "name": "HSC-G", "band": "g"})
    reg.insertDimensionData(
        "detector",
        *[{"instrument": INSTRUMENT, "id": d, "full_name": f"{d:03d}", "purpose": "SCIENCE"}
          for d in range(N_DETECTORS)],
    )  # fmt: skip
    t_start = Time("2026-01-02T01:00", scale="tai")
    reg.insertDimensionData(
        "day_obs",
        {"instrument": INSTRUMENT, "id": 20260101,
         "timespan": Timespan(t_start - TimeDelta(1 * u.day), t_start + TimeDelta(30 * u.day))},
    )  # fmt: skip
    groups, exposures, visits, vdef, vdr = [], [], [], [], []
    htm = HtmPixelization(7)
    trixels: set[int] = set()
    ncols, det = 10, 0.15  # detectors: 10 x 10 grid of 0.15 deg
    for v in range(n_visits):
        ra_v, dec_v = 30.0 + 1.2 * (v % 40), -10.0 + 1.2 * ((v // 40) % 20) + 0.01 * (v // 800)
        begin = t_start + TimeDelta(v * 60 * u.s)
        span = Timespan(begin, begin + TimeDelta(30 * u.s))
        groups.append({"instrument": INSTRUMENT, "name": f"g{v}"})
        exposures.append(
            {"instrument": INSTRUMENT, "id": v, "obs_id": f"E{v}", "physical_filter": "HSC-G",
             "group": f"g{v}", "day_obs": 20260101, "exposure_time": 30.0, "observation_type": "science",
             "timespan": span, "tracking_ra": ra_v, "tracking_dec": dec_v},
        )  # fmt: skip
        regions = []
        for d in range(N_DETECTORS):
            region = _box(ra_v + det * (d % ncols), dec_v + det * (d // ncols), det)
            regions.append(region)
            vdr.append({"instrument": INSTRUMENT, "visit": v, "detector": d, "region": region})
        hull = ConvexPolygon.convexHull([p for r in regions for p in r.getVertices()])
        for lo, hi in htm.envelope(hull):
            trixels.update(range(lo, hi))
        visits.append(
            {"instrument": INSTRUMENT, "id": v, "name": f"V{v}", "physical_filter": "HSC-G",
             "day_obs": 20260101, "exposure_time": 30.0, "timespan": span, "region": hull},
        )  # fmt: skip
        vdef.append({"instrument": INSTRUMENT, "exposure": v, "visit": v})
    for element, rows in (("group", groups), ("exposure", exposures), ("visit", visits),
                          ("visit_definition", vdef), ("visit_detector_region", vdr)):  # fmt: skip
        reg.insertDimensionData(element, *rows)
    universe = butler.dimensions
    raw_type = DatasetType("raw", ["instrument", "exposure", "detector"], "DrpRawImage", universe=universe)
    cam_type = DatasetType("camera", ["instrument"], "DrpCamera", universe=universe)
    ref_type = DatasetType("ref_cat", ["htm7"], "ArrowAstropy", universe=universe)
    for dtype in (raw_type, cam_type, ref_type):
        reg.registerDatasetType(dtype)
    for run in ("HSC/raw/all", "HSC/camera", "refcats"):
        reg.registerRun(run)
    ids = [{"instrument": INSTRUMENT, "exposure": v, "detector": d}
           for v in range(n_visits) for d in range(N_DETECTORS)]  # fmt: skip
    reg.insertDatasets(raw_type, ids, run="HSC/raw/all")
    reg.insertDatasets(cam_type, [{"instrument": INSTRUMENT}], run="HSC/camera")
    reg.insertDatasets(ref_type, [{"htm7": t} for t in sorted(trixels)], run="refcats")
    chain = ["HSC/raw/all", "HSC/camera", "refcats"]
    if calibs:
        dets = [{"instrument": INSTRUMENT, "detector": d} for d in range(N_DETECTORS)]
        bias_type = DatasetType("bias", ["instrument", "detector"], "DrpExposure", universe=universe,
                                isCalibration=True)  # fmt: skip
        flat_type = DatasetType("flat", ["instrument", "detector", "physical_filter"], "DrpExposure",
                                universe=universe, isCalibration=True)  # fmt: skip
        reg.registerRun("HSC/calib/build")
        reg.registerCollection("HSC/calib", CollectionType.CALIBRATION)
        validity = Timespan(t_start - TimeDelta(1 * u.day), None)
        for dtype, rows in (
            (bias_type, dets),
            (flat_type, [{**d, "physical_filter": "HSC-G"} for d in dets]),
        ):
            reg.registerDatasetType(dtype)
            refs = reg.insertDatasets(dtype, rows, run="HSC/calib/build")
            reg.certify("HSC/calib", refs, validity)
        chain.append("HSC/calib")
    reg.registerCollection("HSC/defaults", CollectionType.CHAINED)
    reg.setCollectionChain("HSC/defaults", chain)
    return time.perf_counter() - t0


def _tree_rss_sampler(stop: threading.Event, peak: list[float]) -> None:
    """Peak of the summed RSS (MB) of this process and its children (the chunk workers), every 0.2 s."""
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total / 2**20)
        stop.wait(0.2)


def build(repo: str, *, calibs: bool, processes: int, profile: bool = False) -> None:
    """Child process: build the step1 graph as `opendrp run` does, assemble it and print its size."""
    from opendrp.execution import drp_pipeline_path
    from opendrp.execution.graph import build_graph
    from opendrp.execution.runner import prepare_output

    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=_tree_rss_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    butler = prepare_output(repo, inputs=["HSC/defaults"], output="HSC/runs/bench")

    def go():  # type: ignore[no-untyped-def]
        return build_graph(
            butler, drp_pipeline_path(), labels=["step1"], where=WHERE, output="HSC/runs/bench",
            config_overrides=None if calibs else OVERRIDES, processes=processes or None,
            attach_datastore_records=True,  # as `opendrp run` (quanta run on quantum-backed butlers)
        )  # fmt: skip

    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        components = prof.runcall(go)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        components = go()
    t1 = time.perf_counter()
    predicted = components.assemble()
    t2 = time.perf_counter()
    stop.set()
    sampler.join()
    print(f"QUANTA {len(predicted)} build_s {t1 - t0:.1f} assemble_s {t2 - t1:.1f} tree_rss_mb {peak[0]:.0f}")
    sys.stdout.flush()
    os._exit(0)  # the graph's millions of objects need no teardown (it is not part of building)


def _run_once(repo: Path, *, calibs: bool, processes: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(repo), "--processes", str(processes)]
    if calibs:
        cmd.append("--calibs")
    load_before = os.getloadavg()[0]
    fig = measure(cmd)
    fig["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    line = next((ln for ln in fig["stdout_tail"].splitlines() if ln.startswith("QUANTA")), "")
    if not line:
        print(fig["stderr_tail"])
        return fig
    words = line.split()
    fig.update(quanta=int(words[1]), build_s=float(words[3]), assemble_s=float(words[5]),
               tree_rss_mb=float(words[7]))  # fmt: skip
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", help="visits (x 100 detectors) per graph")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size (medians)")
    ap.add_argument("--processes", type=int, default=0, help="chunk workers (0: build_graph's default)")
    ap.add_argument("--calibs", action="store_true", help="certified bias and flat, looked up per quantum")
    ap.add_argument("--out", default="bench_out/graph.json")
    ap.add_argument("--keep", help="keep the registries in this folder (reused when present)")
    ap.add_argument("--profile", type=int, default=0, help="profile one build of this many visits")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        build(args.child, calibs=args.calibs, processes=args.processes, profile=bool(args.profile))
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-graph-"))
    sizes = [args.profile] if args.profile else [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {}
    try:
        for n_visits in sizes:
            repo = work / f"repo{n_visits}{'_calibs' if args.calibs else ''}"
            setup_s = 0.0
            if not (repo / "butler.yaml").exists():
                setup_s = make_registry(repo, n_visits, calibs=args.calibs)
            if args.profile:
                cmd = [sys.executable, __file__, "--child", str(repo), "--processes", "1", "--profile", "1"]
                subprocess.run(cmd + (["--calibs"] if args.calibs else []), check=False)
                continue
            runs = [_run_once(repo, calibs=args.calibs, processes=args.processes) for _ in range(args.repeat)]
            summary = summarize(runs)
            quanta = max((r.get("quanta", 0) for r in runs), default=0)
            summary.update(visits=n_visits, detectors=N_DETECTORS, quanta=quanta, setup_s=round(setup_s, 1),
                           max_tree_rss_mb=max(r.get("tree_rss_mb", 0.0) for r in runs))  # fmt: skip
            results[f"{quanta} quanta"] = summary
            loads = [r.get("load_1min") for r in runs]
            print(f"{quanta} quanta: wall {summary['median_wall_s']} s, cpu {summary['median_cpu_s']:.1f} s, "
                  f"peak RSS {summary['median_max_rss_mb']:.0f} MB (all processes "
                  f"{summary['max_tree_rss_mb']:.0f} MB), load {loads}")  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if results:
        out = {"target": TARGET, "processes": args.processes or "default", "calibs": args.calibs,
               "cpus": len(os.sched_getaffinity(0)), "sizes": results}  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
