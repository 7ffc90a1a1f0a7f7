"""The ``opendrp`` command: simulate, init, ingest, run, verify, dashboard, demo.

Every command prints one clear line (what, where, what to do) and exits non-zero on bad input; no
traceback for user errors.  ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigurationError, OpenDRPError
from ._common import handle_errors

__all__ = ["main"]

_log = logging.getLogger("opendrp")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # the middleware is chatty at INFO: keep it at WARNING unless -vv
    logging.getLogger("lsst.utils.packages").setLevel(logging.ERROR)  # "cannot import eups": expected
    for name in ("lsst", "py.warnings"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
    import warnings

    if verbose < 2:
        warnings.filterwarnings("ignore", module="astropy")
        warnings.filterwarnings("ignore", category=DeprecationWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="opendrp")
def cli(verbose: int, debug: bool) -> None:
    """openDRP: Data Release Production for wide-field imaging surveys.

    Raw CCD images in; calibrated images, coadds, catalogs, provenance and a quality report out.
    Typical use: `opendrp demo`, or simulate -> init -> ingest -> run -> verify.
    """
    _setup_logging(verbose)


def _check_processes(processes: int | None) -> None:
    if processes is not None and processes < 1:
        raise ConfigurationError(
            f"{processes} processes", where="-j", fix="give -j 1 or more (default: all cores)"
        )


# ---------------------------------------------------------------------------------------------- simulate
@cli.command()
@click.argument("config", required=False)
@click.argument("outdir", required=False, type=click.Path(file_okay=False))
@click.option(
    "--show-preset", metavar="NAME", help="Print a preset's complete YAML (ready to edit) and exit."
)
@click.option("-j", "--processes", type=int, default=None, help="Parallel processes (default: all cores).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@handle_errors
def simulate(
    config: str | None, outdir: str | None, show_preset: str | None, processes: int | None, no_progress: bool
) -> None:
    """Simulate a survey: raw files, calibration exposures, reference catalog and truth.

    CONFIG is a simulation YAML or a preset name (tiny, small, ...); OUTDIR receives raw/, truth/, refcat/,
    camera.yaml and sim_config.yaml.
    """
    from ..sim import load_sim_config, preset_yaml
    from ..sim import simulate as run_simulation

    if show_preset:
        click.echo(preset_yaml(show_preset), nl=False)
        return
    if config is None or outdir is None:
        raise click.UsageError("give CONFIG and OUTDIR (or --show-preset NAME)")
    _check_processes(processes)
    cfg = load_sim_config(config)
    result = run_simulation(cfg, Path(outdir), processes=processes, progress=not no_progress)
    n_raw = len(result.science_raws) + len(result.calib_raws)
    click.echo(
        f"simulated {n_raw} raw files ({len(result.science_raws)} science, "
        f"{len(result.calib_raws)} calibration), "
        f"{result.n_stars} stars, {result.n_galaxies} galaxies, {result.n_refcat} reference stars"
        f" in {result.elapsed_s:.1f} s -> {outdir}"
    )


# ---------------------------------------------------------------------------------------------- init
def _skymap_config_from(path: str | None) -> Any:
    import yaml

    from ..skymap import SkyMapConfig

    if path is None:
        return SkyMapConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OpenDRPError(f"cannot read sky map config ({exc})", where=path) from exc
    if isinstance(data, dict) and "skymap" in data:  # a simulation config: take its skymap section
        data = data["skymap"]
    return SkyMapConfig.from_dict(data)


@cli.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.option("--camera", default="hsc", show_default=True, help="Camera: a built-in name or a camera YAML.")
@click.option(
    "--skymap-config",
    type=click.Path(dir_okay=False, exists=True),
    help="Sky map YAML (or a simulation config with a skymap: section). Default: HSC-like rings.",
)
@click.option(
    "--registry-db",
    metavar="URL",
    help="Registry database URL, e.g. postgresql://user@host:5432/db (default: SQLite in REPO). "
    "Passwords go in ~/.lsst/db-auth.yaml, not in the URL.",
)
@handle_errors
def init(repo: str, camera: str, skymap_config: str | None, registry_db: str | None) -> None:
    """Create a data repository with the camera and the sky map registered."""
    from ..instrument import load_camera
    from ..repo import create_repo

    cam = load_camera(camera)
    create_repo(repo, camera=cam, skymap_config=_skymap_config_from(skymap_config), registry_db=registry_db)
    click.echo(f"created repository {repo} (instrument {cam.name}, {len(cam.detectors)} detectors)")


# ---------------------------------------------------------------------------------------------- ingest
#: file names a directory is searched for (any case): the raw format's documented extensions
RAW_SUFFIXES = (".fits", ".fit")


def _expand(paths: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """Files to ingest (directories searched recursively for `RAW_SUFFIXES`, any case), and the other
    files found in those directories (skipped; reported), hidden files aside."""
    out: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if not f.is_file() or f.name.startswith("."):
                    continue
                (out if f.suffix.lower() in RAW_SUFFIXES else skipped).append(f)
        else:
            out.append(path)
    return out, skipped


def _is_compressed_fits(path: Path) -> bool:
    suffixes = [x.lower() for x in path.suffixes[-2:]]
    return len(suffixes) == 2 and suffixes[0] in RAW_SUFFIXES and suffixes[1] in (".fz", ".gz", ".bz2")


@cli.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.argument("files", nargs=-1)
@click.option(
    "--transfer",
    default="copy",
    show_default=True,
    type=click.Choice(["copy", "link", "hardlink", "symlink", "relsymlink", "move", "direct"]),
    help="How raw files enter the repository.",
)
@click.option(
    "--refcat",
    type=click.Path(exists=True),
    help="Reference catalog to ingest: a parquet file or a directory of shards (stored as ref_cat).",
)
@click.option("--no-progress", is_flag=True)
@handle_errors
def ingest(repo: str, files: tuple[str, ...], transfer: str, refcat: str | None, no_progress: bool) -> None:
    """Ingest raw files (and directories of them) and, optionally, a reference catalog.

    Bad files are reported one per line and skipped; every good file is still ingested; the exit status is
    non-zero if any file failed.
    """
    from tqdm import tqdm

    from ..repo import ingest_raws, ingest_refcat, open_butler

    butler = open_butler(repo, writeable=True)
    if refcat:
        n = ingest_refcat(butler, refcat)
        click.echo(f"reference catalog: {n} new shards")
    paths, skipped = _expand(files)
    compressed = [f for f in skipped if _is_compressed_fits(f)]
    for f in skipped:
        if f in compressed:
            click.echo(
                f"error: {f}: compressed raw files are not ingested -- uncompress it first "
                "(funpack, gunzip): raw files end in .fits or .fit",
                err=True,
            )
        else:
            click.echo(f"skipped: {f}: not a raw file name (raw files end in .fits or .fit)", err=True)
    if not paths:
        if not refcat:
            raise ConfigurationError(
                "no raw files to ingest" + (f" ({len(skipped)} other files skipped)" if skipped else ""),
                where=" ".join(files) or "FILES",
                fix="give raw files (.fits, .fit) or directories holding them",
            )
        return
    with tqdm(total=len(paths), desc="ingest", unit="file", disable=no_progress) as bar:
        report = ingest_raws(butler, paths, transfer=transfer, progress=bar.update)
    for _path, reason in report.failed:
        click.echo(f"error: {reason}", err=True)
    click.echo(
        f"ingested {len(report.ingested)} files ({len(report.exposures)} exposures, "
        f"{len(report.visits)} visits); {len(report.skipped)} already present; {len(report.failed)} failed"
    )
    if report.failed or compressed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- run
@cli.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.option(
    "--steps",
    default="calibs,drp",
    show_default=True,
    help="Comma-separated steps: calibs (bias, dark, flat, defects), drp.",
)
@click.option("--output", help="Output collection (default: {instrument}/runs/drp).")
@click.option("--where", default="", help="Extra data query for the drp step, e.g. \"band IN ('g','r')\".")
@click.option(
    "--export-objects", type=click.Path(dir_okay=False), help="Write the Object table here (parquet)."
)
@click.option(
    "-j",
    "--processes",
    type=int,
    default=None,
    help="Warm worker processes on this machine [default: number of cores]; 1 runs in this process.",
)
@click.option("--retries", type=int, default=3, show_default=True, help="Retries of a transient failure.")
@click.option(
    "--executor",
    type=click.Choice(["local", "parsl"]),
    default="local",
    show_default=True,
    help="local: warm processes on this machine (-j); parsl: Parsl workers on --site (quantum-backed I/O).",
)
@click.option(
    "--site",
    default="local",
    show_default=True,
    help="Parsl site YAML (or local, slurm, pbs: opendrp/execution/sites/) for --executor parsl.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip quanta already done in the output collection (rerun the same command to finish a campaign).",
)
@click.option("--no-progress", is_flag=True)
@handle_errors
def run(
    repo: str,
    steps: str,
    output: str | None,
    where: str,
    export_objects: str | None,
    processes: int | None,
    retries: int,
    executor: str,
    site: str,
    resume: bool,
    no_progress: bool,
) -> None:
    """Run the Data Release Production on everything ingested in REPO.

    Running the same command again after an interruption (or a failure) finishes the campaign: what is
    already done is kept and not run again.
    """
    from ..execution import STEPS, export_object_table, run_drp
    from ..execution.runner import ExecutionOptions
    from ..repo.butler import check_collection_name

    _check_processes(processes)
    if retries < 0:
        raise ConfigurationError(f"{retries} retries", where="--retries", fix="give 0 or more")
    step_list = [s.strip() for s in steps.split(",") if s.strip()]
    if not step_list:
        raise ConfigurationError("no step given", where="--steps", fix=f"give some of {','.join(STEPS)}")
    if output is not None:
        check_collection_name(output, where="--output")
    if export_objects and Path(export_objects).is_dir():
        raise ConfigurationError(
            "is a directory", where=f"--export-objects {export_objects}", fix="give a parquet file name"
        )
    options = ExecutionOptions(
        processes=processes or os.cpu_count() or 1, retries=retries, executor=executor, site=site
    )
    reports = run_drp(
        repo,
        steps=step_list,
        output=output,
        where=where,
        progress=not no_progress,
        options=options,
        resume=resume,
    )
    n_failed = 0
    for rep in reports:
        click.echo(rep.summary())
        if rep.failed or rep.skipped or rep.retried:
            click.echo(rep.failure_report(), err=True)
        for line in rep.refused:
            click.echo(f"refused: {line}", err=True)
        if rep.report_path:
            click.echo(f"  report: {rep.report_path}")
        n_failed += len(rep.failed)
    if export_objects and reports:
        table = export_object_table(repo, reports[-1].output_chain, export_objects)
        click.echo(f"Object table: {len(table)} rows -> {export_objects}")
    if n_failed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--preset", default="small", show_default=True, help="Simulation preset.")
@click.option(
    "--sim-config", type=click.Path(dir_okay=False, exists=True), help="Simulation YAML (overrides --preset)."
)
@click.option("--out", "outdir", default="demo_output", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "-j", "--processes", type=int, default=None, help="Processes (simulation and DRP) [default: cores]."
)
@click.option("--no-progress", is_flag=True)
@handle_errors
def demo(preset: str, sim_config: str | None, outdir: str, processes: int | None, no_progress: bool) -> None:
    """Simulate a survey, build a repository, run the whole DRP, verify it, and say where results are.

    Exits 0 when the chain ran, whatever the verdicts of the verification (they are results).
    """
    from .demo import run_demo

    _check_processes(processes)
    run_demo(
        sim_config or preset, Path(outdir), processes=processes, progress=not no_progress, echo=click.echo
    )


def _register_commands() -> None:
    from .dashboard import dashboard
    from .verify import verify

    cli.add_command(verify)
    cli.add_command(dashboard)


_register_commands()


def main() -> None:
    cli(prog_name="opendrp")


if __name__ == "__main__":
    main()
