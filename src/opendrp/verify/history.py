"""The metrics history of a repository (the SQuaSH role): every verify run's metrics in one SQLite file.

Store
-----
``REPO/opendrp_verify/metrics.sqlite3``, one file, written by `append_run` (which `run_verify` calls at the
end of every run) and read by `load_history` (which ``opendrp dashboard`` charts).  Tables:

- ``schema_version (application, version)``: one row, ``opendrp-verify`` and `SCHEMA_VERSION`; a file
  without it, or from a newer schema, is refused with a one-line `RepositoryError`;
- ``runs (id, time, collection, opendrp_version, software, config_digest, thresholds_version, status,
  repo)``: one row per verify run; ``time`` is the document's ``created`` (ISO 8601, UTC), ``software`` the
  JSON of the package versions;
- ``metrics (run, name, scope, value, unit, direction, threshold)``: the SRD metrics of the document's
  ``metrics`` (``{"PA1": {"g": {"value": ..., "unit": ...}}}``: name ``PA1``, scope ``g``);
- ``checks (run, case_id, name, value, unit, threshold, comparison, status)``: every check of every test case
  (``name`` includes the scope, e.g. ``src_ref_phot_offset[band=g, tract=0]``); a check's value is charted as
  a metric too;
- ``cases (run, case_id, title, status)``: every test case's status.

Values that are None or not finite are stored as NULL ("not measured").

Concurrency
-----------
One transaction per run (``BEGIN IMMEDIATE`` ... ``COMMIT``, the schema created inside it when missing), so
two verify runs appending at once are serialised by SQLite's lock: each waits up to `BUSY_TIMEOUT_S` for
the other, and a run is recorded whole or not at all.  The rollback journal (not WAL) is kept: it works on
every file system a repository lives on, and a verify run appends a few thousand rows, once.

Why SQLite rather than DuckDB
-----------------------------
The history is a small, append-mostly, many-writer store (a few thousand rows per run): that is SQLite's
case, with row-level transactions, a busy timeout and file locking between processes, from the standard
library (no new dependency, nothing to pin, readable by every language and by ``sqlite3`` at a shell, the
same engine the Butler registry uses on these repositories).  DuckDB is built for analytical scans of large
columns by one writer process at a time: a second process cannot open the file for writing while another
has it open, so two verify runs could not append concurrently, and it would be a new compiled dependency.

Regression rule
---------------
Each run is compared with the **previous run of the same collection** (runs ordered by ``time``, then by
``id``).  A series (an SRD metric in one scope, a check, a test case's status) regressed in a run when

1. its status got worse: ranks ``pass`` < ``partial`` < ``fail`` (so pass -> partial, pass -> fail,
   partial -> fail); ``not available`` is not ranked (a lost measurement is shown, not flagged); or
2. its value moved in its worse direction by more than the tolerance
   ``max(TOLERANCE * |threshold|, TOLERANCE * |previous value|)`` (`TOLERANCE` = 10 %).  The worse direction
   follows from the comparison of the check: ``<=`` larger is worse, ``abs<=`` a larger ``|value|`` is
   worse, ``>=`` smaller is worse, ``==`` (a fact) has none (only its status counts).  Of the ``metrics``
   section, the SRD metrics (PA1, PF1, PA2, AMx, ADx, AFx, TEx) are lower-is-better, a metric whose entry has
   a ``comparison`` follows it, and the other (diagnostic) metrics have no direction: they are charted, never
   flagged.  A value missing in either run is no regression.
"""

from __future__ import annotations

import enum
import json
import math
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RepositoryError

__all__ = [
    "BUSY_TIMEOUT_S",
    "SCHEMA_VERSION",
    "TOLERANCE",
    "Direction",
    "History",
    "Point",
    "Regression",
    "RunRecord",
    "Series",
    "append_run",
    "direction_of",
    "load_history",
    "metric_direction",
    "status_worse",
    "store_path",
    "value_worse",
]

SCHEMA_VERSION = 1
"""Version of the tables below; a store of a newer version is refused."""
APPLICATION = "opendrp-verify"
TOLERANCE = 0.10
"""Fraction of the threshold or of the previous value (the larger) a value may worsen by unflagged."""
BUSY_TIMEOUT_S = 60.0
"""How long an append waits for another process's transaction to finish (seconds)."""

