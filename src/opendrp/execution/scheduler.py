"""Run the quanta of a predicted quantum graph on a pool of workers, in graph order, with failure handling.

The driver keeps the graph: a quantum is sent to a free worker once every quantum upstream of it has ended;
quanta are taken in the order of the graph.  How an attempt ends decides what follows (see `_failures`):

- success (or no work): downstream quanta may start;
- transient failure: the quantum is sent again after an exponential back-off, up to ``retries`` times;
- algorithm failure (or transient failures beyond the limit): the quantum fails; a downstream quantum that
  needs one of its outputs as a *required* input is skipped (and so on down), one that takes a list of
  inputs (a coadd of many CCDs) runs with those that exist;
- configuration error: nothing more is started, the running quanta are stopped, and the reason is raised.

Peak RSS is measured per quantum; the largest per task is kept in a `MemoryModel` and, with a memory
budget, the driver starts a quantum only when the memory it is expected to need is free.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ._failures import CONFIGURATION, TRANSIENT
from ._worker import QuantumResult, QuantumRunner, WorkerSpec, worker_main

__all__ = ["ExecutionOptions", "GraphRun", "MemoryModel", "ProcessPool", "InProcessPool", "execute_quanta"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class ExecutionOptions:
    """How to execute a quantum graph.

    Attributes
    ----------
    processes : `int`
        Warm worker processes (1: run in the driver's process).
    retries : `int`
        Attempts after the first for a quantum that fails transiently.
    backoff_s : `float`
        First retry delay (s); doubles with each further attempt.
    memory_budget_mb : `float`, optional
        Memory the running quanta may use together (MB); default 90% of the machine's memory.
    executor : `str`
        ``local`` (warm processes on this machine) or ``parsl`` (a Parsl site, see `site`).
    site : `str`, optional
        Parsl site configuration (YAML) for ``executor="parsl"``.
    """

    processes: int = 1
    retries: int = 3
    backoff_s: float = 2.0
    memory_budget_mb: float | None = None
    executor: str = "local"
    site: str | None = None


@dataclasses.dataclass
class GraphRun:
    """What happened to every quantum of a graph."""

    results: dict[uuid.UUID, QuantumResult]
    status: dict[uuid.UUID, str]
    attempts: dict[uuid.UUID, int]
    stopped_reason: str = ""


class MemoryModel:
    """Peak RSS per task label (MB), learned from measured quanta and kept in a JSON file."""

    def __init__(self, path: Path | None = None, margin: float = 1.25) -> None:
        self.path = path
        self.margin = margin
        self.peak_mb: dict[str, float] = {}
        if path is not None and path.exists():
            try:
                self.peak_mb = {k: float(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError):
                _log.warning("ignoring unreadable memory model %s", path)

    def request_mb(self, label: str) -> float:
        """Memory to reserve for a quantum of ``label`` (0 when nothing has been measured yet)."""
        return self.margin * self.peak_mb.get(label, 0.0)

    def update(self, label: str, peak_mb: float) -> None:
        self.peak_mb[label] = max(self.peak_mb.get(label, 0.0), peak_mb)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.peak_mb, indent=1, sort_keys=True))
        tmp.replace(self.path)


def machine_memory_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return 8192.0


# ---------------------------------------------------------------------------------------------- pools
class InProcessPool:
    """One slot, in the driver's process (``-j 1``): no process start, no isolation from crashes."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.runner = QuantumRunner.from_spec(spec)
        self._done: list[QuantumResult] = []

    @property
    def size(self) -> int:
        return 1

    def free_slots(self) -> int:
        return 0 if self._done else 1

    def submit(self, quantum_id: uuid.UUID, label: str, quantum: Any) -> None:
        self._done.append(self.runner.run(quantum_id, label, quantum))

    def wait(self, timeout: float | None) -> list[QuantumResult]:
        done, self._done = self._done, []
        return done

    def close(self, kill: bool = False) -> None:
        pass


@dataclasses.dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    busy: uuid.UUID | None = None
    ready: bool = False


class ProcessPool:
    """``n`` warm worker processes (spawned), each running many quanta; a dead worker is replaced.

    The pool may outlive one graph: `configure` points every worker at the next step's output run, so a
    campaign of several steps starts its processes once.  Started without a spec, the workers import the
    middleware and the tasks while the driver builds the first graph.  A worker that dies while running a
    quantum (killed, out of memory) yields a transient failure of that quantum, which the driver retries.
    """

    def __init__(self, spec: WorkerSpec | None, n: int, *, start_method: str = "spawn") -> None:
        self.spec = spec
        self.n = n
        self.ctx = multiprocessing.get_context(start_method)
        self.workers: list[_Worker] = []
        self.restarts = 0
        self.closed = False
        for _ in range(n):
            self.workers.append(self._start())

    @property
    def size(self) -> int:
        return self.n

    def _start(self) -> _Worker:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(child_conn, self.spec), daemon=True
        )
        proc.start()
        child_conn.close()
        return _Worker(proc, parent_conn)

    def configure(self, spec: WorkerSpec) -> None:
        """Make every (idle) worker run quanta of ``spec`` from now on (each builds its executor once)."""
        if any(w.busy is not None for w in self.workers):
            raise RuntimeError("cannot reconfigure a pool with running quanta")
        self.spec = spec
        for i, w in enumerate(self.workers):
            w.ready = False
            try:
                w.conn.send(("spec", spec))
            except OSError:  # it died while idle: a new one starts with the spec
                w.process.join(timeout=5)
                _log.warning(
                    "worker %s died (exit code %s); starting another", w.process.pid, w.process.exitcode
                )
                self._replace(i)

    def free_slots(self) -> int:
        return sum(1 for w in self.workers if w.busy is None)

    def submit(self, quantum_id: uuid.UUID, label: str, quantum: Any) -> None:
        worker = next(w for w in self.workers if w.busy is None)
        worker.busy = quantum_id
        worker.conn.send(("quantum", quantum_id, label, pickle.dumps(quantum)))

    def _replace(self, i: int) -> None:
        self.restarts += 1
        if self.restarts > 5 * self.n + 10:
            raise RuntimeError(f"worker processes keep dying ({self.restarts} restarts)")
        self.workers[i] = self._start()

    def wait(self, timeout: float | None) -> list[QuantumResult]:
        from ..errors import ConfigurationError

        objs: list[Any] = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        ready = multiprocessing.connection.wait(objs, timeout=timeout)
        results: list[QuantumResult] = []
        for i, w in enumerate(list(self.workers)):
            dead = False
            while w.conn in ready or w.process.sentinel in ready:
                try:
                    if not w.conn.poll():
                        if w.process.sentinel in ready or not w.process.is_alive():
                            dead = True
                        break
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    dead = True
                    break
                if msg[0] == "ready":
                    w.ready = True
                elif msg[0] == "result":
                    results.append(msg[1])
                    w.busy = None
                elif msg[0] == "init_failed":
                    if msg[1] == CONFIGURATION:
                        raise ConfigurationError(f"a worker could not start: {msg[2]}")
                    dead = True
                    break
            if dead:
                w.process.join(timeout=5)
                code = w.process.exitcode
                if w.busy is not None:
                    why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    results.append(
                        QuantumResult(
                            w.busy, "failed", TRANSIENT, f"worker process {w.process.pid} died ({why})"
                        )
                    )
                _log.warning("worker %s died (exit code %s); starting another", w.process.pid, code)
                self._replace(i)
        return results

    def close(self, kill: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for w in self.workers:
            try:
                if kill:
                    w.process.kill()
                else:
                    w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()


# ---------------------------------------------------------------------------------------------- driver
def _multiple_flags(task_node: Any) -> dict[str, bool]:
    """Dataset type name -> whether the task takes a list of them (``multiple=True``)."""
    connections = task_node.get_connections()
    flags = {}
    for name, edge in task_node.inputs.items():
        conn = getattr(connections, name, None)
        flags[edge.parent_dataset_type_name] = bool(getattr(conn, "multiple", False))
    return flags


def execute_quanta(
    predicted: Any,
    pool: Any,
    *,
    options: ExecutionOptions,
    memory: MemoryModel | None = None,
    progress: bool = True,
    description: str = "",
    on_result: Callable[[str, QuantumResult], None] | None = None,
) -> GraphRun:
    """Run every quantum of ``predicted`` (execution quanta built) on ``pool``; see the module docstring.

    The pool stays open for its owner to reuse or close, except after a configuration error, which kills it.
    """
    xgraph = predicted.quantum_only_xgraph
    nodes = xgraph.nodes
    order = {qid: i for i, qid in enumerate(predicted)}
    waiting = {qid: xgraph.in_degree(qid) for qid in order}
    status: dict[uuid.UUID, str] = {}
    attempts: dict[uuid.UUID, int] = dict.fromkeys(order, 0)
    results: dict[uuid.UUID, QuantumResult] = {}
    ready: list[tuple[int, uuid.UUID]] = [(order[q], q) for q in order if waiting[q] == 0]
    heapq.heapify(ready)
    delayed: list[tuple[float, int, uuid.UUID]] = []
    running: dict[uuid.UUID, float] = {}  # quantum -> reserved memory (MB)
    memory = memory or MemoryModel()
    budget = options.memory_budget_mb or 0.9 * machine_memory_mb()
    flags_cache: dict[str, dict[str, bool]] = {}
    counts = dict.fromkeys(("done", "failed", "skipped", "retried"), 0)
    stopped = ""

    def label_of(qid: uuid.UUID) -> str:
        return nodes[qid]["pipeline_node"].label

    def release(qid: uuid.UUID) -> None:
        for child in xgraph.successors(qid):
            if child in status:
                continue
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (order[child], child))

    def needs_required(parent: uuid.UUID, child: uuid.UUID) -> bool:
        child_node = nodes[child]["pipeline_node"]
        flags = flags_cache.setdefault(child_node.label, _multiple_flags(child_node))
        produced = {ref.id for refs in nodes[parent]["quantum"].outputs.values() for ref in refs}
        for dataset_type, refs in nodes[child]["quantum"].inputs.items():
            if any(ref.id in produced for ref in refs):
                if not flags.get(dataset_type.nameAndComponent()[0], False):
                    return True
        return False

    def fail_downstream(qid: uuid.UUID) -> None:
        stack = [qid]
        while stack:
            parent = stack.pop()
            for child in xgraph.successors(parent):
                if child in status:
                    continue
                if needs_required(parent, child):
                    status[child] = "skipped"
                    counts["skipped"] += 1
                    tick()
                    stack.append(child)
                else:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        heapq.heappush(ready, (order[child], child))

    bar = tqdm(total=len(order), desc=description or "quanta", unit="q", disable=not progress, leave=True)

    def show() -> None:
        remaining = len(order) - len(status)
        bar.set_postfix_str(
            f"done={counts['done']} failed={counts['failed']} skipped={counts['skipped']} "
            f"remaining={remaining} running={len(running)}",
            refresh=False,
        )

    def tick() -> None:
        show()
        bar.update(1)

    try:
        while (ready or delayed or running) and not stopped:
            now = time.monotonic()
            while delayed and delayed[0][0] <= now:
                _, o, q = heapq.heappop(delayed)
                heapq.heappush(ready, (o, q))
            while ready and pool.free_slots() > 0:
                o, qid = ready[0]
                need = memory.request_mb(label_of(qid))
                if running and sum(running.values()) + need > budget:
                    break
                heapq.heappop(ready)
                attempts[qid] += 1
                running[qid] = need
                pool.submit(qid, label_of(qid), nodes[qid]["quantum"])
            show()
            timeout = None if not delayed else max(0.0, delayed[0][0] - time.monotonic())
            if not running:
                time.sleep(timeout or 0.0)
                continue
            for res in pool.wait(timeout):
                qid = res.quantum_id
                if qid not in running:
                    continue
                del running[qid]
                label = label_of(qid)
                results[qid] = res
                if res.peak_rss_mb and res.status != "failed":
                    memory.update(label, res.peak_rss_mb)
                if on_result is not None:
                    on_result(label, res)
                if res.status != "failed":
                    status[qid] = res.status
                    counts["done"] += 1
                    tick()
                    release(qid)
                    continue
                data_id = dict(nodes[qid]["quantum"].dataId.required)
                if res.failure_class == TRANSIENT and attempts[qid] <= options.retries:
                    delay = options.backoff_s * 2 ** (attempts[qid] - 1)
                    _log.warning(
                        "%s %s: %s (transient; retry %d/%d in %.1f s)",
                        label,
                        data_id,
                        res.error,
                        attempts[qid],
                        options.retries,
                        delay,
                    )
                    counts["retried"] += 1
                    heapq.heappush(delayed, (time.monotonic() + delay, order[qid], qid))
                    continue
                status[qid] = "failed"
                counts["failed"] += 1
                tick()
                _log.error("%s %s failed (%s): %s", label, data_id, res.failure_class, res.error)
                if res.failure_class == CONFIGURATION:
                    stopped = f"{label} {data_id}: {res.error}"
                    break
                fail_downstream(qid)
            show()
    finally:
        bar.close()
        memory.save()
    if stopped:
        pool.close(kill=True)  # stop the running quanta at once
    for qid in order:  # only after a stop: in a DAG every quantum ends with a status otherwise
        status.setdefault(qid, "not_run")
    return GraphRun(results=results, status=status, attempts=attempts, stopped_reason=stopped)
