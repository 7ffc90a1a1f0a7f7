"""DRP-00-00/05/10 on a real tiny release: the clean release passes, a deleted calexp and a truncated src
are reported, exactly; and the logic of `opendrp.verify.products` on small known cases.

The session's tiny release (``tiny_release``) is verified clean first, then one calexp file is deleted and
one src file truncated in place and it is verified again (the ``damaged`` fixture depends on ``clean``), and
both files are restored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from opendrp.repo import open_butler
from opendrp.verify.cases.installation import compare_with_expected, demo_summary, load_expected
from opendrp.verify.products import (
    count_products,
    file_problem,
    fits_layout,
    provenance_cards,
    provenance_problems,
    quantum_conflicts,
    quantum_usage,
    read_cards,
    usage_by_task,
    usage_by_tract,
)
from opendrp.verify.run import run_verify

CASES = ["DRP-00-00", "DRP-00-05", "DRP-00-10"]
COLLECTION = "HSC/runs/drp"


@pytest.fixture(scope="module")
def release(tiny_release: Path) -> Path:
    return tiny_release


def _verify(release: Path, name: str) -> dict[str, Any]:
    return run_verify(
        release / "repo", out_dir=release / name, cases=CASES, make_plots=False, record_history=False
    )


@pytest.fixture(scope="module")
def clean(release: Path) -> dict[str, Any]:
    return _verify(release, "verify_clean")


@pytest.fixture(scope="module")
def damaged(release: Path, clean: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The release with one calexp deleted and one src truncated: (doc, calexp data ID, src data ID).

    The release is shared with other test modules: both files are restored afterwards.
    """
    butler = open_butler(release / "repo", collections=[COLLECTION])
    calexp = butler.query_datasets("calexp", explain=False, limit=None)[0]
    src = butler.query_datasets("src", explain=False, limit=None)[-1]
    calexp_path = Path(butler.getURI(calexp).ospath)
    src_path = Path(butler.getURI(src).ospath)
    saved = {calexp_path: calexp_path.read_bytes(), src_path: src_path.read_bytes()}
    try:
        calexp_path.unlink()
        src_path.write_bytes(saved[src_path][: len(saved[src_path]) // 2])
        doc = _verify(release, "verify_damaged")
        yield {"doc": doc, "calexp": dict(calexp.dataId.required), "src": dict(src.dataId.required)}
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


def _checks(doc: dict[str, Any], case: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["test_cases"][case]["checks"]}


def _failing(doc: dict[str, Any], case: str) -> set[str]:
    return {name for name, c in _checks(doc, case).items() if c["status"] == "fail"}


def _n_science_raws(release: Path) -> int:
    return len(list((release / "sim" / "raw" / "science").glob("*.fits")))


def test_demo_matches_the_shipped_expected_figures(release: Path, clean: dict[str, Any]) -> None:
    ok, lines = compare_with_expected(
        demo_summary(release / "repo", preset="tiny"), load_expected("tiny") or {}
    )
    assert ok, "\n".join(lines)
    check = _checks(clean, "DRP-00-00")["demo_expected"]
    assert check["status"] == "pass", check["reason"]


def test_clean_release_passes_the_product_checks(release: Path, clean: dict[str, Any]) -> None:
    assert not _failing(clean, "DRP-00-05"), clean["test_cases"]["DRP-00-05"]["summary"]
    not_available = {n for n, c in _checks(clean, "DRP-00-05").items() if c["status"] == "not available"}
    assert not_available == {"checksums_match", "campaign_recorded"}  # the production service's parts
    assert clean["test_cases"]["DRP-00-05"]["status"] == "partial"
    assert clean["test_cases"]["DRP-00-10"]["status"] == "pass"
    assert "provenance_complete[dataset_type=calexpBackground]" in _checks(clean, "DRP-00-05")


def test_table1_counts_match_the_survey(release: Path, clean: dict[str, Any]) -> None:
    n = _n_science_raws(release)
    tables = clean["test_cases"]["DRP-00-10"]["tables"]
    (rows,) = tables.values()
    by_type: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = by_type.setdefault(row["dataset type"], {"expected": 0, "actual": 0, "missing": 0})
        for key in entry:
            entry[key] += row[key]
    for name in ("calexp", "src", "calexpBackground"):  # one per science CCD (one tract: 9810)
        assert by_type[name] == {"expected": n, "actual": n, "missing": 0}
    assert by_type["objectTable_tract"]["actual"] == 1
    table3 = clean["test_cases"]["DRP-00-05"]["tables"][
        "Table 3: CPU time and maximum RSS per task and tract"
    ]
    calib = [r for r in table3 if r["task"] == "calibrateImage"]
    assert sum(r["executions"] for r in calib) == n
    assert all(r["max RSS (MB)"] > 50 and r["user CPU (s)"] > 0 for r in table3)


def test_damage_is_reported_exactly(damaged: dict[str, Any]) -> None:
    doc = damaged["doc"]
    assert _failing(doc, "DRP-00-05") == {
        "files_nonempty[dataset_type=calexp]",
        "files_nonempty[dataset_type=src]",
    }
    checks = _checks(doc, "DRP-00-05")
    calexp_reason = checks["files_nonempty[dataset_type=calexp]"]["reason"]
    assert f"{damaged['calexp']['visit']}" in calexp_reason and "missing" in calexp_reason
    assert calexp_reason.count("calexp {") == 1
    src_reason = checks["files_nonempty[dataset_type=src]"]["reason"]
    assert f"'visit': {damaged['src']['visit']}" in src_reason and "B on disk" in src_reason
    failing10 = _failing(doc, "DRP-00-10")
    assert {name.split(",")[0] for name in failing10} == {
        "required_products[dataset_type=calexp",
        "required_products[dataset_type=src",
    }
    assert doc["test_cases"]["DRP-00-10"]["status"] == "fail"
    reasons = " ".join(c["reason"] for c in _checks(doc, "DRP-00-10").values() if c["status"] == "fail")
    assert reasons.count("missing {") == 2
    check = _checks(doc, "DRP-00-00")["demo_expected"]  # the truncated src cannot be read
    assert check["status"] == "fail" and "could not be computed" in check["reason"]


# ------------------------------------------------------------------------------------------------ logic


def test_count_products_no_work_and_missing() -> None:
    expected = {"calexp": [{"visit": 1, "detector": d} for d in (1, 2, 3)], "packages": [{}]}
    actual = {"calexp": {(("detector", 1), ("visit", 1))}, "packages": {()}}
    ended = lambda dataset_type, data_id: data_id.get("detector") == 2  # noqa: E731
    overlaps = {(1, 1): [5], (1, 2): [5, 6], (1, 3): [6]}
    rows = {
        (r.dataset_type, r.tract): r
        for r in count_products(expected, actual=actual, ended=ended, overlaps=overlaps)
    }
    assert (rows["calexp", 5].expected, rows["calexp", 5].actual, rows["calexp", 5].no_work) == (2, 1, 1)
    assert rows["calexp", 5].fraction == 1.0
    assert (rows["calexp", 6].expected, rows["calexp", 6].no_work, rows["calexp", 6].missing) == (
        2, 1, [(("detector", 3), ("visit", 1))],
    )  # fmt: skip
    assert rows["calexp", 6].fraction == 0.5
    assert rows["packages", "-"].fraction == 1.0
    # detector 2 registered but its file bad (not actual): missing, not "no work"
    registered = {"calexp": actual["calexp"] | {(("detector", 2), ("visit", 1))}}
    (row5,) = [
        r
        for r in count_products(
            expected, actual=actual, ended=ended, overlaps=overlaps, registered=registered
        )
        if r.dataset_type == "calexp" and r.tract == 5
    ]
    assert (row5.actual, row5.no_work, row5.missing) == (1, 0, [(("detector", 2), ("visit", 1))])


def test_fits_layout_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((30, 40), np.float32))]).writeto(path)
    layout = fits_layout(path)
    assert layout == [(2880, 0), (2 * 2880, 2 * 2880)]  # 4800 B of data padded to two blocks
    assert file_problem(path) == ""
    size = path.stat().st_size
    assert file_problem(path, recorded_size=size + 1) == f"{size} B on disk, {size + 1} B recorded"
    path.write_bytes(path.read_bytes()[: size - 100])
    assert file_problem(path).startswith("truncated: HDU 1")
    path.write_bytes(b"")
    assert file_problem(path) == "empty"
    assert file_problem(tmp_path / "nope.fits") == "missing"


