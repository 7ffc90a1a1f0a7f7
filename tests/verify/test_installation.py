"""DRP-00-00: comparison of demo summary figures with expected values, expected files, the photometric offset.

The comparison of a fresh tiny release with the shipped ``expected/tiny.json`` runs on the release built by
``test_products.py`` (one release per suite); these tests need no repository.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from opendrp.verify.cases.installation import (
    DEFAULT_TOLERANCES,
    SUMMARY_FILE,
    compare_with_expected,
    load_expected,
    main,
    make_expected,
    psf_flux_offset,
    run,
)
from opendrp.verify.context import VerifyContext
from opendrp.verify.model import Status
from opendrp.verify.thresholds import load_thresholds

EXPECTED = {
    "figures": {
        "n_raw": {"value": 63, "kind": "abs", "tolerance": 0.0, "why": "fixed"},
        "n_src_rows": {"value": 1000, "kind": "rel", "tolerance": 0.01, "why": "noise"},
        "psf_fwhm_median[g]": {"value": 0.65, "kind": "abs", "tolerance": 0.01, "why": "median"},
    }
}


def _summary(**figures: float) -> dict[str, object]:
    base = {"n_raw": 63, "n_src_rows": 1000, "psf_fwhm_median[g]": 0.65}
    base.update(figures)
    return {"preset": "x", "figures": base}


def test_exact_summary_is_ok() -> None:
    ok, lines = compare_with_expected(_summary(), EXPECTED)
    assert ok
    assert len(lines) == 3 and all(line.startswith("ok") for line in lines)


@pytest.mark.parametrize(
    ("figure", "value", "ok"),
    [
        ("n_src_rows", 1010, True),  # 1 % of 1000
        ("n_src_rows", 1011, False),
        ("n_src_rows", 989, False),
        ("psf_fwhm_median[g]", 0.6599, True),
        ("psf_fwhm_median[g]", 0.6399, False),
        ("n_raw", 62, False),  # a count with zero tolerance
    ],
)
def test_tolerance_bounds(figure: str, value: float, ok: bool) -> None:
    good, lines = compare_with_expected(_summary(**{figure: value}), EXPECTED)
    assert good is ok
    line = next(line for line in lines if f" {figure}:" in line)
    assert line.startswith("ok" if ok else "FAIL")


def test_missing_figure_fails_and_extra_figure_is_noted() -> None:
    summary = _summary(n_coadd=54)
    del summary["figures"]["n_raw"]  # type: ignore[attr-defined]
    ok, lines = compare_with_expected(summary, EXPECTED)
    assert not ok
    assert any(line.startswith("FAIL n_raw: missing") for line in lines)
    assert lines[-1] == "note: figures without an expected value: n_coadd"


def test_make_expected_keeps_previous_tolerances() -> None:
    previous = {
        "note": "old",
        "figures": {"n_raw": {"value": 10, "kind": "rel", "tolerance": 0.5, "why": "w"}},
    }
    doc = make_expected(_summary(**{"n_raw": 63, "zero_point_median[r]": math.nan}), previous=previous)
    assert doc["figures"]["n_raw"] == {"value": 63, "kind": "rel", "tolerance": 0.5, "why": "w"}
    kind, tol, why = DEFAULT_TOLERANCES["psf_fwhm_median"]
    assert doc["figures"]["psf_fwhm_median[g]"] == {"value": 0.65, "kind": kind, "tolerance": tol, "why": why}
    assert doc["figures"]["zero_point_median[r]"]["value"] is None  # NaN: not measured
    assert doc["note"] == "old"


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_shipped_expected_files(preset: str) -> None:
    doc = load_expected(preset)
    assert doc is not None and doc["preset"] == preset
    for name, spec in doc["figures"].items():
        assert name.split("[")[0] in DEFAULT_TOLERANCES, name
        assert spec["kind"] in ("abs", "rel") and spec["tolerance"] >= 0 and spec["why"], name
    assert doc["figures"]["n_calexp"]["value"] > 0
    ok, _ = compare_with_expected({"figures": {k: v["value"] for k, v in doc["figures"].items()}}, doc)
    assert ok


def test_psf_flux_offset_recovers_a_known_offset() -> None:
    rng = np.random.default_rng(3)
    n = 400
    ra = 10 + rng.uniform(0, 0.1, n)
    dec = rng.uniform(0, 0.1, n)
    ref_flux = rng.uniform(1e4, 1e5, n)
    refcat = Table({"coord_ra": ra, "coord_dec": dec, "g_flux": ref_flux})
    shift = 0.1 / 3600  # 0.1 arcsec
    objects = Table(
        {
            "coord_ra": ra + shift,
            "coord_dec": dec,
            "g_psfFlux": ref_flux * 1.02,
            "g_psfFluxErr": ref_flux / 200,  # S/N 200
            "detect_isPrimary": np.ones(n, bool),
            "refExtendedness": np.zeros(n),
        }
    )
    objects["refExtendedness"][:100] = 1.0  # galaxies: left out
    objects["g_psfFlux"][:100] *= 2
    objects["g_psfFluxErr"][100:150] = ref_flux[100:150]  # S/N 1: left out
    objects["g_psfFlux"][100:150] *= 3
    assert psf_flux_offset(objects, refcat, band="g") == pytest.approx(0.02, abs=1e-12)
    objects["coord_ra"] += 1.0 / 3600  # 1 arcsec away: nothing matches
    assert math.isnan(psf_flux_offset(objects, refcat, band="g"))


def test_case_not_available_outside_a_demo(tmp_path: Path) -> None:
    th = load_thresholds()
    ctx = VerifyContext(tmp_path / "repo", "HSC/runs/drp", tmp_path / "out")
    check = run(ctx, th).checks[0]
    assert check.status == Status.NOT_AVAILABLE and "not a demo output" in check.reason
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"preset": "no-such-preset"}))
    check = run(ctx, th).checks[0]
    assert check.status == Status.NOT_AVAILABLE and "no-such-preset" in check.reason


def test_write_expected_needs_a_preset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no preset"):
        main(["--write-expected", str(tmp_path)])
