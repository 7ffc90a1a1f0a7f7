"""``opendrp dashboard``: static pages charting every metric of a repository's verify runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import handle_errors

__all__ = ["dashboard"]


@click.command()
@click.argument("repo", type=click.Path(file_okay=False))
@click.option(
    "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Output directory of the pages."
)
@handle_errors
def dashboard(repo: str, outdir: str) -> None:
    """Chart every metric of REPO's verify runs and flag the regressions against the previous run.

    Reads REPO/opendrp_verify/metrics.sqlite3 (every `opendrp verify REPO` appends to it) and writes
    OUT/index.html and one page per test case, readable offline.
    """
    from ..verify.dashboard import write_dashboard
    from ..verify.history import load_history, store_path

    history = load_history(repo)
    if not history.runs:
        click.echo(
            f"error: {repo}: no verify run recorded yet (no {store_path(repo)}) -- "
            f"run `opendrp verify {repo}`",
            err=True,
        )
        sys.exit(1)
    pages = write_dashboard(repo, outdir, history=history)
    regressions = history.latest_regressions()
    click.echo(
        f"dashboard of {len(history.runs)} verify runs in {len(history.collections())} collection(s), "
        f"{len(regressions)} regression(s) in the latest runs: {Path(outdir) / 'index.html'} "
        f"(+{len(pages) - 1} test-case pages)"
    )
