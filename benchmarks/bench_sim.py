"""Benchmark: CPU seconds and peak memory of simulating one full-size HSC CCD (2048 x 4176) read-out.

Run on demand (not a test)::

    .venv/bin/python benchmarks/bench_sim.py            # rc preset, 4 science CCDs -> bench_out/sim.json
    .venv/bin/python benchmarks/bench_sim.py --units 2 --preset rc

One process simulates ``--units`` science read-outs of the ``rc`` preset (the first exposures, cycling over
its 9 full-size CCDs; every artefact on) with `opendrp.sim.simulate.simulate_unit`, as a worker of
`simulate` does, and writes the raws to a temporary directory.  CPU is `time.process_time` per unit (user +
system; catalogue and plan set-up excluded and reported separately); peak memory is the process's
``ru_maxrss``.  The target (issue #3): <= 3 CPU-s and <= 1 GB per CCD; anchor (docs/ANCHORS.md): GalSim's
full FFT path ~8 s per CCD.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="rc")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--out", default="bench_out/sim.json")
    args = parser.parse_args(argv)

    from opendrp.sim import load_sim_config
    from opendrp.sim.blind import make_blind_insertions
    from opendrp.sim.catalog import make_truth_catalog
    from opendrp.sim.simulate import _init_worker, build_camera, simulate_unit
    from opendrp.sim.survey import plan_exposures, sky_footprint

    t0 = time.process_time()
    config = load_sim_config(args.preset)
    camera = build_camera(config)
    exposures = plan_exposures(config, camera)
    footprint = sky_footprint(config, camera, exposures)
    truth = make_truth_catalog(config, footprint, np.random.default_rng([config.seed, 2]))
    blind = make_blind_insertions(config, footprint, exposures, np.random.default_rng([config.seed, 5]))
    drawn = truth.concat(blind.catalog) if len(blind) else truth
    setup_s = time.process_time() - t0
    science = [e for e in exposures if e.observation_type == "science"]
    detectors = list(camera.detectors)
    cpu = []
    with tempfile.TemporaryDirectory() as tmp:
        _init_worker({})
        for k in range(args.units):
            exposure = science[k % len(science)]
            det = detectors[k % len(detectors)]
            t = time.process_time()
            simulate_unit(camera, config, exposure, det, drawn, Path(tmp), blind if len(blind) else None)
            cpu.append(time.process_time() - t)
            print(
                f"unit {k}: exposure {exposure.exposure_id} detector {det}: {cpu[-1]:.2f} CPU-s", flush=True
            )
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0**2
    det0 = camera.detector(detectors[0])
    result = {
        "preset": args.preset,
        "ccd_shape": [det0.ny, det0.nx],
        "units": args.units,
        "cpu_s_per_ccd": cpu,
        "cpu_s_per_ccd_median": statistics.median(cpu),
        "setup_cpu_s": setup_s,
        "peak_rss_gb": rss_gb,
        "n_sources": len(drawn),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
