"""DRP-00-00, installation of the DRP science payload (reference 000 §5.1): a fresh demo's summary figures
against the expected values shipped in the package (the ``bin/compare expected/...`` of DMTR-51).

`demo_summary` computes the summary figures of a processed demo repository, chosen to be deterministic for a
given preset on any machine (counts and robust medians, not exact floats):

- counts: ``n_raw`` (raw datasets ingested), ``n_calexp``, ``n_src_rows`` (rows of every ``src``),
  ``n_warp``, ``n_coadd``, ``n_object`` (rows of ``objectTable_tract``), ``n_primary``
  (``detect_isPrimary``);
- per band: ``n_calexp[b]``, ``psf_fwhm_median[b]`` (median ``PSF_FWHM`` header card of the calexps,
  arcsec), ``zero_point_median[b]`` (median ``ZEROPT``, AB mag), ``psf_flux_offset_median[b]`` (median of
  ``psfFlux / ref_flux - 1`` of primary point-like objects with S/N > `BRIGHT_SNR` matched to the
  reference catalog within `MATCH_RADIUS_ARCSEC`).

`compare_with_expected` compares a summary with an expected file: each figure passes when
``|value - expected| <= tolerance`` (``"abs"``) or ``<= tolerance * |expected|`` (``"rel"``); a figure missing
from the summary fails; figures of the summary that the file lacks are listed, not failed.

Expected files (``opendrp/verify/expected/{preset}.json``) hold, per figure, its ``value``, its
``tolerance``, its ``kind`` and ``why`` that tolerance.  In ``opendrp verify``, the check ``demo_expected``
compares when the repository is a demo output (``DEMO_DIR/summary.json`` beside ``DEMO_DIR/repo``, naming a
preset that has an expected file), else it is "not available" with the reason.

Maintainers regenerate an expected file from a demo output (the science issues change the figures), keeping
the tolerances and reasons of figures already there::

    python -m opendrp.verify.cases.installation --write-expected DEMO_DIR [--preset tiny]

Cost of `demo_summary`: the calexp headers, one column of each ``src`` and the Object table, and the
reference catalog (a few seconds for the demos).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds

__all__ = [
    "DEFAULT_TOLERANCES",
    "compare_with_expected",
    "demo_summary",
    "expected_path",
    "load_expected",
    "main",
    "make_expected",
    "run",
]

SUMMARY_SCHEMA_VERSION = 1
#: reference-catalog match radius for the photometric offset (arcsec)
MATCH_RADIUS_ARCSEC = 0.5
#: minimum psfFlux S/N of the objects in the photometric offset
BRIGHT_SNR = 50.0
#: maximum refExtendedness of a point-like object
POINT_LIKE_MAX_EXTENDEDNESS = 0.5
#: name of a demo's summary file (in DEMO_DIR, beside DEMO_DIR/repo)
SUMMARY_FILE = "summary.json"

#: tolerance of each figure (by name without the band): (kind, tolerance, why)
DEFAULT_TOLERANCES: dict[str, tuple[str, float, str]] = {
    "n_raw": ("abs", 0.0, "the simulated survey fixes the raws: any difference is a broken ingest"),
    "n_calexp": ("abs", 0.0, "one calexp per raw science CCD; a difference is a failed quantum"),
    "n_warp": ("abs", 0.0, "set by the sky map and the visit footprints (no pixel noise)"),
    "n_coadd": ("abs", 0.0, "set by the sky map and the visit footprints (no pixel noise)"),
    "n_src_rows": (
        "rel",
        0.01,
        "detections near the 5 sigma threshold can flip with last-bit float differences across CPUs/BLAS",
    ),
    "n_object": ("rel", 0.01, "as src rows: threshold detections on the coadds"),
    "n_primary": ("rel", 0.01, "as src rows: threshold detections on the coadds"),
    "psf_fwhm_median": ("abs", 0.01, "arcsec; a median over CCDs, stable to ~1 mas across runs"),
    "zero_point_median": ("abs", 0.005, "mag; a median over CCDs of a fit to hundreds of stars"),
    "psf_flux_offset_median": ("abs", 0.002, "fraction; a median over hundreds of bright stars"),
}


# --------------------------------------------------------------------------------------------- summary


def demo_summary(
    repo: str | Path, collection: str | None = None, *, preset: str | None = None
) -> dict[str, Any]:
    """The summary figures of a processed demo repository (figures: module docstring).

    Parameters
    ----------
    repo : path
        The demo's Butler repository (``DEMO_DIR/repo``).
    collection : `str`, optional
        The DRP output collection (default ``{instrument}/runs/drp``).
    preset : `str`, optional
        The simulation preset of the demo (recorded in the summary).

    Returns
    -------
    summary : `dict`
        ``{"schema_version", "preset", "collection", "figures": {name: value}}``.
    """
    from ..context import default_collection

    ctx = VerifyContext(Path(repo), collection or default_collection(repo), Path(repo))
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "preset": preset,
        "collection": ctx.collection,
        "figures": _figures(ctx),
    }


def _figures(ctx: VerifyContext) -> dict[str, float]:
    figures: dict[str, float] = {
        "n_raw": len(ctx.refs("raw")),
        "n_calexp": len(ctx.refs("calexp")),
        "n_src_rows": sum(len(ctx.get(ref, columns=["coord_ra"])) for ref in ctx.refs("src")),
        "n_warp": len(ctx.refs("deepCoadd_directWarp")),
        "n_coadd": len(ctx.refs("deepCoadd")),
    }
    figures.update(_calexp_figures(ctx))
    figures.update(_object_figures(ctx))
    return dict(sorted(figures.items()))


def _calexp_figures(ctx: VerifyContext) -> dict[str, float]:
    cards: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for ref in ctx.refs("calexp"):
        meta = ctx.component(ref, "metadata")
        band = str(ref.dataId["band"])
        for key in ("PSF_FWHM", "ZEROPT"):
            if isinstance(meta.get(key), int | float):
                cards[band][key].append(float(meta[key]))
        cards[band]["n"].append(1.0)
    out: dict[str, float] = {}
    for band, values in cards.items():
        out[f"n_calexp[{band}]"] = len(values["n"])
        out[f"psf_fwhm_median[{band}]"] = _median(values["PSF_FWHM"])
        out[f"zero_point_median[{band}]"] = _median(values["ZEROPT"])
    return out


def _object_figures(ctx: VerifyContext) -> dict[str, float]:
    objects = ctx.table("objectTable_tract")
    out: dict[str, float] = {"n_object": len(objects)}
    if not len(objects):
        return out
    primary = np.asarray(objects["detect_isPrimary"], dtype=bool)
    out["n_primary"] = int(primary.sum())
    refcat = ctx.refcat()
    for band in sorted(str(b) for b in {ref.dataId["band"] for ref in ctx.refs("calexp")}):
        out[f"psf_flux_offset_median[{band}]"] = psf_flux_offset(objects, refcat, band=band)
    return out


def psf_flux_offset(objects: Any, refcat: Any, *, band: str) -> float:
    """Median ``psfFlux / ref_flux - 1`` of bright point-like primary objects matched to the reference
    catalog (NaN when none): S/N > `BRIGHT_SNR`, ``refExtendedness`` < `POINT_LIKE_MAX_EXTENDEDNESS`,
    within `MATCH_RADIUS_ARCSEC`."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    flux = np.asarray(objects[f"{band}_psfFlux"], dtype=float)
    err = np.asarray(objects[f"{band}_psfFluxErr"], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = (
            np.asarray(objects["detect_isPrimary"], dtype=bool)
            & (flux / err > BRIGHT_SNR)
            & (np.asarray(objects["refExtendedness"], dtype=float) < POINT_LIKE_MAX_EXTENDEDNESS)
        )
    if not keep.any() or f"{band}_flux" not in refcat.colnames:
        return math.nan
    ra = np.asarray(objects["coord_ra"], dtype=float)[keep]
    dec = np.asarray(objects["coord_dec"], dtype=float)[keep]
    sel = SkyCoord(ra * u.deg, dec * u.deg)
    ref = SkyCoord(np.asarray(refcat["coord_ra"]) * u.deg, np.asarray(refcat["coord_dec"]) * u.deg)
    index, sep, _ = sel.match_to_catalog_sky(ref)
    close = sep.arcsec < MATCH_RADIUS_ARCSEC
    ref_flux = np.asarray(refcat[f"{band}_flux"], dtype=float)[index[close]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = flux[keep][close] / ref_flux - 1.0
    return _median(ratio[np.isfinite(ratio)])


def _median(values: Sequence[float] | np.ndarray) -> float:
    return float(np.median(values)) if len(values) else math.nan


# ---------------------------------------------------------------------------------------------- compare


def compare_with_expected(summary: Mapping[str, Any], expected: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Compare a summary (`demo_summary`) with an expected file (rules: module docstring).

    Returns
    -------
    ok : `bool`
        Every expected figure within its tolerance.
    lines : `list` [`str`]
        One line per figure (``ok``/``FAIL``, value, expected, tolerance), then the unexpected figures.
    """
    figures = summary.get("figures", {})
    lines = []
    ok = True
    for name, spec in expected.get("figures", {}).items():
        good, line = _compare_one(name, figures.get(name), spec)
        ok &= good
        lines.append(line)
    extra = sorted(set(figures) - set(expected.get("figures", {})))
    if extra:
        lines.append(f"note: figures without an expected value: {', '.join(extra)}")
    return ok, lines


def _compare_one(name: str, value: Any, spec: Mapping[str, Any]) -> tuple[bool, str]:
    want = float(spec["value"]) if spec.get("value") is not None else math.nan
    tol = float(spec["tolerance"])
    bound = tol * abs(want) if spec.get("kind", "abs") == "rel" else tol
    shown = f"{want:.6g} +- {bound:.3g}" + (f" ({100 * tol:g} %)" if spec.get("kind") == "rel" else "")
    if value is None:
        return False, f"FAIL {name}: missing from the summary (expected {shown})"
    got = float(value)
    if math.isnan(want) and math.isnan(got):
        return True, f"ok   {name}: not measured, as expected"
    good = bool(abs(got - want) <= bound)
    return good, f"{'ok  ' if good else 'FAIL'} {name}: {got:.6g} (expected {shown})"


# -------------------------------------------------------------------------------------- expected files


def expected_path(preset: str) -> Path:
    """Where the expected figures of a preset are shipped (``opendrp/verify/expected/{preset}.json``)."""
    return Path(str(resources.files("opendrp.verify") / "expected" / f"{preset}.json"))


def load_expected(preset: str) -> dict[str, Any] | None:
    """The expected figures of a preset, or None when the package ships none."""
    path = expected_path(preset)
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def make_expected(
    summary: Mapping[str, Any], *, previous: Mapping[str, Any] | None = None, note: str = ""
) -> dict[str, Any]:
    """An expected file from a summary: each figure's value, with the tolerance, kind and reason of the
    ``previous`` file when it has the figure, else of `DEFAULT_TOLERANCES`."""
    old = (previous or {}).get("figures", {})
    figures = {}
    for name, value in sorted(summary.get("figures", {}).items()):
        if name in old:
            kind, tol, why = old[name]["kind"], old[name]["tolerance"], old[name]["why"]
        elif name.split("[")[0] in DEFAULT_TOLERANCES:
            kind, tol, why = DEFAULT_TOLERANCES[name.split("[")[0]]
        else:
            raise ConfigurationError(
                f"no default tolerance for figure {name!r}", fix="add it to DEFAULT_TOLERANCES"
            )
        finite = value is not None and math.isfinite(float(value))
        figures[name] = {"value": value if finite else None, "kind": kind, "tolerance": tol, "why": why}
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "preset": summary.get("preset"),
        "note": note or (previous or {}).get("note", ""),
        "figures": figures,
    }


# ------------------------------------------------------------------------------------------- DRP-00-00


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-00: compare the demo's figures with the expected ones when the repository is a demo output."""
    result = CaseResult("DRP-00-00", th.title("DRP-00-00"), th.section("DRP-00-00"))
    summary_file = ctx.repo.parent / SUMMARY_FILE
    preset = _preset_of(summary_file)
    expected = load_expected(preset) if preset else None
    if preset is None:
        result.checks.append(
            th.not_available("demo_expected", f"not a demo output (no {summary_file} naming a preset)")
        )
    elif expected is None:
        result.checks.append(
            th.not_available("demo_expected", f"no expected figures shipped for preset {preset!r}")
        )
    else:
        try:
            summary = demo_summary(ctx.repo, ctx.collection, preset=preset)
        except (OSError, RuntimeError, ValueError, LookupError) as exc:  # a damaged release: a failing check
            why = f"the demo's figures could not be computed: {type(exc).__name__}: {str(exc)[:200]}"
            result.checks.append(th.evaluate("demo_expected", False, reason=why))
            return result
        ok, lines = compare_with_expected(summary, expected)
        failed = [line for line in lines if line.startswith("FAIL")]
        n = len(expected["figures"])
        reason = f"{n - len(failed)} of {n} figures of preset {preset!r} within tolerance" + (
            f"; {'; '.join(failed[:3])}" if failed else ""
        )
        result.checks.append(th.evaluate("demo_expected", ok, reason=reason, n=n))
        result.tables[f"demo figures vs expected/{preset}.json"] = [{"comparison": line} for line in lines]
    return result


def _preset_of(summary_file: Path) -> str | None:
    try:
        preset = json.loads(summary_file.read_text()).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return str(preset) if preset else None


# ------------------------------------------------------------------------------------- maintainer command


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m opendrp.verify.cases.installation --write-expected DEMO_DIR [--preset NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m opendrp.verify.cases.installation", description=__doc__)
    parser.add_argument("--write-expected", metavar="DEMO_DIR", required=True, type=Path)
    parser.add_argument("--preset", help="default: the preset named in DEMO_DIR/summary.json")
    parser.add_argument("--collection", help="default: {instrument}/runs/drp")
    parser.add_argument("--note", default="", help="where the values come from (kept in the file)")
    args = parser.parse_args(argv)
    demo: Path = args.write_expected
    preset = args.preset or _preset_of(demo / SUMMARY_FILE)
    if not preset:
        raise ConfigurationError("no preset", where=str(demo), fix="give --preset")
    summary = demo_summary(demo / "repo", args.collection, preset=preset)
    doc = make_expected(summary, previous=load_expected(preset), note=args.note)
    path = expected_path(preset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    ok, lines = compare_with_expected(summary, doc)
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
