"""Benchmark of the whole demo (`make demo` <= 6 min on 2 cores, verification included; tiny < 3 min).

Runs ``opendrp demo --preset P`` several times as separate processes under ``/usr/bin/time -v`` and writes the
medians of wall time, CPU time (user + system, all processes) and peak RSS, the disk the demo wrote, and the
test-case statuses of the last run's verification, to ``bench_out/demo_<preset>.json``.

    .venv/bin/python benchmarks/bench_demo.py --preset small --runs 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import measure, summarize  # noqa: E402


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    opendrp = str(Path(sys.executable).with_name("opendrp"))
    runs = []
    qa = None
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
            out = Path(tmp) / "demo"
            fig = measure([opendrp, "demo", "--preset", args.preset, "--out", str(out), "--no-progress"])
            verify_path = out / "verify" / "verify.json"
            if verify_path.exists():
                doc = json.loads(verify_path.read_text())
                qa = {case: v["status"] for case, v in doc["test_cases"].items()}
            fig["disk_bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            runs.append(fig)
            print(
                f"run {i + 1}: wall {fig.get('wall_s', 0):.1f} s, cpu {fig.get('cpu_s', 0):.1f} s, "
                f"peak RSS {fig.get('max_rss_mb', 0):.0f} MB, exit {fig['returncode']}"
            )
    result = {
        "benchmark": "demo",
        "preset": args.preset,
        "target_wall_s": 360 if args.preset == "small" else 180,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **summarize(runs),
        "disk_bytes_last_run": runs[-1].get("disk_bytes"),
        "verify_last_run": qa,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"demo_{args.preset}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"median wall {result['median_wall_s']:.1f} s -> {path}")


if __name__ == "__main__":
    main()
