"""Run a quantum graph on Parsl workers through the quantum-backed butler (no registry in the workers).

The driver (what ``pipetask qgraph --qgraph-datastore-records`` + ``pre-exec-init-qbb`` + ``run-qbb`` +
``butler aggregate-graph`` do, in one process):

1. saves the predicted quantum graph, with the datastore records of its inputs, to
   ``REPO/opendrp_execution/graphs/<run>.qg``;
2. writes the init-outputs (configs, packages, schemas) through a quantum-backed butler;
3. schedules the quanta with openDRP's scheduler (`scheduler.execute_quanta`: graph order, failure classes,
   retries, skipping downstream of a failure, the memory model), each attempt a Parsl app on the site's
   HighThroughputExecutor;
4. registers every output in the repository with the middleware's aggregator (``butler aggregate-graph``).

A Parsl worker process is warm: it reads the graph once (cached per process), then builds each quantum from
it and runs it with a `SingleQuantumExecutor` whose butler is a `QuantumBackedButler` made per quantum.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ._failures import classify_exception
from ._registrar import OutputRegistrar, execute_registering
from ._site import EXECUTOR_LABEL, SiteConfig, load_site
from ._worker import QuantumResult, QuantumRunner, graph_dataset_types, one_line_error
from .scheduler import ExecutionOptions, GraphRun, MemoryModel

__all__ = ["ParslPool", "aggregate_outputs", "run_graph_parsl", "run_quantum_qbb"]

_log = logging.getLogger(__name__)

# Worker-process cache: graph path -> (graph, runner).  One graph at a time per worker.
_WARM: dict[str, tuple[Any, QuantumRunner]] = {}


def _warm_up(graph_path: str, repo: str, log_level: int, journal_dir: str) -> tuple[Any, QuantumRunner]:
    from lsst.pipe.base.quantum_graph import PredictedQuantumGraph

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(log_level)
    try:
        from lsst.utils.threads import disable_implicit_threading

        disable_implicit_threading()
    except ImportError:
        pass
    graph = PredictedQuantumGraph.read_execution_quanta(graph_path)
    task_nodes = {node.label: node for node in graph.pipeline_graph.tasks.values()}
    _WARM.clear()
    _WARM[graph_path] = (graph, QuantumRunner(repo, task_nodes, graph_dataset_types(graph), journal_dir))
    return _WARM[graph_path]


def run_quantum_qbb(
    graph_path: str, repo: str, quantum_id: str, label: str, log_level: int, journal_dir: str = ""
) -> QuantumResult:
    """Body of the Parsl app: run one quantum of the saved graph in this (warm) worker process.

    Its outputs are journaled in ``journal_dir`` (on a file system the driver sees) and described in the
    result, which the driver registers (`_registrar`).
    """
    qid = uuid.UUID(quantum_id)
    try:
        graph, runner = _WARM.get(graph_path) or _warm_up(graph_path, repo, log_level, journal_dir)
        quantum = graph.build_execution_quanta([qid])[qid]
    except Exception as exc:  # an unreadable graph, a task that cannot be imported: classified
        return QuantumResult(qid, "failed", classify_exception(exc), one_line_error(exc))
    return runner.run(qid, label, quantum)


class ParslPool:
    """The scheduler's pool interface (`scheduler.ProcessPool`) on a Parsl HighThroughputExecutor.

    One slot per worker process of the site; a quantum is one Parsl app call.  A lost worker or node
    (Parsl's ``WorkerLost`` / ``ManagerLost``) is a transient failure, which the scheduler retries.
    """

    def __init__(
        self,
        site: SiteConfig,
        *,
        graph_path: Path,
        repo: str,
        run_dir: Path,
        log_level: int,
        journal_dir: str = "",
    ) -> None:
        from parsl.app.app import python_app
        from parsl.dataflow.dflow import DataFlowKernel

        run_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("parsl").propagate = False  # Parsl logs (DEBUG) go to run_dir/parsl.log only
        self.dfk: Any = DataFlowKernel(site.parsl_config(run_dir))
        self._app = python_app(run_quantum_qbb, executors=[EXECUTOR_LABEL], data_flow_kernel=self.dfk)
        self.graph_path = str(graph_path)
        self.repo = repo
        self.log_level = log_level
        self.journal_dir = journal_dir
        self.n = site.workers
        self.futures: dict[concurrent.futures.Future, uuid.UUID] = {}

    @property
    def size(self) -> int:
        return self.n

    def free_slots(self) -> int:
        return max(0, self.n - len(self.futures))

    def submit(self, quantum_id: uuid.UUID, label: str, quantum: Any) -> None:
        args = (self.graph_path, self.repo, str(quantum_id), label, self.log_level, self.journal_dir)
        future = self._app(*args)
        self.futures[future] = quantum_id

    def wait(self, timeout: float | None) -> list[QuantumResult]:
        if not self.futures:
            return []
        done, _ = concurrent.futures.wait(
            list(self.futures), timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        results = []
        for future in done:
            qid = self.futures.pop(future)
            try:
                results.append(future.result())
            except Exception as exc:  # raised outside the task: lost worker, serialization, ...
                _log.warning("quantum %s: %s", qid, one_line_error(exc))
                results.append(QuantumResult(qid, "failed", classify_exception(exc), one_line_error(exc)))
        return results

    def close(self, kill: bool = False) -> None:
        if self.dfk is None:
            return
        for future in self.futures:
            future.cancel()
        self.futures.clear()
        self.dfk.cleanup()
        self.dfk = None


def aggregate_outputs(graph_path: Path, repo: str, *, incomplete: bool) -> None:
    """Register the outputs written by the workers in the repository (``butler aggregate-graph``)."""
    from lsst.pipe.base.quantum_graph import aggregator

    config = aggregator.AggregatorConfig(
        n_processes=1,
        register_dataset_types=True,
        update_output_chain=False,  # the driver made the chain when it made the run
        incomplete=incomplete,
        defensive_ingest=True,  # a rerun of an aggregation after an interruption
    )
    aggregator.aggregate_graph(str(graph_path), repo, config)


def run_graph_parsl(
    components: Any,
    predicted: Any,
    *,
    butler: Any,
    repo: str,
    options: ExecutionOptions,
    memory: MemoryModel,
    execution_dir: Path | None,
    progress: bool = True,
    description: str = "",
    log_level: int = logging.WARNING,
) -> GraphRun:
    """Save the graph, write the init-outputs, run every quantum on the Parsl site, register the outputs."""
    site = load_site(options.site)
    run = predicted.header.output_run
    base = execution_dir if execution_dir is not None else Path(tempfile.mkdtemp(prefix="opendrp-parsl-"))
    graph_path = base / "graphs" / (run.replace("/", "_") + ".qg")
    graph_path.parent.mkdir(parents=True, exist_ok=True)
    components.write(graph_path)
    with predicted.make_init_qbb(repo) as qbb:  # pipetask pre-exec-init-qbb
        predicted.init_output_run(qbb)
    predicted.build_execution_quanta()  # the driver's scheduler needs inputs/outputs and data IDs
    if site.provider != "local" and options.memory_budget_mb is None:
        options = dataclasses.replace(options, memory_budget_mb=float("inf"))  # the batch system's job
    run_dir = base / "parsl" / run.replace("/", "_")
    journal_dir = str(base / "journal" / run.replace("/", "_"))
    pool = ParslPool(
        site, graph_path=graph_path, repo=repo, run_dir=run_dir, log_level=log_level, journal_dir=journal_dir
    )
    # the driver registers the outputs of finished quanta as they come (and a rerun after a kill registers
    # the journals first); the aggregator at the end adds the init-outputs and anything left
    graph_run = execute_registering(
        predicted,
        pool,
        OutputRegistrar(butler, journal_dir),
        close_pool=True,
        options=options,
        memory=memory,
        progress=progress,
        description=description,
    )
    complete = not graph_run.stopped_reason and all(s != "not_run" for s in graph_run.status.values())
    aggregate_outputs(graph_path, repo, incomplete=not complete)
    return graph_run
