"""Build a quantum graph for part of a pipeline and execute it: in this process, or on warm workers.

A failing quantum fails alone: its error is recorded in one line and classified (`_failures`), transient
failures are retried, the remaining quanta still run, and quanta downstream of it run with the inputs that
exist (a coadd without the failed CCD) or are skipped when a required input is missing.  A second run of
the same command resumes: quanta already done in the output chain are not run again.  Progress is shown
with done/failed/skipped/remaining counts and an ETA.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import pickle
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler, CollectionType
from lsst.daf.butler.registry import RegistryDefaults

from ..errors import ConfigurationError
from ._registrar import OutputRegistrar, execute_registering, replay_journals
from ._worker import WorkerSpec, graph_dataset_types
from .graph import build_graph
from .scheduler import ExecutionOptions, InProcessPool, MemoryModel, ProcessPool

__all__ = [
    "ExecutionOptions",
    "build_graph",
    "QuantumOutcome",
    "RunReport",
    "make_timestamp",
    "prepare_output",
    "run_pipeline",
    "use_execution_options",
    "warm_workers",
]

_log = logging.getLogger(__name__)


_OPTIONS: contextvars.ContextVar[tuple[ExecutionOptions | None, bool]] = contextvars.ContextVar(
    "opendrp_execution_options", default=(None, True)
)


def use_execution_options(options: ExecutionOptions | None, *, resume: bool = True) -> None:
    """Make ``options`` and ``resume`` the defaults of the `run_pipeline` calls that follow (this context)."""
    _OPTIONS.set((options, resume))


class _WarmPool:
    """A `ProcessPool` started on first use, kept for every `run_pipeline` call of a `warm_workers` block."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool: ProcessPool | None = None

    def get(self) -> ProcessPool:
        if self.pool is None or self.pool.closed:
            self.pool = ProcessPool(None, self.processes)
        return self.pool

    def close(self, *, kill: bool = False) -> None:
        if self.pool is not None:
            self.pool.close(kill=kill)


_POOL: contextvars.ContextVar[_WarmPool | None] = contextvars.ContextVar("opendrp_warm_pool", default=None)


@contextlib.contextmanager
def warm_workers(options: ExecutionOptions | None) -> Iterator[None]:
    """Keep one set of warm worker processes for all the pipeline runs inside the block (a campaign's steps).

    Without it every `run_pipeline` call with ``processes > 1`` starts (and stops) its own workers.
    """
    if options is None or options.processes <= 1 or options.executor != "local":
        yield
        return
    holder = _WarmPool(options.processes)
    token = _POOL.set(holder)
    try:
        yield
    except BaseException:
        # Ctrl-C or an error: stop the workers now (an unfinished quantum is run again on resume, as after
        # `kill -9`), rather than wait for their running quanta
        holder.close(kill=True)
        raise
    else:
        holder.close()
    finally:
        _POOL.reset(token)


def make_timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"{int(time.time() * 1e6) % 1000000:06d}"


@dataclasses.dataclass
class QuantumOutcome:
    """How one quantum ended."""

    task: str
    data_id: dict[str, Any]
    status: str  # succeeded | no_work | skipped_existing | failed | skipped (upstream failed) | not_run
    error: str = ""
    wall_s: float = 0.0
    failure_class: str = ""  # transient | algorithm | configuration (for failed quanta)
    attempts: int = 0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclasses.dataclass
