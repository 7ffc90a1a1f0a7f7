"""Graph-building benchmark: quantum graphs of ~10k and ~100k quanta of the DRP's step1 (calibrateImage per
visit x detector) on a synthetic registry, built the way `opendrp run` builds them
(`opendrp.execution.graph.build_graph`: AllDimensionsQuantumGraphBuilder, datastore records attached).

The registry holds dimension records only (instrument, 100 detectors, N visits with their exposures,
visit_definition, visit_detector_region with regions) and registry-only datasets (no files): one ``raw`` per
exposure x detector, the ``camera``, and one ``ref_cat`` shard per htm7 trixel of the field, so the
builder does the same spatial prerequisite lookups as on real data.  Calibration lookups are off
(``do_bias=False do_flat=False``).

Each build runs in a fresh process under ``/usr/bin/time -v`` (whole-process CPU, wall, peak RSS); target:
100k quanta in <= 120 s and <= 4 GB.

usage: python benchmarks/bench_graph.py [--sizes 100,1000] [--out benchmarks/results/graph.json]
       python benchmarks/bench_graph.py --profile 100     # cProfile of the build, top functions
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import measure  # noqa: E402

N_DETECTORS = 100
INSTRUMENT = "HSC"
WHERE = f"instrument = '{INSTRUMENT}'"
OVERRIDES = {"calibrateImage": {"do_bias": False, "do_flat": False}}


def _box(ra0: float, dec0: float, size: float):  # type: ignore[no-untyped-def]
    from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

    pts = [(ra0, dec0), (ra0 + size, dec0), (ra0 + size, dec0 + size), (ra0, dec0 + size)]
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(r, d)) for r, d in pts])


def make_registry(root: Path, n_visits: int) -> float:
    """A repository with dimension records and registry-only datasets for ``n_visits`` x 100 detectors."""
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
    reg.registerCollection("HSC/defaults", CollectionType.CHAINED)
    reg.setCollectionChain("HSC/defaults", ["HSC/raw/all", "HSC/camera", "refcats"])
    return time.perf_counter() - t0


def build(repo: str, profile: bool = False) -> None:
    """Child process: build the step1 graph as `opendrp run` does and print its size."""
    from opendrp.execution import drp_pipeline_path
    from opendrp.execution.graph import build_graph
    from opendrp.execution.runner import prepare_output

    t0 = time.perf_counter()
    butler = prepare_output(repo, inputs=["HSC/defaults"], output="HSC/runs/bench")

    def go():  # type: ignore[no-untyped-def]
        return build_graph(
            butler, drp_pipeline_path(), labels=["step1"], where=WHERE, output="HSC/runs/bench",
            config_overrides=OVERRIDES,
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
    predicted = components.assemble()
    print(f"QUANTA {len(predicted)} build_s {time.perf_counter() - t0:.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", help="visits (x 100 detectors) per graph")
    ap.add_argument("--out", default="benchmarks/results/graph.json")
    ap.add_argument("--profile", type=int, default=0, help="profile one build of this many visits")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-profile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        build(args.child, profile=args.child_profile)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    sizes = [args.profile] if args.profile else [int(s) for s in args.sizes.split(",")]
    results = []
    for n_visits in sizes:
        repo = work / f"repo{n_visits}"
        setup_s = make_registry(repo, n_visits)
        cmd = [sys.executable, __file__, "--child", str(repo)]
        if args.profile:
            subprocess.run([*cmd, "--child-profile"], check=False)
            continue
        fig = measure(cmd)
        line = next((ln for ln in fig["stdout_tail"].splitlines() if ln.startswith("QUANTA")), "")
        if not line:
            print(fig["stderr_tail"])
        fig = {k: v for k, v in fig.items() if not k.endswith("_tail")}
        fig.update(visits=n_visits, detectors=N_DETECTORS, setup_s=round(setup_s, 1),
                   quanta=int(line.split()[1]) if line else 0)  # fmt: skip
        results.append(fig)
        print(f"{fig['quanta']} quanta: wall {fig.get('wall_s')} s, cpu {fig.get('cpu_s')} s, "
              f"peak RSS {fig.get('max_rss_mb', 0):.0f} MB (registry setup {setup_s:.0f} s)")  # fmt: skip
    if results:
        out = {"target": {"quanta": 100_000, "wall_s": 120, "max_rss_mb": 4096}, "runs": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
