"""What runs quanta: one `QuantumRunner` per process, created once, used for many quanta.

A warm worker imports the tasks and builds its executor (on quantum-backed butlers: files only, no registry)
once per graph, then runs the quanta the driver sends it, one at a time, and sends back one `QuantumResult`
each, which describes the outputs for the driver to register.  It dies with the driver
(``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread elsewhere), so a killed campaign leaves no orphan
writing into the repository.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from typing import Any

from ..errors import OpenDRPError
from ._failures import classify_exception, inject_fault

__all__ = [
    "QBBFactory",
    "QuantumResult",
    "QuantumRunner",
    "WorkerSpec",
    "graph_dataset_types",
    "peak_rss_reset",
    "worker_main",
]

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerSpec:
    """What a worker needs to run quanta of a graph: the repository, the task nodes and dataset types."""

    repo: str
    task_nodes_pickle: bytes
    #: pickled ``{name: DatasetType}`` of the graph (what the quantum-backed butlers read and write)
    dataset_types_pickle: bytes
    log_level: int = logging.WARNING
    #: where quanta journal their outputs before reporting (`_registrar`)
    journal_dir: str = ""


@dataclasses.dataclass
class QuantumResult:
    """How one attempt at one quantum ended, as a worker reports it."""

    quantum_id: uuid.UUID
    status: str  # succeeded | skipped_existing | no_work | failed
    failure_class: str = ""
    error: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    pid: int = 0
    #: outputs to register (`_registrar.describe_outputs`), when the quantum ran on a quantum-backed butler
    outputs: str = ""


def peak_rss_reset() -> None:
    """Reset this process's peak RSS counter (Linux; a no-op elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """Peak resident set size since the last `peak_rss_reset` (MB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_line_error(exc: BaseException) -> str:
    msg = exc.one_line() if isinstance(exc, OpenDRPError) else f"{type(exc).__name__}: {exc}"
    lines = msg.strip().splitlines() or [type(exc).__name__]
    return lines[0][:500]


class QBBFactory:
    """Make the `QuantumBackedButler` of a quantum (no registry: the datastore, with the quantum's records).

    What every quantum-backed butler of a worker shares is made once: the repository configuration, the
    storage classes and the standalone datastore (with its in-memory record tables), into which each
    quantum's input records are imported (`QuantumBackedButler.initialize` would re-read the configuration
    and rebuild the datastore for every quantum: ~0.1 s).  The executor closes the butler it was given when
    the quantum ends; `close_last` is when the provenance (outputs written, with their records) has been read.
    """

    def __init__(self, repo: str, universe: Any, dataset_types: dict[str, Any]) -> None:
        from lsst.daf.butler import ButlerConfig, StorageClassFactory

        self.repo = repo
        self.universe = universe
        self.dataset_types = dataset_types
        self.config = ButlerConfig(repo)
        self.storage_classes = StorageClassFactory()
        self.storage_classes.addFromConfig(self.config)
        self.datastore: Any = None
        self.database: Any = None
        self.known: set[Any] = set()  # dataset IDs whose records are in the datastore
        self.last: Any = None

    def _datastore(self) -> Any:
        from lsst.daf.butler._standalone_datastore import instantiate_standalone_datastore

        if self.datastore is None or len(self.known) > 200_000:
            if self.database is not None:
                self.database.dispose()
            self.datastore, self.database = instantiate_standalone_datastore(self.config, self.universe)
            self.datastore._set_trust_mode(True)  # outputs of upstream quanta: read at predicted locations
            self.known = set()
        return self.datastore

    def __call__(self, quantum: Any) -> Any:
        import itertools

        from lsst.daf.butler import QuantumBackedButler

        datastore = self._datastore()
        for records in quantum.datastore_records.values():
            new = records.subset(set(records.records) - self.known)
            if new is not None:
                datastore.import_records({datastore.name: new})
                self.known.update(new.records)
        inputs = [ref.id for ref in itertools.chain.from_iterable(quantum.inputs.values())]
        inputs += [ref.id for ref in quantum.initInputs.values()]
        outputs = [ref.id for ref in itertools.chain.from_iterable(quantum.outputs.values())]
        self.last = QuantumBackedButler(
            inputs,
            outputs,
            self.universe,
            datastore,
            storageClasses=self.storage_classes,
            dataset_types=self.dataset_types,
        )
        return self.last

    def close_last(self) -> None:
        if self.last is not None:
            self.known.update(ref.id for ref in self.last._actual_output_refs)
        self.last = None


def graph_dataset_types(graph: Any) -> dict[str, Any]:
    """Dataset type name -> registry definition, for every dataset type of a quantum graph."""
    return {node.name: node.dataset_type for node in graph.pipeline_graph.dataset_types.values()}