_STATUS_RANK = {"pass": 0, "partial": 1, "fail": 2}
_SRD_METRIC = re.compile(r"^(PA1|PF1|PA2|AM\d|AD\d|AF\d|TE\d)$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (application TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, collection TEXT NOT NULL,
    opendrp_version TEXT, software TEXT, config_digest TEXT, thresholds_version TEXT, status TEXT, repo TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, scope TEXT NOT NULL, value REAL,
    unit TEXT, direction TEXT NOT NULL, threshold REAL, PRIMARY KEY (run, name, scope)
);
CREATE TABLE IF NOT EXISTS checks (
    run INTEGER NOT NULL REFERENCES runs(id), case_id TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    unit TEXT, threshold REAL, comparison TEXT, status TEXT NOT NULL, PRIMARY KEY (run, case_id, name)
);
CREATE TABLE IF NOT EXISTS cases (
    run INTEGER NOT NULL REFERENCES runs(id), case_id TEXT NOT NULL, title TEXT, status TEXT NOT NULL,
    PRIMARY KEY (run, case_id)
);
"""


class Direction(enum.StrEnum):
    """Which way a value gets worse."""

    LARGER_IS_WORSE = "larger is worse"
    ABS_LARGER_IS_WORSE = "larger |value| is worse"
    SMALLER_IS_WORSE = "smaller is worse"
    NONE = "none"


def direction_of(comparison: str) -> Direction:
    """The worse direction of a check from its comparison (``<=``, ``abs<=``, ``>=``, ``==``)."""
    return {
        "<=": Direction.LARGER_IS_WORSE,
        "abs<=": Direction.ABS_LARGER_IS_WORSE,
        ">=": Direction.SMALLER_IS_WORSE,
    }.get(comparison, Direction.NONE)


def value_worse(
    previous: float | None,
    current: float | None,
    *,
    direction: Direction,
    threshold: float | None = None,
    tolerance: float = TOLERANCE,
) -> bool:
    """Whether ``current`` is worse than ``previous`` by more than the tolerance (rule 2 of the module).

    Parameters
    ----------
    previous, current : `float` or `None`
        The values of two consecutive runs (None: not measured, never a regression).
    direction : `Direction`
    threshold : `float`, optional
        The check's threshold (same unit as the values).
    tolerance : `float`
        Fraction of ``|threshold|`` or of ``|previous|``, the larger, allowed unflagged.
    """
    if previous is None or current is None or direction == Direction.NONE:
        return False
    allowed = tolerance * max(abs(threshold) if threshold is not None else 0.0, abs(previous))
    if direction == Direction.LARGER_IS_WORSE:
        change = current - previous
    elif direction == Direction.SMALLER_IS_WORSE:
        change = previous - current
    else:
        change = abs(current) - abs(previous)
    return change > allowed


def metric_direction(name: str, entry: dict[str, Any]) -> Direction:
    """The worse direction of a metric of the ``metrics`` section (rule 2 of the module docstring)."""
    if "comparison" in entry:
        return direction_of(str(entry["comparison"]))
    return Direction.LARGER_IS_WORSE if _SRD_METRIC.match(name) else Direction.NONE


def status_worse(previous: str | None, current: str | None) -> bool:
    """Whether a status got worse (rule 1: pass < partial < fail; 'not available' is not ranked)."""
    if previous not in _STATUS_RANK or current not in _STATUS_RANK:
        return False
    return _STATUS_RANK[current] > _STATUS_RANK[previous]


def store_path(repo: str | Path) -> Path:
    """The metrics store of a repository: ``REPO/opendrp_verify/metrics.sqlite3``."""
    return Path(repo) / "opendrp_verify" / "metrics.sqlite3"


# ---------------------------------------------------------------------------------------------- writing
def append_run(repo: Path, doc: dict[str, Any]) -> int:
    """Append one verify run (its document, as `run_verify` returns it) to the repository's store.

    The run, its metrics, checks and case statuses are written in one transaction.

    Returns
    -------
    run_id : `int`
        The id of the new row of ``runs``.
    """
    path = store_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _connect(path) as con, _transaction(con, path):
        _ensure_schema(con, path, create=True)
        run_id = _insert_run(con, doc)
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", _metric_rows(run_id, doc))
        con.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _check_rows(run_id, doc))
        con.executemany("INSERT INTO cases VALUES (?, ?, ?, ?)", _case_rows(run_id, doc))
    return run_id


def _insert_run(con: sqlite3.Connection, doc: dict[str, Any]) -> int:
    thresholds = doc.get("thresholds") or {}
    cur = con.execute(
        "INSERT INTO runs (time, collection, opendrp_version, software, config_digest, thresholds_version,"
        " status, repo) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(doc.get("created", "")),
            str(doc.get("collection", "")),
            doc.get("opendrp_version"),
            json.dumps(doc.get("software") or {}, sort_keys=True),
            doc.get("config_digest"),
            None if thresholds.get("version") is None else str(thresholds.get("version")),
            doc.get("status"),
            None if doc.get("repo") is None else str(doc.get("repo")),
        ),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def _metric_rows(run_id: int, doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for name, scopes in (doc.get("metrics") or {}).items():
        for scope, entry in (scopes or {}).items():
            entry = entry if isinstance(entry, dict) else {"value": entry}
            rows.append(
                (
                    run_id,
                    str(name),
                    str(scope),
                    _finite(entry.get("value")),
                    str(entry.get("unit", "")),
                    str(metric_direction(str(name), entry)),
                    _finite(entry.get("threshold")),
                )
            )
    return rows


def _check_rows(run_id: int, doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for case_id, case in (doc.get("test_cases") or {}).items():
        for check in case.get("checks") or []:
            rows.append(
                (
                    run_id,
                    str(case_id),
                    str(check.get("name", "")),
                    _finite(check.get("value")),
                    str(check.get("unit", "")),
                    _finite(check.get("threshold")),
                    str(check.get("comparison", "")),
                    str(check.get("status", "")),
                )
            )
    return rows


def _case_rows(run_id: int, doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    cases = (doc.get("test_cases") or {}).items()
    return [(run_id, str(cid), str(c.get("title", "")), str(c.get("status", ""))) for cid, c in cases]


def _finite(value: Any) -> float | None:
    """A float, or None when the value is missing, not a number or not finite (booleans count 0/1)."""
    if value is None or isinstance(value, str):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# ---------------------------------------------------------------------------------------------- the file
@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise _store_error(path, f"cannot open the metrics store ({exc})") from None
    with closing(con):
        yield con


@contextmanager
def _transaction(con: sqlite3.Connection, path: Path) -> Iterator[None]:
    """One write transaction; a lock held elsewhere longer than the busy timeout is a one-line error."""
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _locked_error(path, exc) if _is_locked(exc) else _foreign_error(path, exc) from None
    except sqlite3.DatabaseError as exc:
        raise _foreign_error(path, exc) from None
    try:
        yield
        con.execute("COMMIT")
    except BaseException as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
            raise _locked_error(path, exc) from None
        raise


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _locked_error(path: Path, exc: Exception) -> RepositoryError:
    return RepositoryError(
        f"metrics store locked by another process for more than {BUSY_TIMEOUT_S:g} s ({exc})",
        where=str(path),
        fix="rerun when the other `opendrp verify` has finished (this run's report is written)",
    )


def _foreign_error(path: Path, exc: Exception) -> RepositoryError:
    return _store_error(path, f"not an openDRP metrics store ({exc})")


def _ensure_schema(con: sqlite3.Connection, path: Path, *, create: bool) -> None:
    """Check the schema version row; create the tables in an empty file when ``create``."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            _create(con)
            return
        if "schema_version" not in tables:
            raise _store_error(path, "not an openDRP metrics store (no schema_version table)")
        row = con.execute("SELECT application, version FROM schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _store_error(path, f"not an openDRP metrics store ({exc})") from None
    if row is None or row[0] != APPLICATION:
        raise _store_error(path, "not an openDRP metrics store (foreign schema_version)")
    if int(row[1]) > SCHEMA_VERSION:
        raise RepositoryError(
            f"metrics store of schema version {row[1]}, newer than this openDRP's {SCHEMA_VERSION}",
            where=str(path),
            fix="upgrade openDRP",
        )


def _create(con: sqlite3.Connection) -> None:
    # executescript would COMMIT the open transaction: run the statements one by one inside it
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (?, ?)", (APPLICATION, SCHEMA_VERSION))


def _store_error(path: Path, what: str) -> RepositoryError:
    return RepositoryError(
        what, where=str(path), fix="move the file away (the next `opendrp verify` starts a new store)"
    )


# ---------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class RunRecord:
    """One verify run (a row of ``runs``)."""

    id: int
    time: str
    collection: str
    opendrp_version: str
    software: dict[str, str]
    config_digest: str | None
    thresholds_version: str | None
    status: str
    repo: str | None


@dataclass(frozen=True)
class Point:
    """The value and status of one series in one run (None: not measured / no status)."""

    run: int
    value: float | None
    status: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Regression:
    """One series that got worse in ``run`` compared with ``previous_run`` (the rule of the module)."""

    key: str
    kind: str
    case_id: str | None
    collection: str
    run: int
    previous_run: int
    previous_value: float | None
    current_value: float | None
    previous_status: str | None
    current_status: str | None
    why: str
    """``status`` or ``value``."""


@dataclass
class Series:
    """One metric, check or case status across the runs of one collection, in run order.

    Attributes
    ----------
    key : `str`
        ``PA1[g]`` (an SRD metric in a scope), a check's name (``src_ref_phot_offset[band=g, tract=0]``)
        or ``status`` (a test case's status).
    kind : `str`
        ``metric``, ``check`` or ``case``.
    case_id : `str` or `None`
        The test case of a check or case series.
    """

    key: str
    kind: str
    collection: str
    unit: str = ""
    direction: Direction = Direction.NONE
    comparison: str = ""
    case_id: str | None = None
    points: list[Point] = field(default_factory=list)

    @property
    def threshold(self) -> float | None:
        """The threshold of the latest run that has one."""
        return next((p.threshold for p in reversed(self.points) if p.threshold is not None), None)

    def regressions(self) -> list[Regression]:
        """Every run of this series that regressed against the previous one (``points`` are consecutive)."""
        out = []
        for prev, cur in zip(self.points, self.points[1:]):
            why = ""
            if status_worse(prev.status, cur.status):
                why = "status"
            elif value_worse(
                prev.value,
                cur.value,
                direction=self.direction,
                threshold=cur.threshold if cur.threshold is not None else prev.threshold,
            ):
                why = "value"
            if why:
                out.append(
                    Regression(
                        self.key,
                        self.kind,
                        self.case_id,
                        self.collection,
                        cur.run,
                        prev.run,
                        prev.value,
                        cur.value,
                        prev.status,
                        cur.status,
                        why,
                    )
                )
        return out


@dataclass
class History:
    """Everything in a metrics store: the runs (in time order) and the series of each collection."""

    runs: list[RunRecord]
    series: list[Series]
    case_titles: dict[str, str] = field(default_factory=dict)
    """Title of each test case (as in its latest run)."""

    def collections(self) -> list[str]:
        """Collections in the order of their first run."""
        return list(dict.fromkeys(r.collection for r in self.runs))

    def runs_of(self, collection: str) -> list[RunRecord]:
        return [r for r in self.runs if r.collection == collection]

    def latest_regressions(self) -> list[Regression]:
        """Regressions of the latest run of each collection against the previous run of that collection."""
        latest = {c: self.runs_of(c)[-1].id for c in self.collections()}
        return [g for s in self.series for g in s.regressions() if g.run == latest[s.collection]]


def load_history(repo: str | Path) -> History:
    """Read the metrics store of a repository (an empty `History` when no verify run was recorded yet).

    Raises
    ------
    RepositoryError
        ``repo`` is not a directory, or the store is not an openDRP metrics store.
    """
    if not Path(repo).is_dir():
        raise RepositoryError("no such repository", where=str(repo), fix="give the data repository directory")
    path = store_path(repo)
    if not path.exists():
        return History([], [])
    with _connect(path) as con:
        _ensure_schema(con, path, create=False)
        try:
            runs = _read_runs(con)
            series = _read_series(con, runs)
            titles = dict(con.execute("SELECT case_id, title FROM cases ORDER BY run"))
        except sqlite3.DatabaseError as exc:
            raise _store_error(path, f"unreadable metrics store ({exc})") from None
    return History(runs, series, titles)


def _read_runs(con: sqlite3.Connection) -> list[RunRecord]:
    rows = con.execute(
        "SELECT id, time, collection, opendrp_version, software, config_digest, thresholds_version, status,"
        " repo FROM runs ORDER BY time, id"
    )
    return [
        RunRecord(r[0], r[1], r[2], r[3] or "", json.loads(r[4] or "{}"), r[5], r[6], r[7] or "", r[8])
        for r in rows
    ]


def _read_series(con: sqlite3.Connection, runs: list[RunRecord]) -> list[Series]:
    """Every series, its points in run order; a series keyed by (collection, kind, case, key)."""
    order = {r.id: i for i, r in enumerate(runs)}
    collection = {r.id: r.collection for r in runs}
    series: dict[tuple[str, str, str | None, str], Series] = {}

    def add(run: int, kind: str, case_id: str | None, key: str, point: Point, **attrs: Any) -> None:
        ident = (collection[run], kind, case_id, key)
        if ident not in series:
            series[ident] = Series(key, kind, collection[run], case_id=case_id, **attrs)
        series[ident].points.append(point)

    for run, name, scope, value, unit, direction, threshold in con.execute(
        "SELECT run, name, scope, value, unit, direction, threshold FROM metrics"
    ):
        key = f"{name}[{scope}]" if scope else name
        add(run, "metric", None, key, Point(run, value, None, threshold), unit=unit, direction=direction)
    for run, case_id, name, value, unit, threshold, comparison, status in con.execute(
        "SELECT run, case_id, name, value, unit, threshold, comparison, status FROM checks"
    ):
        point = Point(run, value, status, threshold)
        attrs = {"unit": unit, "comparison": comparison, "direction": direction_of(comparison)}
        add(run, "check", case_id, name, point, **attrs)
    for run, case_id, status in con.execute("SELECT run, case_id, status FROM cases"):
        add(run, "case", case_id, "status", Point(run, None, status))
    for s in series.values():
        s.points.sort(key=lambda p: order[p.run])
        s.direction = Direction(s.direction)
    kinds = {"metric": 0, "case": 1, "check": 2}
    return sorted(series.values(), key=lambda s: (s.collection, kinds[s.kind], s.case_id or "", s.key))
