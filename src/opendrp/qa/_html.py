"""The QA HTML page: one self-contained file (inline CSS) with the PNG figures written beside it."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["write_html"]

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eee; } td.l, th.l { text-align: left; }
.pass { background: #c8f0c8; } .fail { background: #f6c0c0; } .nodata { background: #f3e3a6; }
.ok { font-size: 1.3em; font-weight: bold; padding: 4px 10px; display: inline-block; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
code { background: #f4f4f4; padding: 1px 3px; }
"""


def _fmt(q: Any, digits: int = 4) -> str:
    """Format a {"value", "unit"} quantity or a bare value."""
    if isinstance(q, dict) and "value" in q:
        v, unit = q["value"], q.get("unit", "")
    else:
        v, unit = q, ""
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return str(v)
    if unit == "fraction" and isinstance(v, int | float):
        return f"{100.0 * v:.{digits}g} %"
    if isinstance(v, int):
        text = str(v)
    elif isinstance(v, float):
        text = f"{v:.{digits}g}"
    else:
        text = escape(str(v))
    return f"{text} {escape(unit)}" if unit and unit not in ("count", "") else text


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th{' class=l' if i == 0 else ''}>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=l' if i == 0 else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _per_band_table(section: dict[str, Any], bands: list[str], keys: list[tuple[str, str]]) -> str:
    rows = [[label] + [_fmt(section.get(b, {}).get(k)) for b in bands] for k, label in keys]
    return _table(["metric"] + [escape(b) for b in bands], rows)


_PHOT_KEYS = [
    ("n", "stars used"),
    ("offset_median", "median (psfFlux - ref) / ref"),
    ("offset_scatter", "robust scatter of (psfFlux - ref) / ref"),
    ("mag_offset_median", "median mag - ref mag"),
    ("normalized_median", "median (psfFlux - ref) / psfFluxErr"),
    ("normalized_scatter", "robust scatter of (psfFlux - ref) / psfFluxErr"),
]
_AST_KEYS = [
    ("n", "stars used"),
    ("dra_median", "median RA cos(Dec) offset"),
    ("ddec_median", "median Dec offset"),
    ("dra_scatter", "robust scatter RA cos(Dec)"),
    ("ddec_scatter", "robust scatter Dec"),
    ("coord_scatter", "coordinate scatter (quadrature mean)"),
]


def write_html(path: Path, metrics: dict[str, Any]) -> None:
    """Write the QA page for ``metrics`` (the content of metrics.json) to ``path``."""
    bands: list[str] = metrics["bands"]
    parts: list[str] = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>openDRP QA</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>openDRP QA report</h1>",
    ]
    ok = metrics["ok"]
    parts.append(
        f"<p><span class='ok {'pass' if ok else 'fail'}'>overall: {'OK' if ok else 'FAILED'}</span> "
        f"&nbsp; created {escape(metrics['created'])}, openDRP {escape(metrics['opendrp_version'])}</p>"
    )

    parts.append("<h2>Checks</h2>")
    rows = []
    for c in metrics["checks"]:
        cls = {"pass": "pass", "fail": "fail"}.get(c["status"], "nodata")
        rows.append(
            [
                escape(c["name"]),
                _fmt({"value": c["value"], "unit": c["unit"]}),
                _fmt({"value": c["threshold"], "unit": c["unit"]}),
                f"<span class='{cls}'>&nbsp;{escape(c['status'])}&nbsp;</span>",
            ]
        )
    parts.append(_table(["check", "value", "threshold", "status"], rows))

    parts.append("<h2>Summary</h2>")
    parts.append(_table(["quantity", "value"], [[escape(k), _fmt(v)] for k, v in metrics["summary"].items()]))

    parts.append("<h2>Completeness (truth sources in the footprint matched to a primary object)</h2>")
    rows = []
    for b in bands:
        comp = metrics["completeness"][b]
        rows.append(
            [escape(b)] + [_fmt(comp[cls][k]) for cls in ("star", "galaxy") for k in ("mag_90", "mag_50")]
        )
    parts.append(_table(["band", "stars 90%", "stars 50%", "galaxies 90%", "galaxies 50%"], rows))

    snr = metrics["config"]["snr_min"]
    parts.append(f"<h2>Photometry vs truth (true stars, S/N &gt; {snr:g})</h2>")
    parts.append(_per_band_table(metrics["photometry"], bands, _PHOT_KEYS))
    parts.append(f"<h2>Astrometry vs truth (true stars, S/N &gt; {snr:g})</h2>")
    parts.append(_per_band_table(metrics["astrometry"], bands, _AST_KEYS))

    sg = metrics.get("star_galaxy")
    parts.append("<h2>Star/galaxy separation (refExtendedness)</h2>")
    if sg:
        parts.append(_table(["quantity", "value"], [[escape(k), _fmt(v)] for k, v in sg.items()]))
    else:
        parts.append("<p>No <code>refExtendedness</code> column in the object table.</p>")

    ref = metrics.get("refcat")
    if ref:
        parts.append(f"<h2>Versus the reference catalog ({escape(ref['selection'])})</h2>")
        parts.append(f"<p>{_fmt(ref['n_matched'])} of {_fmt(ref['n_refcat'])} reference sources matched.</p>")
        if ref["photometry"]:
            parts.append("<h3>Photometry</h3>")
            parts.append(_per_band_table(ref["photometry"], list(ref["photometry"]), _PHOT_KEYS))
        parts.append("<h3>Astrometry</h3>")
        parts.append(_per_band_table(ref["astrometry"], bands, _AST_KEYS))

    src = metrics.get("sources")
    if src:
        sb = list(src)
        parts.append(f"<h2>Single-visit sources vs truth (true stars, S/N &gt; {snr:g})</h2>")
        rows = [
            ["sources / matched to truth"]
            + [f"{_fmt(src[b]['n_sources'])} / {_fmt(src[b]['n_matched'])}" for b in sb]
        ]
        rows.append(["repeatability (median per-star rms)"] + [_fmt(src[b]["repeatability"]) for b in sb])
        parts.append(_table(["quantity"] + [escape(b) for b in sb], rows))
        parts.append("<h3>Photometry</h3>")
        parts.append(_per_band_table({b: src[b]["photometry"] for b in sb}, sb, _PHOT_KEYS))
        parts.append("<h3>Astrometry</h3>")
        parts.append(_per_band_table({b: src[b]["astrometry"] for b in sb}, sb, _AST_KEYS))

    figures: dict[str, str] = metrics.get("figures", {})
    if figures:
        parts.append("<h2>Figures</h2>")
        for name, fname in figures.items():
            parts.append(
                f"<h3>{escape(name.replace('_', ' '))}</h3><img src='{escape(fname)}' alt='{escape(name)}'>"
            )

    parts.append("<h2>Inputs and configuration</h2>")
    parts.append(
        _table(["input", "source"], [[escape(k), escape(str(v))] for k, v in metrics["inputs"].items()])
    )
    parts.append(f"<pre>{escape(json.dumps(metrics['config'], indent=1))}</pre>")
    parts.append("<p>All metrics, with units, are in <a href='metrics.json'>metrics.json</a>.</p>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts))
