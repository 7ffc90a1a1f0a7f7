"""The metrics store (opendrp.verify.history) on a temporary directory: appends, reload, collections kept
apart, the regression rule, foreign files, concurrent appends."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from tests.verify._history_docs import CASE, CHECK, FACT, append_many, make_doc

from opendrp.errors import RepositoryError
from opendrp.verify import history
from opendrp.verify.history import (
    Direction,
    append_run,
    direction_of,
    load_history,
    metric_direction,
    status_worse,
    store_path,
    value_worse,
)

DAY1, DAY2, DAY3 = (f"2026-11-0{d}T12:00:00+00:00" for d in (1, 2, 3))


def _series(history, kind: str, key: str, collection: str = "HSC/runs/drp"):
    (s,) = [s for s in history.series if s.kind == kind and s.key == key and s.collection == collection]
    return s


def _flagged(history) -> set[tuple[str, str]]:
    return {(g.kind, g.key) for g in history.latest_regressions()}


def test_append_and_reload(tmp_path: Path) -> None:
    assert append_run(tmp_path, make_doc(created=DAY1)) == 1
    assert append_run(tmp_path, make_doc(created=DAY2, pa1_g=11.5, offset=-7.0)) == 2
    assert store_path(tmp_path) == tmp_path / "opendrp_verify" / "metrics.sqlite3"
    h = load_history(tmp_path)
    assert [r.id for r in h.runs] == [1, 2]
    run = h.runs[1]
    assert (run.time, run.collection, run.opendrp_version) == (DAY2, "HSC/runs/drp", "0.1.0")
    assert (run.config_digest, run.thresholds_version, run.status) == ("0123456789abcdef", "1", "pass")
    assert run.software == {"opendrp": "0.1.0", "numpy": "2.5.5"}
    pa1 = _series(h, "metric", "PA1[g]")
    assert [p.value for p in pa1.points] == [10.0, 11.5]
    assert (pa1.unit, pa1.direction) == ("mmag", Direction.LARGER_IS_WORSE)
    check = _series(h, "check", CHECK)
    assert check.case_id == CASE
    assert [(p.value, p.status) for p in check.points] == [(5.0, "pass"), (-7.0, "pass")]
    assert (check.threshold, check.comparison, check.direction) == (
        20.0,
        "abs<=",
        Direction.ABS_LARGER_IS_WORSE,
    )
    assert [p.status for p in _series(h, "case", "status").points] == ["pass", "pass"]
    assert h.case_titles == {CASE: "Source catalogue photometry"}
    # 2 metrics + 2 checks + 1 case status
    assert len(h.series) == 5


def test_missing_and_non_finite_values_are_null(tmp_path: Path) -> None:
    doc = make_doc(created=DAY1, pa1_g=float("nan"))
    doc["test_cases"][CASE]["checks"][0].update(value=None, status="not available")
    append_run(tmp_path, doc)
    h = load_history(tmp_path)
    assert _series(h, "metric", "PA1[g]").points[0].value is None
    assert _series(h, "check", CHECK).points[0].value is None


def test_no_store_is_an_empty_history_and_no_repo_an_error(tmp_path: Path) -> None:
    h = load_history(tmp_path)
    assert (h.runs, h.series) == ([], [])
    with pytest.raises(RepositoryError, match="no such repository"):
        load_history(tmp_path / "nope")


def test_collections_are_kept_apart(tmp_path: Path) -> None:
    # A: 10 -> 10.5 (within tolerance); B in between at 5: if B were "the previous run" of A's second run,
    # 5 -> 10.5 would be a regression.
    append_run(tmp_path, make_doc(created=DAY1, collection="A", pa1_g=10.0))
    append_run(tmp_path, make_doc(created=DAY2, collection="B", pa1_g=5.0))
    append_run(tmp_path, make_doc(created=DAY3, collection="A", pa1_g=10.5))
    h = load_history(tmp_path)
    assert h.collections() == ["A", "B"]
    assert [r.id for r in h.runs_of("A")] == [1, 3]
    assert [p.value for p in _series(h, "metric", "PA1[g]", "A").points] == [10.0, 10.5]
    assert [p.value for p in _series(h, "metric", "PA1[g]", "B").points] == [5.0]
    assert h.latest_regressions() == []


def test_runs_ordered_by_time(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY2, pa1_g=10.0))
    append_run(tmp_path, make_doc(created=DAY1, pa1_g=20.0))  # recorded later, created earlier
    h = load_history(tmp_path)
    assert [r.id for r in h.runs] == [2, 1]
    assert h.latest_regressions() == []  # 20 -> 10 is an improvement


def test_regressed_metric_flagged_unchanged_and_improved_not(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY1, pa1_g=10.0, pa1_r=12.0, offset=5.0))
    # PA1 g: 10 -> 11.2 (> 10 % of 10): regressed; PA1 r unchanged; offset 5 -> -2 improved
    append_run(tmp_path, make_doc(created=DAY2, pa1_g=11.2, pa1_r=12.0, offset=-2.0))
    h = load_history(tmp_path)
    assert _flagged(h) == {("metric", "PA1[g]")}
    (g,) = h.latest_regressions()
    assert (g.previous_value, g.current_value, g.why, g.run, g.previous_run) == (10.0, 11.2, "value", 2, 1)


def test_small_worsening_within_tolerance_not_flagged(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY1, pa1_g=10.0, offset=5.0))
    # PA1 g 10 -> 10.9 (< 1.0 allowed); offset |5| -> |-6.9| (1.9 < 10 % of the 20 mmag threshold)
    append_run(tmp_path, make_doc(created=DAY2, pa1_g=10.9, offset=-6.9))
    assert _flagged(load_history(tmp_path)) == set()
    # offset |-6.9| -> |9.0|: 2.1 > 2.0 allowed
    append_run(tmp_path, make_doc(created=DAY3, pa1_g=10.9, offset=9.0))
    assert _flagged(load_history(tmp_path)) == {("check", CHECK)}


def test_check_pass_to_fail_flagged(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY1))
    append_run(tmp_path, make_doc(created=DAY2, fact_status="fail"))
    h = load_history(tmp_path)
    # the fact's value did not move (== has no direction): its status and its case's status did
    assert _flagged(h) == {("check", FACT), ("case", "status")}
    reasons = {(g.key, g.previous_status, g.current_status, g.why) for g in h.latest_regressions()}
    assert (FACT, "pass", "fail", "status") in reasons
    # fail -> pass is not a regression; the earlier one stays in the series' history
    append_run(tmp_path, make_doc(created=DAY3))
    h = load_history(tmp_path)
    assert _flagged(h) == set()
    assert [g.run for g in _series(h, "check", FACT).regressions()] == [2]


@pytest.mark.parametrize(
    ("previous", "current", "comparison", "threshold", "worse"),
    [
        (10.0, 11.01, "<=", None, True),  # allowed 1.0 (10 % of previous)
        (10.0, 10.99, "<=", None, False),
        (10.0, 11.9, "<=", 20.0, False),  # allowed 2.0 (10 % of threshold)
        (10.0, 12.01, "<=", 20.0, True),
        (10.0, 2.0, "<=", 20.0, False),  # improved
        (-5.0, 5.0, "abs<=", 20.0, False),  # same |value|
        (-5.0, -7.01, "abs<=", 20.0, True),
        (0.90, 0.85, ">=", 0.95, False),  # allowed 0.095
        (0.90, 0.80, ">=", 0.95, True),
        (0.90, 1.00, ">=", 0.95, False),
        (0.0, 1.0, "<=", 0.0, True),  # a count of failures: 0 -> 1, nothing allowed
        (1.0, 0.0, "==", None, False),  # a fact: only its status counts
        (None, 5.0, "<=", None, False),
        (5.0, None, "<=", None, False),
    ],
)
def test_value_worse(previous, current, comparison, threshold, worse) -> None:
    assert value_worse(previous, current, direction=direction_of(comparison), threshold=threshold) is worse


def test_status_and_metric_directions() -> None:
    assert (
        status_worse("pass", "fail") and status_worse("pass", "partial") and status_worse("partial", "fail")
    )
    assert not status_worse("fail", "pass") and not status_worse("pass", "pass")
    assert not status_worse("pass", "not available") and not status_worse("not available", "fail")
    for name in ("PA1", "PF1", "PA2", "AM1", "AD2", "AF3", "TE1", "TE2"):
        assert metric_direction(name, {}) == Direction.LARGER_IS_WORSE
    assert metric_direction("src_ref_phot_std", {}) == Direction.NONE
    assert metric_direction("completeness", {"comparison": ">="}) == Direction.SMALLER_IS_WORSE


def test_diagnostic_metric_is_charted_not_flagged(tmp_path: Path) -> None:
    for created, value in ((DAY1, 0.1), (DAY2, 5.0)):
        doc = make_doc(created=created)
        doc["metrics"]["src_ref_phot_pull_median"] = {"g/0": {"value": value, "unit": "sigma"}}
        append_run(tmp_path, doc)
    h = load_history(tmp_path)
    assert [p.value for p in _series(h, "metric", "src_ref_phot_pull_median[g/0]").points] == [0.1, 5.0]
    assert _flagged(h) == set()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"this is not a database, just some text of a few bytes" * 40)
    for call in (lambda: append_run(tmp_path, make_doc(created=DAY1)), lambda: load_history(tmp_path)):
        with pytest.raises(RepositoryError, match="not an openDRP metrics store") as info:
            call()
        assert str(path) in info.value.one_line() and "move the file away" in info.value.one_line()
    assert path.read_bytes().startswith(b"this is not a database")  # left as it was


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir()
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE runs (x TEXT)")
    with pytest.raises(RepositoryError, match="no schema_version table"):
        append_run(tmp_path, make_doc(created=DAY1))
    with pytest.raises(RepositoryError, match="no schema_version table"):
        load_history(tmp_path)
    with sqlite3.connect(path) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["runs"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY1))
    with sqlite3.connect(store_path(tmp_path)) as con:
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(RepositoryError, match="schema version 99.*upgrade openDRP"):
        load_history(tmp_path)


def test_failed_append_records_nothing(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created=DAY1))
    doc = make_doc(created=DAY2)
    checks = doc["test_cases"][CASE]["checks"]
    checks.append(dict(checks[0]))  # the same check twice: the transaction fails
    with pytest.raises(sqlite3.IntegrityError):
        append_run(tmp_path, doc)
    h = load_history(tmp_path)
    assert [r.id for r in h.runs] == [1]
    assert all(len(s.points) == 1 for s in h.series)


# fork: the children only run sqlite3 (not the numerical libraries' thread pools that make the parent
# "multi-threaded"), and spawn would import the middleware again in each child (~10 s)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_two_processes_append_at_once(tmp_path: Path) -> None:
    n = 15
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=append_many, args=(str(tmp_path), c, n, barrier)) for c in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    h = load_history(tmp_path)
    assert len(h.runs) == 2 * n
    for collection in ("A", "B"):
        assert len(h.runs_of(collection)) == n
        pa1 = _series(h, "metric", "PA1[g]", collection)
        assert sorted(p.value for p in pa1.points) == list(range(n))
        # every run whole: its 2 checks are there
        assert len(_series(h, "check", CHECK, collection).points) == n
    with sqlite3.connect(store_path(tmp_path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_store_locked_too_long_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    append_run(tmp_path, make_doc(created=DAY1))
    monkeypatch.setattr(history, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(store_path(tmp_path), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(RepositoryError, match="locked by another process for more than 0.2 s"):
            append_run(tmp_path, make_doc(created=DAY2))
    finally:
        other.close()
    assert append_run(tmp_path, make_doc(created=DAY2)) == 2  # once released