class RunReport:
    """What a pipeline run did."""

    output_run: str
    output_chain: str
    outcomes: list[QuantumOutcome] = dataclasses.field(default_factory=list)
    graph_build_s: float = 0.0
    execution_s: float = 0.0
    stopped_reason: str = ""
    report_path: str = ""
    #: calibration products not certified, one line each (`opendrp.calib.checks`)
    refused: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list[QuantumOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skipped(self) -> list[QuantumOutcome]:
        """Quanta not run because an upstream quantum failed and they needed its output."""
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def retried(self) -> list[QuantumOutcome]:
        return [o for o in self.outcomes if o.attempts > 1]

    def failure_report(self) -> str:
        """Failed and skipped quanta, grouped by failure class, one line each."""
        lines = []
        for cls in ("configuration", "algorithm", "transient"):
            group = [o for o in self.failed if o.failure_class == cls]
            if group:
                lines.append(f"{len(group)} failed ({cls}):")
                lines += [f"  {o.task} {o.data_id}: {o.error}" for o in group]
        if self.skipped:
            lines.append(f"{len(self.skipped)} skipped (a required input was not made):")
            lines += [f"  {o.task} {o.data_id}" for o in self.skipped]
        if self.retried:
            n_ok = sum(1 for o in self.retried if o.status != "failed")
            lines.append(f"{len(self.retried)} retried after a transient failure ({n_ok} then succeeded)")
        return "\n".join(lines)

    def write(self, directory: Path) -> Path:
        """Write the report as JSON (``directory/<output run>.json``); return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / (self.output_run.replace("/", "_") + ".json")
        doc = dataclasses.asdict(self)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        tmp.replace(path)
        return path

    @property
    def n_quanta(self) -> int:
        return len(self.outcomes)

    def summary(self) -> str:
        n_fail, n_skip = len(self.failed), len(self.skipped)
        if not self.outcomes:
            return f"nothing to run: every quantum is done -> {self.output_chain}"
        return (
            f"{self.n_quanta} quanta: {self.n_quanta - n_fail - n_skip} succeeded, {n_fail} failed, "
            f"{n_skip} skipped "
            f"(graph {self.graph_build_s:.1f} s, execution {self.execution_s:.1f} s) -> {self.output_chain}"
        )


def prepare_output(repo: str, *, inputs: Sequence[str], output: str, output_run: str | None = None) -> Butler:
    """A writeable butler whose default run is a new RUN at the head of the ``output`` chain.

    Earlier runs in the chain are kept (behind the new one), so outputs of previous steps stay visible.
    """
    output_run = output_run or f"{output}/{make_timestamp()}"
    butler = Butler.from_config(repo, writeable=True)
    butler.registry.registerCollection(output_run, CollectionType.RUN)
    if butler.registry.registerCollection(output, CollectionType.CHAINED):
        chain = [output_run, *inputs]
    else:
        existing = list(butler.registry.getCollectionChain(output))
        chain = [output_run, *existing, *[c for c in inputs if c not in existing]]
    butler.registry.setCollectionChain(output, chain)
    butler.registry.defaults = RegistryDefaults(collections=[output], run=output_run)
    return butler


def _data_id_dict(data_id: Any) -> dict[str, Any]:
    return {k: v for k, v in data_id.required.items()}


def execution_dir(repo: str | Path) -> Path | None:
    """Where openDRP keeps run reports and the learned memory model: ``REPO/opendrp_execution`` (local)."""
    root = Path(str(repo))
    if "://" in str(repo) and not str(repo).startswith("file://"):
        return None
    if root.suffix in (".yaml", ".yml"):
        root = root.parent
    return root / "opendrp_execution"


def _drop_empty_run(butler: Butler, output: str, run: str) -> None:
    chain = [c for c in butler.registry.getCollectionChain(output) if c != run]
    butler.registry.setCollectionChain(output, chain)
    butler.registry.removeCollection(run)


def run_pipeline(
    repo: str | Path,
    pipeline: str | Path,
    *,
    labels: Sequence[str],
    where: str,
    inputs: Sequence[str],
    output: str,
    output_run: str | None = None,
    config_overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    description: str = "",
    options: ExecutionOptions | None = None,
    resume: bool | None = None,
) -> RunReport:
    """Run the tasks ``labels`` of a pipeline YAML over the data selected by ``where``.

    Parameters
    ----------
    repo : path
        The data repository.
    pipeline : path
        Pipeline YAML (``pipelines/DRP.yaml``).
    labels : sequence of `str`
        Task labels (or subset names) to run.
    where : `str`
        Butler query expression selecting the data.
    inputs : sequence of `str`
        Input collections.
    output : `str`
        Output CHAINED collection; a new RUN is put at its head.
    config_overrides : `dict`, optional
        ``{label: {field: value}}`` config overrides.
    options : `ExecutionOptions`, optional
        Processes, retries, executor (default: one process, in this one).
    resume : `bool`, optional
        Quanta whose outputs already exist in the ``output`` chain (an earlier, interrupted or partly failed
        run of the same command) are not run again; only the rest is.

    Raises
    ------
    ConfigurationError
        A quantum failed with a configuration error: the run stopped at once (the report is written first).
    """
    default_options, default_resume = _OPTIONS.get()
    options = options or default_options or ExecutionOptions()
    resume = default_resume if resume is None else resume
    if options.executor not in ("local", "parsl"):
        raise ConfigurationError(f"unknown executor {options.executor!r}", fix="local or parsl")
    holder = _POOL.get()
    local_processes = options.executor == "local" and options.processes > 1
    if local_processes and holder is None:  # workers of this run only
        with warm_workers(options):
            return run_pipeline(
                repo, pipeline, labels=labels, where=where, inputs=inputs, output=output,
                output_run=output_run, config_overrides=config_overrides, progress=progress,
                description=description, options=options, resume=resume,
            )  # fmt: skip
    t0 = time.perf_counter()
    # warm workers start now: they import the middleware and the tasks while this process builds the graph
    pool = holder.get() if holder is not None and local_processes else None
    skip_in = [output] if resume and _collection_exists(str(repo), output) else []
    butler = prepare_output(str(repo), inputs=inputs, output=output, output_run=output_run)
    run = butler.run
    assert run is not None
    # the data query, for `opendrp verify` to rebuild the run's graph (execution.predict.run_data_queries)
    butler.registry.setCollectionDocumentation(run, json.dumps({"data_query": where}))
    edir = execution_dir(repo) or Path(tempfile.mkdtemp(prefix="opendrp-exec-"))
    # outputs of quanta that ended before an earlier run was killed: registered before deciding what to do
    replay_journals(butler, edir / "journal")
    components = build_graph(
        butler,
        pipeline,
        labels=labels,
        where=where,
        output=output,
        config_overrides=config_overrides,
        skip_existing_in=skip_in,
        attach_datastore_records=True,  # quanta run on quantum-backed butlers, which read them
        processes=options.processes if options.executor == "local" else None,  # chunk workers, big graphs
    )
    predicted = components.assemble()
    report = RunReport(output_run=run, output_chain=output, graph_build_s=time.perf_counter() - t0)
    if len(predicted) == 0:
        if skip_in:
            _log.info("%s: every quantum is already done in %s", description or "run", output)
        else:
            _log.warning("%s: the data query selected nothing to do (%s)", description or "run", where)
        _drop_empty_run(butler, output, run)
        return report
    predicted.pipeline_graph.register_dataset_types(butler)
    log_level = logging.getLogger().getEffectiveLevel() if _log.isEnabledFor(logging.INFO) else 60
    memory = MemoryModel(edir / "memory.json")
    t1 = time.perf_counter()
    if options.executor == "parsl":
        from ._parsl import run_graph_parsl

        graph_run = run_graph_parsl(
            components,
            predicted,
            butler=butler,
            repo=str(repo),
            options=options,
            memory=memory,
            execution_dir=edir,
            progress=progress,
            description=description,
            log_level=log_level,
        )
    else:
        predicted.write_configs(butler, compare_existing=False)
        predicted.write_init_outputs(butler, skip_existing=False)
        predicted.write_packages(butler, compare_existing=False)
        predicted.build_execution_quanta()
        task_nodes = {node.label: node for node in predicted.pipeline_graph.tasks.values()}
        spec = WorkerSpec(
            repo=str(repo),
            task_nodes_pickle=pickle.dumps(task_nodes),
            dataset_types_pickle=pickle.dumps(graph_dataset_types(predicted)),
            log_level=log_level,
            journal_dir=str(edir / "journal" / run.replace("/", "_")),
        )
        registrar = OutputRegistrar(butler, spec.journal_dir)
        runner_pool: InProcessPool | ProcessPool
        if pool is None:
            runner_pool = InProcessPool(spec)
        else:
            pool.configure(spec)
            runner_pool = pool
        graph_run = execute_registering(
            predicted,
            runner_pool,
            registrar,
            options=options,
            memory=memory,
            progress=progress,
            description=description,
        )
    report.execution_s = time.perf_counter() - t1
    nodes = predicted.quantum_only_xgraph.nodes
    for qid in predicted:
        node = nodes[qid]
        res = graph_run.results.get(qid)
        outcome = QuantumOutcome(
            node["pipeline_node"].label,
            _data_id_dict(node["quantum"].dataId),
            graph_run.status[qid],
            error=res.error if res and graph_run.status[qid] == "failed" else "",
            wall_s=res.wall_s if res else 0.0,
            failure_class=res.failure_class if res and graph_run.status[qid] == "failed" else "",
            attempts=graph_run.attempts.get(qid, 0),
            cpu_s=res.cpu_s if res else 0.0,
            peak_rss_mb=res.peak_rss_mb if res else 0.0,
        )
        report.outcomes.append(outcome)
    report.stopped_reason = graph_run.stopped_reason
    report.report_path = str(report.write(edir / "reports"))
    if graph_run.stopped_reason:
        raise ConfigurationError(
            f"run stopped on a configuration error: {graph_run.stopped_reason}",
            where=run,
            fix="fix the configuration and run the same command again (finished quanta are kept)",
        )
    return report


def _collection_exists(repo: str, name: str) -> bool:
    from lsst.daf.butler import MissingCollectionError

    try:
        return bool(Butler.from_config(repo).collections.query(name)) if name else False
    except MissingCollectionError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
