"""The verification framework: case status rules, thresholds and their overrides, the report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opendrp.errors import ConfigurationError
from opendrp.verify import CaseResult, Status, load_thresholds, write_report
from opendrp.verify.model import case_status
from opendrp.verify.report import markdown_report
from opendrp.verify.run import overall_status


def _check(th, key: str, value: float | None, **kw):  # type: ignore[no-untyped-def]
    return th.evaluate(key, value, **kw)


def test_evaluate_comparisons() -> None:
    th = load_thresholds()
    assert _check(th, "PA1", 4.99).status == Status.PASS  # <= 5 mmag
    assert _check(th, "PA1", 5.01).status == Status.FAIL
    assert _check(th, "src_ref_phot_offset", -0.009).status == Status.PASS  # abs <= 1 %
    assert _check(th, "src_ref_phot_offset", -0.011).status == Status.FAIL
    assert _check(th, "products_present", 0.999).status == Status.FAIL  # >= 1
    assert _check(th, "products_present", 1.0).status == Status.PASS
    assert _check(th, "demo_expected", True).status == Status.PASS  # a fact
    assert _check(th, "demo_expected", False).status == Status.FAIL
    na = _check(th, "PA1", float("nan"), missing="too few visits")
    assert na.status == Status.NOT_AVAILABLE and na.reason == "too few visits" and na.value is None
    named = _check(th, "PA1", 3.0, scope={"band": "g", "tract": 7})
    assert named.name == "PA1[band=g, tract=7]" and named.section.startswith("SRD")


def test_case_status_rules() -> None:
    th = load_thresholds()
    ok = _check(th, "obj_ref_phot_offset", 0.0)
    bad = _check(th, "obj_ref_phot_offset", 0.5)
    partial = _check(th, "obj_apcorr_consistency", 0.5)  # partial_ok in the shipped file (DM-13058)
    na = th.not_available("forced_unforced", "no unforced measurement")
    assert partial.partial_ok and partial.status == Status.FAIL
    assert case_status([ok, ok]) == Status.PASS
    assert case_status([ok, partial]) == Status.PARTIAL
    assert case_status([ok, partial, bad]) == Status.FAIL
    assert case_status([ok, na]) == Status.PARTIAL
    assert case_status([na]) == Status.NOT_AVAILABLE
    assert case_status([]) == Status.NOT_AVAILABLE
    cases = [CaseResult("A", "a", "", [ok]), CaseResult("B", "b", "", [ok, na])]
    assert overall_status(cases) == Status.PARTIAL
    assert overall_status(cases + [CaseResult("C", "c", "", [bad])]) == Status.FAIL
    assert overall_status(cases[:1]) == Status.PASS


def test_threshold_override_is_merged_and_validated(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("version: strict1\ncases:\n  DRP-00-15:\n    checks:\n      PA1: {threshold: 3.0}\n")
    th = load_thresholds(f)
    assert th.spec("PA1").threshold == 3.0 and th.spec("PA1").unit == "mmag"
    assert th.spec("AM1").threshold == 10.0  # untouched
    assert th.version.endswith("+strict1")
    assert _check(th, "PA1", 4.0).status == Status.FAIL
    for text, message in [
        ("cases:\n  DRP-00-99: {}\n", "unknown test case"),
        ("cases:\n  DRP-00-15:\n    checks:\n      PA9: {threshold: 1}\n", "unknown check"),
        ("cases:\n  DRP-00-15:\n    checks:\n      PA1: {threshold: fast}\n", "finite number"),
        ("cases:\n  DRP-00-15:\n    checks:\n      PA1: {comparison: '<'}\n", "comparison"),
        ("cases:\n  DRP-00-15:\n    checks:\n      PA1: {treshold: 1}\n", "unknown field"),
        ("cases: [\n", "not valid YAML at line"),
    ]:
        f.write_text(text)
        with pytest.raises(ConfigurationError, match=message) as info:
            load_thresholds(f)
        assert "\n" not in info.value.one_line()


def _doc(tmp_path: Path) -> dict:
    th = load_thresholds()
    case = CaseResult(
        "DRP-00-15",
        th.title("DRP-00-15"),
        th.section("DRP-00-15"),
        checks=[
            _check(th, "PA1", 3.2, scope={"band": "g"}, plot="figures/pa1_g.png", n=120),
            _check(th, "AM1", 14.0, scope={"band": "g"}),
        ],
        tables={"Table 3": [{"task": "calibrateImage", "executions": 9, "cpu_s": 12.5}]},
    )
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "pa1_g.png").write_bytes(b"\x89PNG")
    return {
        "schema_version": 1,
        "opendrp_version": "0",
        "created": "2026-01-01T00:00:00+00:00",
        "repo": "/r",
        "collection": "HSC/runs/drp",
        "truth": None,
        "config_digest": "abc",
        "thresholds": {"source": th.source, "version": th.version},
        "status": str(overall_status([case])),
        "test_cases": {"DRP-00-15": case.to_json()},
        "metrics": {
            "PA1": {"g": {"value": 3.2, "unit": "mmag", "n": 120}},
            "AM1": {"g": {"value": float("nan")}},
        },
    }


def test_report_files(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    paths = write_report(doc, tmp_path)
    assert [p.name for p in paths] == ["verify.json", "verify.md", "index.html"]
    back = json.loads((tmp_path / "verify.json").read_text())  # strict JSON: NaN written as null
    assert back["metrics"]["AM1"]["g"]["value"] is None
    case = back["test_cases"]["DRP-00-15"]
    assert case["status"] == "fail" and [c["status"] for c in case["checks"]] == ["pass", "fail"]
    md = markdown_report(doc).splitlines()
    row = next(line for line in md if line.startswith("| DRP-00-15 |"))
    assert row.split("|")[2].strip() == "Fail" and "AM1[band=g]" in row
    html = (tmp_path / "index.html").read_text()
    assert html.index("id=summary") < html.index("id='DRP-00-15'")  # the case table on top
    assert "href='#fig-figures-pa1-g-png'" in html and "id='fig-figures-pa1-g-png'" in html
    assert "http://" not in html and "https://" not in html  # readable offline
    assert "<td>calibrateImage</td>" in html
