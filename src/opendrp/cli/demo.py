"""The end-to-end demo: simulate -> init -> ingest -> calibrations -> DRP -> Object table -> QA."""

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
    """Run the whole chain on a simulation preset or config; returns whether QA passed.

    Layout of ``outdir``: ``sim/`` (raw files, truth, refcat), ``repo/`` (the Butler repository),
    ``truth/truth.parquet``, ``catalogs/object.parquet``, ``qa/metrics.json`` and ``qa/index.html``.
    """
    from astropy.table import Table

    from ..execution import coverage_polygons, export_object_table, run_drp
    from ..instrument import Camera
    from ..qa import run_qa
    from ..repo import create_repo, ingest_raws, ingest_refcat
    from ..sim import load_sim_config, simulate
    from .main import _print_qa_summary, _skymap_config_from

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

    step("qa")
    metrics = run_qa(
        outdir / "catalogs" / "object.parquet",
        outdir / "truth" / "truth.parquet",
        refcat=sim_dir / "refcat" / "refcat.parquet",
        outdir=outdir / "qa",
        footprint_polygons=coverage_polygons(outdir / "repo", reports[-1].output_chain),
        sources=_single_visit_sources(outdir / "repo", reports[-1].output_chain),
        blind=_sealed_insertions(sim_dir),
    )
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
    _print_qa_summary(metrics, str(outdir / "qa"))
    echo(f"  repository:   {outdir / 'repo'}   (try: butler query-datasets {outdir / 'repo'})")
    echo(f"  Object table: {outdir / 'catalogs' / 'object.parquet'}")
    echo(f"  truth:        {outdir / 'truth' / 'truth.parquet'}")
    echo(f"  QA report:    {outdir / 'qa' / 'index.html'}")
    if n_failed:
        echo(f"  {n_failed} quanta failed (see above)")
    return bool(metrics.get("ok", False))


def _single_visit_sources(repo: Path, collection: str) -> object:
    """All single-visit Source tables of the run, with their band, for single-visit QA (repeatability)."""
    from astropy.table import vstack

    from ..repo import open_butler

    butler = open_butler(repo, collections=[collection])
    refs = butler.query_datasets("src", collections=collection, explain=False, limit=None)
    columns = ["coord_ra", "coord_dec", "psfFlux", "psfFluxErr", "band", "visit", "detector"]
    tables = [butler.get(ref, parameters={"columns": columns}) for ref in refs]
    return vstack(tables, metadata_conflicts="silent") if tables else None


def _sealed_insertions(sim_dir: Path) -> Path | None:
    """The sealed blind-insertion file, opened after the blind run (None when the survey has none)."""
    import pyarrow.parquet as pq

    path = sim_dir / "truth" / "sealed" / "blind.parquet"
    return path if path.exists() and pq.ParquetFile(path).metadata.num_rows > 0 else None
