"""The end-to-end demo: simulate -> init -> ingest -> calibrations -> DRP -> Object table -> verify."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import OpenDRPError

__all__ = ["run_demo"]


def run_demo(
    config: str,
    outdir: Path,
    *,
    processes: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> bool:
    """Run the whole chain on a simulation preset or config, then verify it; True when the chain ran.

    The verdicts of the verification are results, not errors: they do not change the return value.
    Layout of ``outdir``: ``sim/`` (raw files, truth, refcat), ``repo/`` (the Butler repository),
    ``truth/truth.parquet``, ``catalogs/object.parquet``, ``summary.json`` (the figures the installation
    check compares), ``verify/`` (verify.json, verify.md, index.html, figures/).
    """
    from astropy.table import Table

    from ..execution import export_object_table, run_drp
    from ..instrument import Camera
    from ..repo import create_repo, ingest_raws, ingest_refcat
    from ..sim import load_sim_config, simulate
    from .main import _skymap_config_from

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    outdir = Path(outdir)
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    sim_dir = outdir / "sim"

    def step(name: str) -> None:
        timings[name] = time.perf_counter()
        echo(f"== {name}")

    step("simulate")
    cfg = load_sim_config(config)
    simulate(cfg, sim_dir, processes=processes, progress=progress)

    step("init")
    camera = Camera.from_yaml(sim_dir / "camera.yaml")
    butler = create_repo(
        outdir / "repo", camera=camera, skymap_config=_skymap_config_from(str(sim_dir / "sim_config.yaml"))
    )

    step("ingest")
    ingest_refcat(butler, Table.read(sim_dir / "refcat" / "refcat.parquet"))
    raws = sorted((sim_dir / "raw").rglob("*.fits"))
    report = ingest_raws(butler, raws, transfer="link")
    if report.failed:
        raise OpenDRPError(
            f"{len(report.failed)} simulated raw files failed to ingest: {report.failed[0][1]}"
        )
    echo(f"ingested {len(report.ingested)} raw files ({len(report.visits)} visits)")

    step("calibrations and DRP")
    from ..execution.runner import ExecutionOptions

    options = ExecutionOptions(processes=processes or os.cpu_count() or 1)
    reports = run_drp(outdir / "repo", progress=progress, options=options)
    n_failed = 0
    for rep in reports:
        echo(rep.summary())
        for o in rep.failed:
            echo(f"  failed {o.task} {o.data_id}: {o.error}")
        n_failed += len(rep.failed)

    step("export")
    (outdir / "truth").mkdir(exist_ok=True)
    shutil.copy2(sim_dir / "truth" / "truth.parquet", outdir / "truth" / "truth.parquet")
    objects = export_object_table(
        outdir / "repo", reports[-1].output_chain, outdir / "catalogs" / "object.parquet"
    )
    echo(f"Object table: {len(objects)} rows")

    step("verify")
    doc = _verify(outdir, sim_dir, reports[-1].output_chain, config)
    total = time.perf_counter() - t_start
    names = list(timings)
    ends = [timings[n] for n in names[1:]] + [t_start + total]
    echo("")
    echo("openDRP demo summary")
    echo(
        "  "
        + ", ".join(f"{n} {e - timings[n]:.0f} s" for n, e in zip(names, ends))
        + f"; total {total:.0f} s"
    )
    from ..verify import summary_lines

    for line in summary_lines(doc):
        echo("  " + line)
    echo(f"  repository:   {outdir / 'repo'}   (try: butler query-datasets {outdir / 'repo'})")
    echo(f"  Object table: {outdir / 'catalogs' / 'object.parquet'}")
    echo(f"  truth:        {outdir / 'truth' / 'truth.parquet'}")
    echo(f"  verification: {outdir / 'verify' / 'index.html'} (verify.json, verify.md)")
    echo(f"  installation check: opendrp verify --demo-expected {outdir}")
    if n_failed:
        echo(f"  {n_failed} quanta failed (see above)")
    return True


def _verify(outdir: Path, sim_dir: Path, collection: str, config: str) -> dict[str, object]:
    """The demo's summary figures (summary.json, for the installation check), then `opendrp verify`."""
    import json

    from ..sim import preset_names
    from ..verify import run_verify
    from ..verify.cases.installation import demo_summary

    preset = config if config in preset_names() else f"custom:{Path(config).name}"
    summary = demo_summary(outdir / "repo", collection, preset=preset)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return run_verify(
        outdir / "repo",
        out_dir=outdir / "verify",
        collection=collection,
        truth=sim_dir / "truth" / "truth.parquet",
    )
