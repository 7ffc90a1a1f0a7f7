"""Execution benchmark: per-quantum overhead and parallel efficiency on 2 cores, beside `pipetask run -j 2`.

Two parts (each command in a fresh process under /usr/bin/time -v: whole-process wall, CPU, peak RSS;
medians of --repeat runs, every run on a fresh copy of the same repository):

**Overhead** (``--part overhead``): a no-op task (``_noop_task.NoopTask``: one quantum per visit x detector,
writing a one-row table, plus the metadata and log every quantum writes) on a registry of N visits x 100
detectors (``bench_graph.make_registry``), for two sizes N1 < N2 quanta, with ``opendrp``'s executor at -j 1
and -j 2 and with ``pipetask run -j 2``.  Per-quantum overhead at -j 2 =
2 x (wall(N2) - wall(N1)) / (N2 - N1): the worker-seconds each additional quantum costs, everything included
(graph, dispatch, I/O, registration).

**Efficiency** (``--part small``): the ``drp`` step of the ``small`` preset (72 CCD-visits: single-frame,
warps, coadds, multi-band, Object table) after its calibration products were built, with ``opendrp run -j 1``,
``-j 2`` and ``pipetask run -j 2`` (same pipeline, same data query).  Parallel efficiency =
wall(-j 1) / (2 x wall(-j 2)).

usage: python benchmarks/bench_execution.py [--part overhead,small] [--repeat 3] [--sim DIR] [--base DIR]
                                            [--out bench_out/execution.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _timing import measure, summarize  # noqa: E402

VENV_BIN = Path(sys.executable).parent
NOOP_PIPELINE = """description: one no-op quantum per visit x detector (execution overhead)
tasks:
  noop:
    class: _noop_task.NoopTask
"""
NOOP_WHERE = "instrument = 'HSC'"


def _env() -> dict[str, str]:
    """Environment of the measured commands: the benchmark folder importable (the no-op task), and what the
    middleware's command-line tools need outside an EUPS stack."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    venv = str(VENV_BIN.parent)
    return {**os.environ, "PYTHONPATH": path, "CTRL_MPEXEC_DIR": venv, "DAF_BUTLER_DIR": venv}


def _fresh(base: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, symlinks=True)
    return dest


def _summary_figures(fig: dict[str, Any]) -> dict[str, Any]:
    """Quanta and execution seconds from `opendrp run`'s summary lines (one per step)."""
    quanta, execution = 0, 0.0
    for m in re.finditer(r"(\d+) quanta: .*?execution ([\d.]+) s", fig.get("stdout_tail", "")):
        quanta += int(m.group(1))
        execution += float(m.group(2))
    return {"quanta": quanta, "execution_s": execution}


def _run_noop(repo: Path, pipeline: Path, processes: int) -> None:
    """Child process: run the no-op pipeline with openDRP's executor and print the summary."""
    from opendrp.execution.runner import run_pipeline
    from opendrp.execution.scheduler import ExecutionOptions

    report = run_pipeline(
        str(repo), pipeline, labels=["noop"], where=NOOP_WHERE, inputs=["HSC/defaults"],
        output="HSC/runs/noop", options=ExecutionOptions(processes=processes), progress=False,
    )  # fmt: skip
    print(report.summary())


