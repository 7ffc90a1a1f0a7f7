"""Whole-process measurement with /usr/bin/time -v: CPU (user + system) seconds, wall seconds, peak RSS."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["measure", "median_of", "summarize"]


def measure(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` under ``/usr/bin/time -v`` (or ``resource`` if absent) and return its figures."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        if os.path.exists(time_bin):
            full = [time_bin, "-v", "-o", tf.name, *cmd]
        else:  # pragma: no cover - machines without GNU time
            full = cmd
        proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
        text = Path(tf.name).read_text() if os.path.exists(time_bin) else ""
    fig: dict[str, Any] = {"returncode": proc.returncode, "command": " ".join(cmd)}
    patterns = {
        "user_s": r"User time \(seconds\): ([\d.]+)",
        "system_s": r"System time \(seconds\): ([\d.]+)",
        "max_rss_mb": r"Maximum resident set size \(kbytes\): (\d+)",
    }
    for key, pat in patterns.items():
        m = re.search(pat, text)
        if m:
            fig[key] = float(m.group(1)) / (1024.0 if key == "max_rss_mb" else 1.0)
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        wall = 0.0
        for p in parts:
            wall = wall * 60 + p
        fig["wall_s"] = wall
    if "user_s" in fig:
        fig["cpu_s"] = fig["user_s"] + fig.get("system_s", 0.0)
    fig["stdout_tail"] = proc.stdout[-2000:]
    fig["stderr_tail"] = proc.stderr[-2000:]
    return fig


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "n_runs": len(runs),
        "median_wall_s": median_of(runs, "wall_s"),
        "median_cpu_s": median_of(runs, "cpu_s"),
        "median_max_rss_mb": median_of(runs, "max_rss_mb"),
        "runs": [{k: v for k, v in r.items() if not k.endswith("_tail")} for r in runs],
    }
