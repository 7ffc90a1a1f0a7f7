"""The verification report: verify.json, verify.md and index.html, written from the verify document alone.

verify.json is the document `run_verify` assembles (schema in docs/verification.md): ``test_cases`` with each
case's status and checks (name, value, unit, threshold, comparison, status, reason, reference section, plot),
and ``metrics`` (the SRD metrics per band).  verify.md is the summary table in the shape of reference 000 §4.1
(test case, status, comments) followed by every check.  index.html is one static page, readable offline (no
network, no CDN; the figures are PNG files in ``figures/`` beside it): the test-case table on top, each case's
checks below it, every check linked to its figure.
"""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["STATUS_LABELS", "html_report", "markdown_report", "summary_lines", "write_report"]

STATUS_LABELS = {"pass": "Pass", "partial": "Partial pass", "fail": "Fail", "not available": "Not available"}


def write_report(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write verify.json, verify.md and index.html into ``out_dir`` (each atomically); return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "verify.json": json.dumps(_json_safe(doc), indent=1, allow_nan=False) + "\n",
        "verify.md": markdown_report(doc),
        "index.html": html_report(doc),
    }
    paths = []
    for name, text in files.items():
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
        paths.append(path)
    return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _value(check: dict[str, Any]) -> str:
    v = check.get("value")
    if v is None:
        return "–"
    unit = check.get("unit", "")
    if unit == "fraction":
        return f"{100 * v:.3g} %"
    if unit == "bool":
        return "yes" if v else "no"
    text = f"{v:.4g}"
    return f"{text} {unit}" if unit and unit not in ("count",) else text


def _threshold(check: dict[str, Any]) -> str:
    t = check.get("threshold")
    if t is None:
        return "holds" if check.get("unit") == "bool" else "–"
    unit = check.get("unit", "")
    cmp = check.get("comparison", "<=").replace("abs<=", "|x| <=")
    if unit == "fraction":
        return f"{cmp} {100 * t:.3g} %"
    return f"{cmp} {t:g} {unit}".rstrip()


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------------------------- markdown
def markdown_report(doc: dict[str, Any]) -> str:
    """The report as markdown: the summary table (reference 000 §4.1), then each case's checks and tables."""
    lines = [
        f"# openDRP verification of `{doc.get('collection')}`",
        "",
        f"Repository `{doc.get('repo')}`, {doc.get('created')}, openDRP {doc.get('opendrp_version')}, "
        f"configuration digest `{doc.get('config_digest')}`, thresholds {doc['thresholds']['version']} "
        f"(`{doc['thresholds']['source']}`)"
        + (f", truth `{doc['truth']}`" if doc.get("truth") else "")
        + ".",
        "",
        f"Overall: **{STATUS_LABELS.get(doc['status'], doc['status'])}**",
        "",
        "| Test case | Status | Comments |",
        "|---|---|---|",
    ]
    for case_id, case in doc["test_cases"].items():
        lines.append(f"| {case_id} | {STATUS_LABELS[case['status']]} | {_md_cell(case['summary'])} |")
    for case_id, case in doc["test_cases"].items():
        lines += [
            "",
            f"## {case_id} {case['title']} ({case['section']}): {STATUS_LABELS[case['status']]}",
            "",
        ]
        if case["checks"]:
            lines += [
                "| Check | Status | Value | Threshold | Reference | Reason |",
                "|---|---|---|---|---|---|",
            ]
            for c in case["checks"]:
                lines.append(
                    f"| {_md_cell(c['name'])} | {c['status']} | {_md_cell(_value(c))} | "
                    f"{_md_cell(_threshold(c))} | {_md_cell(c.get('section', ''))} | "
                    f"{_md_cell(c['reason'])} |"
                )
        for name, rows in case.get("tables", {}).items():
            lines += ["", f"**{name}**", ""] + _md_table(rows)
    if doc.get("metrics"):
        lines += ["", "## SRD metrics", "", "| Metric | Scope | Value | n |", "|---|---|---|---|"]
        for name, scopes in doc["metrics"].items():
            for scope, m in scopes.items():
                v = m.get("value")
                text = "–" if v is None else f"{v:.4g} {m.get('unit', '')}".rstrip()
                lines.append(f"| {name} | {scope} | {text} | {m.get('n', '')} |")
    return "\n".join(lines) + "\n"