def test_provenance_problems() -> None:
    header = {f"LSST BUTLER {k}": v for k, v in [("ID", "a"), ("RUN", "r1"), ("DATASETTYPE", "calexp")]}
    header |= {"LSST BUTLER QUANTUM": "q", "LSST BUTLER N_INPUTS": 2}
    for k, (input_id, run, dataset_type) in enumerate([("i0", "raw/all", "raw"), ("i1", "calib", "bias")]):
        header[f"LSST BUTLER INPUT {k} ID"] = input_id
        header[f"LSST BUTLER INPUT {k} RUN"] = run
        header[f"LSST BUTLER INPUT {k} DATASETTYPE"] = dataset_type
    prov = provenance_cards(header)
    known = {"i0": ("raw/all", "raw"), "i1": ("calib", "bias")}
    good = {"dataset_id": "a", "dataset_type": "calexp", "run": "r1", "runs": ["r1"], "known": known}
    assert provenance_problems(prov, **good) == []  # type: ignore[arg-type]
    assert provenance_problems(prov, **(good | {"run": "r2", "runs": ["r2"]})) == ["RUN 'r1' != 'r2'"]  # type: ignore[arg-type]
    assert provenance_problems(prov, **(good | {"runs": ["r0"]})) == [
        "run r1 is not in the collection's chain"
    ]  # type: ignore[arg-type]
    problems = provenance_problems(prov, **(good | {"known": {"i0": known["i0"]}}))  # type: ignore[arg-type]
    assert problems == ["input bias i1 is not in the repository's run calib"]
    assert provenance_problems({}, **good) == ["no provenance in the file"]  # type: ignore[arg-type]
    conflicts = quantum_conflicts(
        [("t", (("visit", 1),), "q1", "calexp"), ("t", (("visit", 1),), "q2", "src")]
    )
    assert list(conflicts) == [("t", (("visit", 1),))]


