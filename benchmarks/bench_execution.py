"""Execution benchmark: the `drp` step of a micro survey with `opendrp run -j 1`, `-j 2` and
`pipetask run -j 2` on fresh copies of the same repository; whole-process wall and CPU (/usr/bin/time -v),
medians of --repeat runs.

Figures: parallel efficiency = wall(-j 1) / (2 x wall(-j 2)); per-quantum overhead at -j 2 =
(2 x wall(-j 2) - wall(-j 1)) / quanta, the worker-seconds each quantum costs beyond the serial run.

usage: python benchmarks/bench_execution.py [--repeat 3] [--out benchmarks/results/execution.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import measure, summarize  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def _fresh(base: Path, work: Path, name: str) -> Path:
    dest = work / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, symlinks=True)
    return dest / "repo"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/execution.json")
    args = ap.parse_args(argv)
    from tests.execution._micro import make_micro_repo

    from opendrp.execution import drp_pipeline_path

    work = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    base = work / "base"
    make_micro_repo(base)
    results: dict[str, list] = {"opendrp -j 1": [], "opendrp -j 2": [], "pipetask -j 2": []}
    n_quanta = 0
    for i in range(args.repeat):
        for j in (1, 2):
            repo = _fresh(base, work, f"o{j}_{i}")
            cmd = [str(VENV_BIN / "opendrp"), "run", str(repo), "--steps", "drp", "-j", str(j)]
            fig = measure([*cmd, "--no-progress"])
            results[f"opendrp -j {j}"].append(fig)
            for line in fig["stdout_tail"].splitlines():
                if " quanta:" in line:
                    n_quanta = int(line.split(" quanta:")[0].split()[-1])
        repo = _fresh(base, work, f"p_{i}")
        cmd = [
            str(VENV_BIN / "pipetask"), "run", "-b", str(repo), "-p", f"{drp_pipeline_path()}#drp",
            "-i", "HSC/defaults", "-o", "HSC/runs/pipetask", "-d", "instrument = 'HSC'", "-j", "2",
            "--register-dataset-types",
            "-c", "calibrateImage:do_bias=False", "-c", "calibrateImage:do_flat=False",
        ]  # fmt: skip
        env = {**os.environ, "CTRL_MPEXEC_DIR": str(VENV_BIN.parent), "DAF_BUTLER_DIR": str(VENV_BIN.parent)}
        results["pipetask -j 2"].append(measure(cmd, env=env))
    summary = {k: summarize(v) for k, v in results.items()}
    w1, w2 = summary["opendrp -j 1"]["median_wall_s"], summary["opendrp -j 2"]["median_wall_s"]
    out = {
        "n_quanta": n_quanta,
        "load_average": os.getloadavg(),
        "parallel_efficiency_j2": w1 / (2 * w2) if w1 and w2 else None,
        "overhead_per_quantum_j2_s": (2 * w2 - w1) / n_quanta if n_quanta and w1 and w2 else None,
        "runs": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    for k, v in summary.items():
        print(f"{k}: wall {v['median_wall_s']} s, cpu {v['median_cpu_s']} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