class QuantumRunner:
    """Run quanta on quantum-backed butlers (files only; no registry connection).

    The driver registers the outputs of many quanta at once (`_registrar`) from what `run` reports (and
    journals in ``journal_dir``).

    Parameters
    ----------
    repo : `str`
        The repository (its datastore configuration).
    task_nodes : `dict`
        Task label -> pipeline graph task node.
    dataset_types : `dict`
        Dataset type name -> registry definition, for every dataset type of the graph.
    journal_dir : `str`, optional
        Where to journal each quantum's outputs.
    """

    def __init__(
        self, repo: str, task_nodes: dict[str, Any], dataset_types: dict[str, Any], journal_dir: str = ""
    ) -> None:
        from lsst.pipe.base.single_quantum_executor import SingleQuantumExecutor
        from lsst.pipe.base.taskFactory import TaskFactory

        self.task_nodes = task_nodes
        self.journal_dir = journal_dir
        universe = next(iter(dataset_types.values())).dimensions.universe
        self.qbb = QBBFactory(repo, universe, dataset_types)
        self.executor = SingleQuantumExecutor(
            butler=None,
            task_factory=TaskFactory(),
            limited_butler_factory=self.qbb,
            skip_existing=True,  # its metadata exists: it finished (`_describe_outputs`)
            clobber_outputs=True,  # outputs of a partial attempt (a killed worker) are removed first
            raise_on_partial_outputs=False,
        )

    @classmethod
    def from_spec(cls, spec: WorkerSpec) -> QuantumRunner:
        return cls(
            spec.repo,
            pickle.loads(spec.task_nodes_pickle),
            pickle.loads(spec.dataset_types_pickle),
            spec.journal_dir,
        )

    def _describe_outputs(self, quantum: Any) -> str:
        """The outputs the quantum-backed butler of ``quantum`` wrote, as a journal line (`_registrar`).

        A quantum skipped because its metadata exists (its worker died after writing its outputs and before
        reporting) describes the outputs found on disk, to be registered if they are not yet.
        """
        from ._registrar import describe_outputs, journal_append

        qbb = self.qbb.last
        if qbb is None:
            return ""
        outputs = [ref for refs in quantum.outputs.values() for ref in refs]
        provenance = qbb.extract_provenance_data()
        if provenance.actual_outputs:
            refs = [ref for ref in outputs if ref.id in provenance.actual_outputs]
            line = describe_outputs(refs, provenance.datastore_records)
        else:
            refs = [ref for ref, ok in qbb.stored_many(outputs).items() if ok]
            if not refs:
                return ""
            found = qbb.export_predicted_datastore_records(refs)
            records = {name: rec.to_simple() for name, rec in found.items()}
            line = describe_outputs(refs, records, check=True)
        if self.journal_dir:
            journal_append(self.journal_dir, line)
        return line

    def run(self, quantum_id: uuid.UUID, label: str, quantum: Any) -> QuantumResult:
        task_node = self.task_nodes[label]
        peak_rss_reset()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            inject_fault(label)
            outputs = ""
            try:
                result = self.executor.execute(task_node, quantum, quantum_id)
                outputs = self._describe_outputs(quantum)
            finally:
                self.qbb.close_last()
            if result.skipped_existing:
                status = "skipped_existing"
            elif result.adjusted_no_work:
                status = "no_work"
            else:
                status = "succeeded"
            out = QuantumResult(quantum_id, status, outputs=outputs)
        except Exception as exc:  # classified and reported to the driver; the worker goes on
            _log.debug("quantum %s failed:\n%s", quantum_id, traceback.format_exc())
            out = QuantumResult(quantum_id, "failed", classify_exception(exc), one_line_error(exc))
        out.wall_s = time.perf_counter() - t0
        out.cpu_s = time.process_time() - c0
        out.peak_rss_mb = peak_rss_mb()
        out.pid = os.getpid()
        return out


def _die_with_parent() -> None:
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()
    if os.getppid() != parent:
        os._exit(1)


def _warm_up() -> None:
    """Import what every quantum needs (the middleware, openDRP's tasks), before there is work to do."""
    import importlib

    for name in (
        "lsst.daf.butler",
        "lsst.pipe.base.single_quantum_executor",
        "opendrp.tasks.calibs",
        "opendrp.tasks.sfp",
        "opendrp.tasks.coadd",
        "opendrp.tasks.multiband",
    ):
        try:
            importlib.import_module(name)
        except ImportError:  # reported when a quantum needs it
            pass
    # The ~10^6 objects made by the imports live as long as the process: out of the garbage collector's
    # reach, they are not traversed again by every full collection (~0.2 CPU-s per full-size CCD quantum).
    gc.collect()
    gc.freeze()


def worker_main(conn: Connection, spec: WorkerSpec | None = None) -> None:
    """Entry point of a warm worker process: serve quanta until told to stop.

    Messages from the driver: ``("spec", WorkerSpec)`` (open that repository and output run: the pool
    moves to the next step of a campaign), ``("quantum", id, label, pickled quantum)``, ``None`` (stop).
    A worker started without a spec imports what quanta need while the driver builds the first graph.
    Ctrl-C (SIGINT to the terminal's process group) is the driver's to handle: it stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    level = spec.log_level if spec is not None else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        from lsst.utils.threads import disable_implicit_threading

        disable_implicit_threading()
    except ImportError:
        pass
    runner: QuantumRunner | None = None

    def configure(new: WorkerSpec) -> bool:
        nonlocal runner
        logging.getLogger().setLevel(new.log_level)
        try:
            runner = QuantumRunner.from_spec(new)
        except Exception as exc:
            conn.send(("init_failed", classify_exception(exc), one_line_error(exc)))
            return False
        conn.send(("ready", os.getpid()))
        return True

    _warm_up()
    if spec is not None and not configure(spec):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        if msg[0] == "spec":
            if not configure(msg[1]):
                return
            continue
        _, quantum_id, label, quantum_pickle = msg
        if runner is None:
            failed = QuantumResult(quantum_id, "failed", "configuration", "worker not configured")
            conn.send(("result", failed))
            continue
        try:
            quantum = pickle.loads(quantum_pickle)
        except Exception as exc:
            conn.send(("result", QuantumResult(quantum_id, "failed", "configuration", one_line_error(exc))))
            continue
        conn.send(("result", runner.run(quantum_id, label, quantum)))
