"""The metrics dashboard: static pages that chart every metric of a repository's verify runs.

`write_dashboard` reads the metrics store (`opendrp.verify.history`) and writes into ``out_dir``

- ``index.html``: for each collection, the table of its runs (time, collection, openDRP version, config
  digest, thresholds version, status), the regressions of its latest run against the previous run of the
  same collection (previous and current values, in red), a chart of every SRD metric across the runs, and
  the test cases with their latest status, each linked to its page;
- ``case-<ID>.html`` for every test case: its status in each run and a chart of every check across runs.

The pages are readable offline: no network, no CDN.  The data of the charts are embedded as JSON in each
page and drawn into SVG by a small inline vanilla-JS renderer (``dashboard_assets.html``): per chart, the x
axis is every run of the collection (labelled ``#id``), the y axis the value with its unit, one point per
measured run joined by a line, the threshold as a dashed line (both signs for ``abs<=``), regressed points
in red, and the chart framed in red when the latest run regressed (regression rule: `opendrp.verify.history`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from .history import TOLERANCE, History, Regression, RunRecord, Series, load_history

__all__ = ["case_page_name", "dashboard_pages", "write_dashboard"]


def write_dashboard(repo: str | Path, out_dir: str | Path, *, history: History | None = None) -> list[Path]:
    """Write the dashboard of a repository's metrics history into ``out_dir``; return the pages written.

    Parameters
    ----------
    history : `History`, optional
        The history already read by `load_history` (default: read it from ``repo``).

    Raises
    ------
    RepositoryError
        No such repository, or its metrics store is not readable (`opendrp.verify.history.load_history`).
    """
    pages = dashboard_pages(load_history(repo) if history is None else history, repo=str(repo))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in pages.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        paths.append(path)
    return paths


def dashboard_pages(history: History, *, repo: str = "") -> dict[str, str]:
    """Every page of the dashboard of ``history``: file name -> HTML text."""
    cases = sorted({s.case_id for s in history.series if s.case_id is not None})
    pages = {"index.html": _index_page(history, cases, repo=repo)}
    for case_id in cases:
        pages[case_page_name(case_id)] = _case_page(history, case_id, repo=repo)
    return pages


def case_page_name(case_id: str) -> str:
    """The file name of a test case's page: ``case-DRP-00-15.html``."""
    return "case-" + re.sub(r"[^A-Za-z0-9_.-]", "_", case_id) + ".html"


# ---------------------------------------------------------------------------------------------- pages
def _index_page(history: History, cases: list[str], *, repo: str) -> str:
    charts: dict[str, Any] = {}
    latest = history.latest_regressions()
    body = [
        "<h1>openDRP metrics history</h1>",
        f"<p>Repository <code>{escape(repo)}</code>: {len(history.runs)} verify runs in "
        f"{len(history.collections())} collection(s). Each run is compared with the previous run of the "
        "same collection; a regression is a status that got worse or a value that moved in its worse "
        f"direction by more than {100 * TOLERANCE:g} % of the threshold or of the previous value (the "
        "larger); diagnostic metrics without a direction are charted, not flagged.</p>",
    ]
    for collection in history.collections():
        regs = [g for g in latest if g.collection == collection]
        metric_series = [s for s in _series_of(history, collection) if s.kind == "metric"]
        body += [
            f'<section class="collection" data-collection="{escape(collection)}">',
            f"<h2>Collection <code>{escape(collection)}</code></h2>",
            _runs_table(history.runs_of(collection)),
            _regressions_box(regs, history, collection),
            "<h3>Metrics</h3>",
            _charts(metric_series, regs, charts) if metric_series else "<p>No metric recorded.</p>",
            "<h3>Test cases</h3>",
            _cases_table(history, collection, cases, regs),
            "</section>",
        ]
    return _page("openDRP metrics history", body, history, charts)


def _case_page(history: History, case_id: str, *, repo: str) -> str:
    charts: dict[str, Any] = {}
    title = history.case_titles.get(case_id, "")
    latest = history.latest_regressions()
    body = [
        '<p><a href="index.html">&larr; metrics history</a></p>',
        f"<h1>{escape(case_id)}: {escape(title)}</h1>",
        f"<p>Repository <code>{escape(repo)}</code>.</p>",
    ]
    for collection in history.collections():
        series = [s for s in _series_of(history, collection) if s.case_id == case_id]
        if not series:
            continue
        regs = [g for g in latest if g.collection == collection and g.case_id == case_id]
        checks = [s for s in series if s.kind == "check"]
        body += [
            f'<section class="collection" data-collection="{escape(collection)}">',
            f"<h2>Collection <code>{escape(collection)}</code></h2>",
            _status_strip(series, history.runs_of(collection)),
            _regressions_box(regs, history, collection),
            "<h3>Checks</h3>",
            _charts(checks, regs, charts) if checks else "<p>No check recorded.</p>",
            "</section>",
        ]
    return _page(f"{case_id} metrics history", body, history, charts)


def _page(title: str, body: list[str], history: History, charts: dict[str, Any]) -> str:
    data = {"runs": {c: [_run_json(r) for r in history.runs_of(c)] for c in history.collections()}}
    data["charts"] = charts
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    assets = (resources.files("opendrp.verify") / "dashboard_assets.html").read_text(encoding="utf-8")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<link rel="icon" href="data:,">',
            f"<title>{escape(title)}</title></head><body>",
            *body,
            f'<script type="application/json" id="dashboard-data">{payload}</script>',
            assets,
            "</body></html>",
            "",
        ]
    )


# ---------------------------------------------------------------------------------------------- parts
def _series_of(history: History, collection: str) -> list[Series]:
    return [s for s in history.series if s.collection == collection]


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {"id": run.id, "label": f"#{run.id}", "time": run.time}