def _md_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(empty)"]
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_md_cell(_cell(r.get(c))) for c in cols) + " |")
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ------------------------------------------------------------------------------------------------- html
_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1500px; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em 0; font-size: 0.88em; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eee; }
.pass { background: #c8f0c8; } .fail { background: #f6c0c0; } .partial { background: #f3e3a6; }
.na { background: #e4e4e4; }
.overall { font-size: 1.3em; font-weight: bold; padding: 4px 10px; display: inline-block; }
img { max-width: 48%; border: 1px solid #ddd; margin: 0.3em; vertical-align: top; }
code { background: #f4f4f4; padding: 1px 3px; }
.small { color: #555; font-size: 0.85em; }
"""


def _cls(status: str) -> str:
    return {"pass": "pass", "fail": "fail", "partial": "partial"}.get(status, "na")


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def html_report(doc: dict[str, Any]) -> str:
    """The report as one static HTML page (inline CSS, figures linked from ``figures/``)."""
    cases = doc["test_cases"]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>openDRP verify: {escape(str(doc.get('collection')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>openDRP verification of <code>{escape(str(doc.get('collection')))}</code></h1>",
        f"<p class=small>{escape(_provenance_line(doc))}</p>",
        f"<p><span class='overall {_cls(doc['status'])}'>{STATUS_LABELS[doc['status']]}</span></p>",
        "<table id=summary><tr><th>Test case</th><th>Title</th><th>Status</th><th>Comments</th></tr>",
    ]
    for case_id, case in cases.items():
        parts.append(
            f"<tr><td><a href='#{case_id}'>{case_id}</a></td><td>{escape(case['title'])}</td>"
            f"<td class={_cls(case['status'])}>{STATUS_LABELS[case['status']]}</td>"
            f"<td>{escape(case['summary'])}</td></tr>"
        )
    parts.append("</table>")
    for case_id, case in cases.items():
        parts.append(_html_case(case_id, case))
    if doc.get("metrics"):
        parts.append(_html_metrics(doc["metrics"]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _provenance_line(doc: dict[str, Any]) -> str:
    truth = f"; truth {doc['truth']}" if doc.get("truth") else ""
    return (
        f"repository {doc.get('repo')}; {doc.get('created')}; openDRP {doc.get('opendrp_version')}; "
        f"configuration digest {doc.get('config_digest')}; thresholds {doc['thresholds']['version']} "
        f"({doc['thresholds']['source']}){truth}"
    )


def _html_case(case_id: str, case: dict[str, Any]) -> str:
    parts = [
        f"<h2 id='{case_id}'>{case_id} {escape(case['title'])} "
        f"<span class={_cls(case['status'])}>{STATUS_LABELS[case['status']]}</span></h2>",
        f"<p class=small>reference {escape(case['section'])}</p>",
    ]
    figures: list[str] = []
    problems = [c for c in case["checks"] if c["status"] != "pass"]
    passing = [c for c in case["checks"] if c["status"] == "pass"]
    if problems:
        parts.append(_html_checks(problems, figures))
    if passing:
        parts.append(
            f"<details{' open' if len(passing) <= 12 else ''}>"
            f"<summary>{len(passing)} passing checks</summary>"
            + _html_checks(passing, figures)
            + "</details>"
        )
    for name, rows in case.get("tables", {}).items():
        parts.append(f"<h3>{escape(name)}</h3>" + _html_table(rows))
    for fig in case.get("figures", []):
        if fig not in figures:
            figures.append(fig)
    for fig in figures:
        parts.append(
            f"<a href='{escape(fig)}'><img id='fig-{_anchor(fig)}' src='{escape(fig)}' "
            f"alt='{escape(fig)}'></a>"
        )
    return "\n".join(parts)


def _html_checks(checks: list[dict[str, Any]], figures: list[str]) -> str:
    """A table of checks, each linked to its figure (collected in ``figures`` to show below)."""
    rows = [
        "<table><tr><th>Check</th><th>Status</th><th>Value</th><th>Threshold</th><th>Reference</th>"
        "<th>Reason</th><th>Plot</th></tr>"
    ]
    for c in checks:
        plot = c.get("plot")
        link = ""
        if plot:
            if plot not in figures:
                figures.append(plot)
            link = f"<a href='#fig-{_anchor(plot)}'>plot</a>"
        rows.append(
            f"<tr><td>{escape(c['name'])}</td><td class={_cls(c['status'])}>{escape(c['status'])}</td>"
            f"<td>{escape(_value(c))}</td><td>{escape(_threshold(c))}</td>"
            f"<td>{escape(c.get('section', ''))}</td><td>{escape(c['reason'])}</td><td>{link}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_metrics(metrics: dict[str, Any]) -> str:
    rows = []
    for name, scopes in metrics.items():
        for scope, m in scopes.items():
            v = m.get("value")
            rows.append(
                {
                    "metric": name,
                    "scope": scope,
                    "value": None if v is None else float(v),
                    "unit": m.get("unit", ""),
                    "n": m.get("n"),
                }
            )
    return "<h2 id=metrics>SRD metrics</h2>" + _html_table(rows)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The test-case table for a terminal: one line per case, status and comments."""
    lines = [f"{'Test case':<10} {'Status':<13} Comments"]
    for case_id, case in doc["test_cases"].items():
        lines.append(f"{case_id:<10} {STATUS_LABELS[case['status']]:<13} {case['summary']}")
    return lines
