"""Run every benchmark in this folder (``make bench``); each writes its JSON into bench_out/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    ["bench_sim.py"],
    ["bench_sfp.py", "--runs", "5"],
    ["bench_coadd.py"],
    ["bench_execution.py", "--repeat", "1"],  # ~25 min: pipetask -j 2 pays ~3.7 s per quantum
    ["bench_graph.py"],
    ["bench_demo.py", "--preset", "tiny", "--runs", "3"],
    ["bench_demo.py", "--preset", "small", "--runs", "3"],
]


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for args in BENCHMARKS:
        script = here / args[0]
        if not script.exists():
            continue
        print(f"== {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, str(script), *args[1:]]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
