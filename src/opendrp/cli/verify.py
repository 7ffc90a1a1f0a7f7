"""``opendrp verify``: the DRP-00 acceptance suite against a repository (and the installation check)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import handle_errors

__all__ = ["verify"]


@click.command()
@click.argument("repo", required=False, type=click.Path(file_okay=False))
@click.option("--collection", help="Collection to verify (default: {instrument}/runs/drp).")
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, exists=True),
    help="The simulator's truth.parquet: adds the checks against the truth (simulations only).",
)
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A YAML file of thresholds merged over the shipped ones (same shape as verify/thresholds.yaml).",
)
@click.option("--out", "outdir", type=click.Path(file_okay=False), help="Output directory of the report.")
@click.option("--case", "cases", multiple=True, help="Run only this test case (repeatable), e.g. DRP-00-15.")
@click.option("--no-plots", is_flag=True, help="Compute the checks without drawing the figures.")
@click.option(
    "--no-history", is_flag=True, help="Do not append the metrics to the repository's metrics store."
)
@click.option(
    "--demo-expected",
    "demo_dir",
    type=click.Path(file_okay=False),
    default=None,
    is_flag=False,
    flag_value="demo_output",
    help="Installation check (DRP-00-00): compare a demo's summary with the expected values shipped in the "
    "package and print 'ok' (default directory: demo_output).",
)
@handle_errors
def verify(
    repo: str | None,
    collection: str | None,
    truth: str | None,
    thresholds_file: str | None,
    outdir: str | None,
    cases: tuple[str, ...],
    no_plots: bool,
    no_history: bool,
    demo_dir: str | None,
) -> None:
    """Run the DRP-00 test cases on REPO; write OUT/verify.json, verify.md, index.html.

    Exit status 0 when no test case fails (pass, partial pass or not available), 1 when any fails.
    """
    from ..errors import ConfigurationError

    if demo_dir is not None:
        _installation_check(Path(demo_dir))
        return
    if repo is None or outdir is None:
        raise ConfigurationError(
            "REPO and --out are required", where="opendrp verify", fix="opendrp verify REPO --out DIR"
        )
    from ..verify import run_verify, summary_lines

    root = click.get_current_context().find_root()
    doc = run_verify(
        repo,
        out_dir=outdir,
        collection=collection,
        truth=truth,
        thresholds=thresholds_file,
        cases=list(cases) or None,
        make_plots=not no_plots,
        record_history=not no_history,
        debug=bool(root.params.get("debug")),
        echo=None,
    )
    for line in summary_lines(doc):
        click.echo(line)
    click.echo(f"report: {Path(outdir) / 'index.html'} (verify.json, verify.md beside it)")
    if doc["status"] == "fail":
        sys.exit(1)


def _installation_check(demo_dir: Path) -> None:
    """DRP-00-00: DEMO_DIR/summary.json against the expected values of its preset; prints ok or NOT ok."""
    import json

    from ..errors import ConfigurationError
    from ..verify.cases.installation import compare_with_expected, load_expected

    path = demo_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigurationError(
            "no demo summary (summary.json) here", where=str(demo_dir), fix="run `opendrp demo` first"
        ) from None
    preset = summary.get("preset")
    expected = load_expected(str(preset)) if preset else None
    if expected is None:
        raise ConfigurationError(
            f"no expected values shipped for the demo configuration {preset!r}",
            where=str(path),
            fix="the installation check compares the presets' demos (opendrp demo --preset tiny|small)",
        )
    ok, lines = compare_with_expected(summary, expected)
    for line in lines:
        click.echo(line)
    click.echo("ok" if ok else "NOT ok")
    if not ok:
        sys.exit(1)
