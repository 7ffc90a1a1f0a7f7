"""Register the outputs of quanta run on quantum-backed butlers: in batches, by the driver, never lost.

A worker runs a quantum through a `QuantumBackedButler` (files only, no registry), then describes what it
wrote (output refs and their datastore records) in one JSON line, which it appends to its journal file
(``REPO/opendrp_execution/journal/<run>/<pid>.jsonl``) before it reports the quantum done.  The driver
registers those outputs in batches (one registry transaction per second or so, instead of three per
quantum), and removes the journal of a run once everything in it is registered.

If the driver is killed, the journals of the interrupted run hold every quantum that finished, registered or
not; the next `opendrp run` registers what is missing (`replay_journals`) before it decides what is left to
do, so a finished quantum is never run twice.  A partial output is never registered: a quantum's line is
written only after the quantum ended, and its outputs are registered in one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["OutputRegistrar", "describe_outputs", "execute_registering", "journal_append", "replay_journals"]

_log = logging.getLogger(__name__)


def describe_outputs(refs: list[Any], records: dict[str, Any], *, check: bool = False) -> str:
    """One JSON line: the output refs of a quantum and their datastore records (serialized, by datastore).

    ``check``: some of them may be registered already (a quantum found done on disk): filter on replay.
    """
    return json.dumps(
        {
            "refs": [ref.to_json() for ref in refs],
            "records": {name: rec.model_dump_json() for name, rec in records.items()},
            "check": check,
        }
    )


def journal_append(directory: str, line: str) -> None:
    """Append ``line`` to this process's journal in ``directory`` (flushed to the OS before returning)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / f"{os.getpid()}.jsonl", "a") as f:
        f.write(line + "\n")
        f.flush()


class OutputRegistrar:
    """Collect the output descriptions of finished quanta and register them in batches.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        A writeable full butler of the repository.
    journal_dir : `str`, optional
        The run's journal directory, removed after the final `flush` (everything registered).
    every_s : `float`
        Register at most this long after a quantum ended.
    """

    def __init__(self, butler: Any, journal_dir: str = "", every_s: float = 1.0) -> None:
        self.butler = butler
        self.journal_dir = journal_dir
        self.every_s = every_s
        self.pending: list[str] = []
        self.last = time.monotonic()
        self.n_registered = 0

    def add(self, line: str) -> None:
        if line:
            self.pending.append(line)
        if self.pending and time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Register every pending output now (one transaction)."""
        if self.pending:
            self.n_registered += register_lines(self.butler, self.pending)
            self.pending = []
        self.last = time.monotonic()

    def close(self, *, complete: bool) -> None:
        """Register what is pending, then drop the run's journal.

        After a run that did not end normally (stopped, interrupted), results may have been journaled by a
        worker and never received: the journal is replayed first.
        """
        self.flush()
        if self.journal_dir:
            if not complete:
                replay_journals(self.butler, Path(self.journal_dir).parent, only=Path(self.journal_dir).name)
            shutil.rmtree(self.journal_dir, ignore_errors=True)


def register_lines(butler: Any, lines: list[str], *, check_all: bool = False) -> int:
    """Register the outputs described by ``lines`` (`describe_outputs`) in one transaction; return how many.

    Outputs already registered are left out for lines marked ``check`` and, with ``check_all``, for every line
    (a journal replayed after the driver was killed: part of it was registered).
    """
    from lsst.daf.butler import DatasetRef
    from lsst.daf.butler.datastore.record_data import DatastoreRecordData, SerializedDatastoreRecordData

    universe = butler.dimensions
    refs_by_type: dict[Any, list[Any]] = defaultdict(list)
    records: dict[str, Any] = {}
    registered: dict[str, set[Any]] = {}
    for line in lines:
        doc = json.loads(line)
        refs = [DatasetRef.from_json(r, universe=universe) for r in doc["refs"]]
        if doc.get("check") or check_all:
            for ref in refs:
                if ref.run not in registered:
                    registered[ref.run] = _run_dataset_ids(butler, ref.run)
            refs = [ref for ref in refs if ref.id not in registered[ref.run]]
        if not refs:
            continue
        keep = {ref.id for ref in refs}
        for ref in refs:
            refs_by_type[ref.datasetType, ref.run].append(ref)
        for name, text in doc["records"].items():
            full = DatastoreRecordData.from_simple(SerializedDatastoreRecordData.model_validate_json(text))
            data = full.subset(keep)
            if data is None:
                continue
            if name in records:
                records[name].update(data)
            else:
                records[name] = data
    n = sum(len(v) for v in refs_by_type.values())
    if n:
        with butler.transaction():
            for refs in refs_by_type.values():
                butler.registry._importDatasets(refs)
            butler._datastore.import_records(records)
    return n


def _run_dataset_ids(butler: Any, run: str) -> set[Any]:
    try:
        return set(butler.registry._fetch_run_dataset_ids(run))
    except Exception:  # the run was never registered (nothing to filter)
        return set()


def replay_journals(butler: Any, journal_root: Path, *, only: str = "") -> int:
    """Register the outputs journaled by quanta of interrupted runs and not registered yet; return how many.

    Each run's journal directory (or only the one named ``only``) is removed once its outputs are registered.
    """
    if not journal_root.is_dir():
        return 0
    total = 0
    for run_dir in sorted(p for p in journal_root.iterdir() if p.is_dir() and p.name == (only or p.name)):
        lines = []
        for path in sorted(run_dir.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    json.loads(line)
                except ValueError:  # a line cut by a kill in mid-write: that quantum had not ended
                    continue
                lines.append(line)
        n = register_lines(butler, lines, check_all=True) if lines else 0
        if n:
            _log.warning("registered %d outputs of quanta that ended before run %s stopped", n, run_dir.name)
        total += n
        shutil.rmtree(run_dir, ignore_errors=True)
    return total


def execute_registering(
    predicted: Any, pool: Any, registrar: OutputRegistrar, *, close_pool: bool = False, **options: Any
) -> Any:
    """`scheduler.execute_quanta` on ``pool``, ``registrar`` registering each quantum's outputs as they come.

    The pool is closed first (``close_pool``: no worker journals anything after that), then the registrar:
    what is pending is registered and the run's journal dropped (replayed first when the run did not end).
    """
    from .scheduler import execute_quanta

    complete = False
    try:
        graph_run = execute_quanta(
            predicted, pool, on_result=lambda label, res: registrar.add(res.outputs), **options
        )
        complete = not graph_run.stopped_reason
    finally:
        if close_pool:
            pool.close()
        registrar.close(complete=complete)
    return graph_run
