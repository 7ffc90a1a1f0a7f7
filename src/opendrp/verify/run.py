"""`run_verify`: every DRP-00 test case against one collection of a repository, then the report and history.

Computation and reporting are apart: the cases compute checks and metrics (`opendrp.verify.cases`), this
module assembles them into the verify.json document, `opendrp.verify.report` writes verify.json, verify.md and
index.html from that document alone, and `opendrp.verify.history` appends the run's metrics to the metrics
store of the repository.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import opendrp

from ..errors import ConfigurationError, OpenDRPError
from .cases import case_functions
from .context import VerifyContext, default_collection
from .model import CaseResult, Check, Status
from .thresholds import Thresholds, load_thresholds

__all__ = ["VERIFY_SCHEMA_VERSION", "overall_status", "run_verify"]

VERIFY_SCHEMA_VERSION = 1

_log = logging.getLogger(__name__)


def run_verify(
    repo: str | Path,
    *,
    out_dir: str | Path,
    collection: str | None = None,
    truth: str | Path | None = None,
    thresholds: str | Path | Thresholds | None = None,
    cases: Sequence[str] | None = None,
    make_plots: bool = True,
    record_history: bool = True,
    debug: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the DRP-00 test cases and write ``out_dir/verify.json``, ``verify.md``, ``index.html``.

    Parameters
    ----------
    collection : `str`, optional
        The collection to verify (default: ``{instrument}/runs/drp``).
    truth : path, optional
        The simulator's ``truth.parquet``: adds the checks against the truth (simulations only).
    thresholds : path or `Thresholds`, optional
        A YAML file merged over the shipped thresholds.
    cases : sequence of `str`, optional
        Only these cases (default: all).
    record_history : `bool`
        Append the metrics to the repository's metrics store (``opendrp dashboard`` charts them).
    debug : `bool`
        Let an error inside a case propagate (default: the case fails with a one-line reason).
    """
    th = thresholds if isinstance(thresholds, Thresholds) else load_thresholds(thresholds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth_path = None if truth is None else Path(truth)
    if truth_path is not None and not truth_path.exists():
        raise ConfigurationError(
            "no such truth file", where=str(truth_path), fix="give the simulator's truth.parquet"
        )
    ctx = VerifyContext(
        Path(repo),
        collection or default_collection(repo),
        out,
        truth_path=truth_path,
        make_plots=make_plots,
    )
    _check_collection(ctx)
    functions = case_functions()
    selected = list(functions) if not cases else list(cases)
    unknown = [c for c in selected if c not in functions]
    if unknown:
        raise ConfigurationError(f"unknown test case(s) {unknown}", fix=f"cases are {list(functions)}")
    results: list[CaseResult] = []
    for case_id in selected:
        if echo is not None:
            echo(f"verify {case_id} ({len(results) + 1}/{len(selected)}) ...")
        results.append(_run_case(case_id, functions[case_id], ctx, th, debug=debug))
    doc = _document(ctx, th, results)
    from .report import write_report

    write_report(doc, out)
    if record_history:
        _record(Path(repo), doc, echo)
    return doc


def _record(repo: Path, doc: dict[str, Any], echo: Callable[[str], None] | None) -> None:
    """Append the run to the metrics store; a store that cannot be written is a warning (report written)."""
    from .history import append_run

    try:
        append_run(repo, doc)
    except OpenDRPError as exc:
        _log.warning("the metrics of this run were not recorded in the history: %s", exc.one_line())
        if echo is not None:
            echo(f"warning: metrics not recorded in the history: {exc.one_line()}")


def _check_collection(ctx: VerifyContext) -> None:
    from ..repo.butler import collection_exists

    if not collection_exists(ctx.butler, ctx.collection):
        raise ConfigurationError(
            "no such collection in the repository",
            where=f"{ctx.repo}: {ctx.collection}",
            fix="give --collection (`butler query-collections REPO` lists them)",
        )


def _run_case(case_id: str, func: Any, ctx: VerifyContext, th: Thresholds, *, debug: bool) -> CaseResult:
    try:
        result: CaseResult = func(ctx, th)
        return result
    except Exception as exc:
        if debug:
            raise
        what = exc.one_line() if isinstance(exc, OpenDRPError) else f"{type(exc).__name__}: {exc}"
        _log.error("verification of %s raised %s", case_id, what)
        _log.debug("%s", traceback.format_exc())
        check = Check(
            name="verification_error",
            value=None,
            unit="",
            threshold=None,
            comparison="==",
            status=Status.FAIL,
            reason=f"the verification itself failed: {what} (rerun with --debug for the traceback)",
        )
        return CaseResult(case_id, th.title(case_id), th.section(case_id), checks=[check])


def overall_status(results: Sequence[CaseResult]) -> Status:
    """fail if any case fails; pass if all pass; partial otherwise."""
    statuses = [r.status for r in results]
    if Status.FAIL in statuses:
        return Status.FAIL
    if all(s == Status.PASS for s in statuses):
        return Status.PASS
    return Status.PARTIAL


def _document(ctx: VerifyContext, th: Thresholds, results: list[CaseResult]) -> dict[str, Any]:
    return {
        "schema_version": VERIFY_SCHEMA_VERSION,
        "opendrp_version": opendrp.__version__,
        "software": software_versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "repo": str(ctx.repo),
        "collection": ctx.collection,
        "truth": None if ctx.truth_path is None else str(ctx.truth_path),
        "config_digest": config_digest(ctx),
        "thresholds": {"source": th.source, "version": th.version},
        "status": str(overall_status(results)),
        "test_cases": {r.case_id: r.to_json() for r in results},
        "metrics": ctx.metrics,
    }


def software_versions() -> dict[str, str]:
    """Versions of openDRP and of the middleware packages it runs on."""
    from importlib import metadata

    out = {"opendrp": opendrp.__version__}
    for name in ("lsst-daf-butler", "lsst-pipe-base", "numpy", "astropy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def config_digest(ctx: VerifyContext) -> str | None:
    """SHA-256 of every task configuration (``*_config`` datasets) of the collection, in task-name order."""
    names = sorted(t for t in ctx.dataset_types() if t.endswith("_config"))
    if not names:
        return None
    digest = hashlib.sha256()
    for name in names:
        for ref in ctx.refs(name):
            digest.update(name.encode())
            digest.update(ctx.get(ref).saveToString().encode())
    return digest.hexdigest()[:16]