def _status(status: str | None) -> str:
    text = status or "–"
    return f'<span class="status-{escape(text.replace(" ", "-"))}">{escape(text)}</span>'


def _runs_table(runs: list[RunRecord]) -> str:
    rows = [
        "<table class='runs'><tr><th>run</th><th>time (UTC)</th><th>collection</th><th>openDRP</th>"
        "<th>config digest</th><th>thresholds</th><th>status</th></tr>"
    ]
    for r in runs:
        rows.append(
            f"<tr class='run' data-run='{r.id}'><td>#{r.id}</td><td>{escape(r.time)}</td>"
            f"<td>{escape(r.collection)}</td><td>{escape(r.opendrp_version)}</td>"
            f"<td><code>{escape(r.config_digest or '–')}</code></td>"
            f"<td>{escape(r.thresholds_version or '–')}</td><td>{_status(r.status)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _regressions_box(regs: list[Regression], history: History, collection: str) -> str:
    runs = history.runs_of(collection)
    if len(runs) < 2:
        return "<p class='no-regression'>Only one run: nothing to compare with yet.</p>"
    if not regs:
        return (
            f"<p class='no-regression'>No regression in run #{runs[-1].id} against the previous run "
            f"#{runs[-2].id}.</p>"
        )
    units = {(s.kind, s.case_id, s.key): s.unit for s in _series_of(history, collection)}
    items = [_regression_item(g, units.get((g.kind, g.case_id, g.key), "")) for g in regs]
    return (
        f"<div class='regressions'><h3>{len(regs)} regression(s) in run #{regs[0].run} against the "
        f"previous run #{regs[0].previous_run}</h3><ul>" + "".join(items) + "</ul></div>"
    )


def _regression_item(g: Regression, unit: str) -> str:
    if g.case_id is None:
        link = escape(g.key)
    else:
        name = f"{g.case_id} " + ("(test case status)" if g.kind == "case" else g.key)
        link = f"<a href='{case_page_name(g.case_id)}'>{escape(name)}</a>"
    change = ("status " if g.why == "status" else "") + _regression_text(g, unit)
    return f"<li class='regression' data-key='{escape(g.key)}'>{link}: {change}</li>"


def _fmt(value: float | None, unit: str) -> str:
    return "–" if value is None else escape(f"{value:.4g} {unit}".strip())


def _charts(series: Iterable[Series], regs: list[Regression], charts: dict[str, Any]) -> str:
    """The figures of ``series`` (their data go into ``charts``), framed red when the latest run regressed."""
    flagged = {(g.kind, g.case_id, g.key): g for g in regs}
    parts = ["<div class='charts'>"]
    for s in series:
        chart_id = f"c{len(charts)}"
        charts[chart_id] = _chart_json(s)
        g = flagged.get((s.kind, s.case_id, s.key))
        flag = "" if g is None else f"<span class='flag'>regressed: {_regression_text(g, s.unit)}</span>"
        parts.append(
            f"<figure class='chart{' regressed' if g else ''}' data-chart='{chart_id}' "
            f"data-key='{escape(s.key)}' data-points='{sum(p.value is not None for p in s.points)}'>"
            f"<figcaption><code>{escape(s.key)}</code> ({escape(s.unit or 'no unit')}){flag}</figcaption>"
            "<div class='plot'></div></figure>"
        )
    parts.append("</div>")
    return "\n".join(parts)


def _regression_text(g: Regression, unit: str) -> str:
    if g.why == "status":
        return f"{escape(g.previous_status or '')} &rarr; {escape(g.current_status or '')}"
    return f"{_fmt(g.previous_value, unit)} &rarr; {_fmt(g.current_value, unit)}"


def _chart_json(s: Series) -> dict[str, Any]:
    regressed = {g.run for g in s.regressions()}
    return {
        "key": s.key,
        "collection": s.collection,
        "unit": s.unit,
        "threshold": s.threshold,
        "comparison": s.comparison,
        "points": [
            {"run": p.run, "value": p.value, "status": p.status, "regressed": p.run in regressed}
            for p in s.points
        ],
    }


def _cases_table(history: History, collection: str, cases: list[str], regs: list[Regression]) -> str:
    rows = [
        "<table class='cases'><tr><th>test case</th><th>title</th><th>latest status</th><th>checks</th>"
        "<th>regressions</th></tr>"
    ]
    series = _series_of(history, collection)
    for case_id in cases:
        status = next((s for s in series if s.kind == "case" and s.case_id == case_id), None)
        if status is None:
            continue
        n_checks = sum(s.kind == "check" and s.case_id == case_id for s in series)
        n_regs = sum(g.case_id == case_id for g in regs)
        reg_cell = f"<span class='status-fail'>{n_regs}</span>" if n_regs else "0"
        rows.append(
            f"<tr><td><a href='{case_page_name(case_id)}'>{escape(case_id)}</a></td>"
            f"<td>{escape(history.case_titles.get(case_id, ''))}</td>"
            f"<td>{_status(status.points[-1].status)}</td><td>{n_checks}</td><td>{reg_cell}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _status_strip(series: list[Series], runs: list[RunRecord]) -> str:
    case = next((s for s in series if s.kind == "case"), None)
    by_run = {} if case is None else {p.run: p.status for p in case.points}
    head = "".join(f"<th>#{r.id}</th>" for r in runs)
    cells = "".join(f"<td>{_status(by_run.get(r.id))}</td>" for r in runs)
    return f"<table class='strip'><tr><th>run</th>{head}</tr><tr><th>status</th>{cells}</tr></table>"