def overhead(work: Path, sizes: tuple[int, int], repeat: int, pipetask: bool = True) -> dict[str, Any]:
    from bench_graph import N_DETECTORS, make_registry
    from opendrp.repo.butler import use_wal

    pipeline = work / "noop.yaml"
    pipeline.write_text(NOOP_PIPELINE)
    out: dict[str, Any] = {"task": "_noop_task.NoopTask", "sizes_quanta": [], "runs": {}}
    walls: dict[str, list[float]] = {}
    for n_visits in (max(1, sizes[0] // N_DETECTORS), max(2, sizes[1] // N_DETECTORS)):
        n = n_visits * N_DETECTORS
        out["sizes_quanta"].append(n)
        base = work / f"noop{n}"
        make_registry(base, n_visits)
        use_wal(base)  # what `opendrp init` does for SQLite registries
        first = n == out["sizes_quanta"][0]
        names = ["opendrp -j 1", "opendrp -j 2"] + (["pipetask -j 2"] if first and pipetask else [])
        for name in names:  # pipetask -j 2 (~3.7 worker-s per quantum) at the smaller size only
            runs = []
            for i in range(repeat):
                repo = _fresh(base, work / "run")
                if name.startswith("opendrp"):
                    j = name.split()[-1]
                    cmd = [sys.executable, __file__, "--child-noop", str(repo), str(pipeline), j]
                else:
                    cmd = [
                        str(VENV_BIN / "pipetask"), "run", "-b", str(repo), "-p", str(pipeline),
                        "-i", "HSC/defaults", "-o", "HSC/runs/pipetask", "-d", NOOP_WHERE, "-j", "2",
                        "--register-dataset-types",
                    ]  # fmt: skip
                fig = measure(cmd, env=_env())
                if fig["returncode"] != 0:
                    print(fig["stderr_tail"][-1500:])
                fig.update(_summary_figures(fig))
                runs.append(fig)
                figs = f"wall {fig.get('wall_s')} s, cpu {fig.get('cpu_s')} s"
                print(f"  noop {n} quanta, {name}, run {i + 1}: {figs}", flush=True)
            summary = summarize(runs)
            out["runs"][f"{name} / {n} quanta"] = summary
            walls.setdefault(name, []).append(summary["median_wall_s"])
    n1, n2 = out["sizes_quanta"]
    for name, w in walls.items():
        key = name.replace(" ", "").replace("-j", "_j")
        workers = 1 if name.endswith("-j 1") else 2
        if len(w) == 2:  # marginal cost of a quantum
            out[f"overhead_per_quantum_s_{key}"] = workers * (w[1] - w[0]) / (n2 - n1)
        else:  # whole run / quanta (includes start-up: an upper bound)
            out[f"overhead_per_quantum_s_{key}_whole_run"] = workers * w[0] / n1
    return out


def _prepare_small(work: Path, sim: Path | None, base: Path | None) -> Path:
    """Simulate the small preset (unless ``sim``), create and ingest a repository, build its calibrations.

    With ``base`` the prepared repository is kept there, and reused when it is complete.
    """
    opendrp = str(VENV_BIN / "opendrp")
    base = base or work / "small_base"
    if (base / "calibs.done").exists():
        return base
    if sim is None:
        sim = work / "sim"
        subprocess.run([opendrp, "simulate", "small", str(sim)], check=True, capture_output=True)
    if base.exists():
        shutil.rmtree(base)
    repo = base / "repo"
    subprocess.run(
        [opendrp, "init", str(repo), "--camera", str(sim / "camera.yaml"),
         "--skymap-config", str(sim / "sim_config.yaml")], check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [opendrp, "ingest", str(repo), str(sim / "raw"), "--refcat", str(sim / "refcat"), "--no-progress"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([opendrp, "run", str(repo), "--steps", "calibs", "-j", "2", "--no-progress"], check=True)
    (base / "calibs.done").write_text("")
    return base


def _drp_config_args(repo: Path) -> list[str]:
    """The ``-c`` options `opendrp run` passes (calibrations it has certified)."""
    from opendrp.repo import open_butler
    from opendrp.repo.butler import calib_collection

    butler = open_butler(repo)
    args = []
    for dtype, field in (
        ("bias", "do_bias"),
        ("dark", "do_dark"),
        ("flat", "do_flat"),
        ("defects", "do_defects"),
    ):
        try:
            have = bool(
                butler.query_datasets(dtype, collections=calib_collection("HSC"), explain=False, limit=1)
            )
        except Exception:  # the dataset type does not exist
            have = False
        args += ["-c", f"calibrateImage:{field}={have}"]
    return args


def small(work: Path, sim: Path | None, repeat: int, base_dir: Path | None = None) -> dict[str, Any]:
    from opendrp.execution import drp_pipeline_path
    from opendrp.repo import get_skymap, open_butler

    base = _prepare_small(work, sim, base_dir)
    skymap = get_skymap(open_butler(base / "repo")).name
    results: dict[str, list] = {"opendrp -j 1": [], "opendrp -j 2": [], "pipetask -j 2": []}
    for i in range(repeat):
        for name in results:
            repo = _fresh(base, work / "run") / "repo"
            if name.startswith("opendrp"):
                cmd = [str(VENV_BIN / "opendrp"), "run", str(repo), "--steps", "drp", "-j", name.split()[-1],
                       "--no-progress"]  # fmt: skip
            else:
                cmd = [
                    str(VENV_BIN / "pipetask"), "run", "-b", str(repo), "-p", f"{drp_pipeline_path()}#drp",
                    "-i", "HSC/defaults", "-o", "HSC/runs/pipetask", "-j", "2", "--register-dataset-types",
                    "-d", f"instrument = 'HSC' AND skymap = '{skymap}'", *_drp_config_args(repo),
                ]  # fmt: skip
            fig = measure(cmd, env=_env())
            if fig["returncode"] != 0:
                print(fig["stderr_tail"][-1500:])
            fig.update(_summary_figures(fig))
            results[name].append(fig)
            print(
                f"  small drp, {name}, run {i + 1}: wall {fig.get('wall_s')} s, cpu {fig.get('cpu_s')} s",
                flush=True,
            )
    summary = {k: summarize(v) for k, v in results.items()}
    w1 = summary["opendrp -j 1"]["median_wall_s"]
    w2 = summary["opendrp -j 2"]["median_wall_s"]
    wp = summary["pipetask -j 2"]["median_wall_s"]
    return {
        "step": "drp (small preset, calibrations built)",
        "quanta": results["opendrp -j 1"][0].get("quanta"),
        "parallel_efficiency_j2": w1 / (2 * w2) if w1 and w2 else None,
        "pipetask_j2_efficiency": w1 / (2 * wp) if w1 and wp else None,
        "speedup_vs_pipetask_j2": wp / w2 if wp and w2 else None,
        "runs": summary,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="overhead,small")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="200,1000", help="no-op quanta of the two overhead runs")
    ap.add_argument("--sim", type=Path, help="an existing simulation of the small preset (else simulated)")
    ap.add_argument("--base", type=Path, help="keep (and reuse) the prepared small repository here")
    ap.add_argument("--skip-pipetask", action="store_true", help="overhead: openDRP only")
    ap.add_argument("--out", default="bench_out/execution.json")
    ap.add_argument("--child-noop", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_noop:
        repo, pipeline, j = args.child_noop
        _run_noop(Path(repo), Path(pipeline), int(j))
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    out: dict[str, Any] = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    parts = args.part.split(",")
    try:
        if "overhead" in parts:
            n1, n2 = (int(s) for s in args.sizes.split(","))
            out["overhead"] = overhead(work, (n1, n2), args.repeat, pipetask=not args.skip_pipetask)
        if "small" in parts:
            out["small"] = small(work, args.sim, args.repeat, args.base)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    brief = {
        part: {k: v for k, v in res.items() if k != "runs"}
        for part, res in out.items()
        if isinstance(res, dict)
    }
    print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