def test_parquet_provenance_is_read(tmp_path: Path) -> None:
    from astropy.table import Table

    table = Table({"a": [1, 2]})
    table.meta["LSST.BUTLER.RUN"] = "r1"
    table.meta["LSST.BUTLER.INPUT.0.ID"] = "i0"
    table.write(tmp_path / "t.parq", format="parquet")
    prov = provenance_cards(read_cards(tmp_path / "t.parq"))
    assert prov == {"RUN": "r1", "INPUT 0 ID": "i0"}


def test_quantum_usage_tables() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def quantum(start_s: float, end_s: float, *, stage: str = "start") -> dict[str, Any]:
        begin, end = (t0 + dt.timedelta(seconds=x) for x in (start_s, end_s))
        return {
            f"{stage}Utc": begin.isoformat(), "endUtc": end.isoformat(),
            f"{stage}CpuTime": 1.0, "endCpuTime": 3.0, f"{stage}UserTime": 0.5, "endUserTime": 2.0,
            f"{stage}SystemTime": 0.0, "endSystemTime": 0.5, "endMaxResidentSetSize": 200 * 1024**2,
        }  # fmt: skip

    a, _ = quantum_usage(quantum(0, 10), task="calibrateImage", tracts=[1, 2])
    b, _ = quantum_usage(quantum(5, 30, stage="prep"), task="makeWarp", tracts=[2])
    assert a is not None and b is not None and not b.started
    none, missing = quantum_usage({"endUtc": "x"}, task="t", tracts=[1])
    assert none is None and "endCpuTime" in missing
    assert usage_by_tract([a, b]) == [
        {"tract": 1, "quanta": 1, "wall clock (s)": 10.0, "total CPU (s)": 2.0, "total user CPU (s)": 1.5},
        {"tract": 2, "quanta": 2, "wall clock (s)": 30.0, "total CPU (s)": 4.0, "total user CPU (s)": 3.0},
    ]
    rows = usage_by_task([b, a], order=["calibrateImage", "makeWarp"])
    assert [(r["tract"], r["task"]) for r in rows] == [
        (1, "calibrateImage"),
        (2, "calibrateImage"),
        (2, "makeWarp"),
    ]
    assert rows[0]["max RSS (MB)"] == 200.0 and rows[0]["system CPU (s)"] == 0.5
