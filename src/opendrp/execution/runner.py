"""Build a quantum graph for part of a pipeline and execute it in this process, quantum by quantum.

A failing quantum fails alone: its error is recorded in one line, the remaining quanta still run, and quanta
downstream of it run with the inputs that exist (a coadd without the failed CCD) or are skipped by the
middleware when a required input is missing.  Progress is shown with counts and an ETA.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler, CollectionType
from lsst.daf.butler.registry import RegistryDefaults
from lsst.pipe.base import Pipeline
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder
from lsst.pipe.base.single_quantum_executor import SingleQuantumExecutor
from lsst.pipe.base.taskFactory import TaskFactory
from tqdm import tqdm

from ..errors import ConfigurationError, OpenDRPError

__all__ = ["QuantumOutcome", "RunReport", "make_timestamp", "prepare_output", "run_pipeline"]

_log = logging.getLogger(__name__)


def make_timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"{int(time.time() * 1e6) % 1000000:06d}"


@dataclasses.dataclass
class QuantumOutcome:
    """How one quantum ended."""

    task: str
    data_id: dict[str, Any]
    status: str  # succeeded | failed
    error: str = ""
    wall_s: float = 0.0


@dataclasses.dataclass
class RunReport:
    """What a pipeline run did."""

    output_run: str
    output_chain: str
    outcomes: list[QuantumOutcome] = dataclasses.field(default_factory=list)
    graph_build_s: float = 0.0
    execution_s: float = 0.0

    @property
    def failed(self) -> list[QuantumOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def n_quanta(self) -> int:
        return len(self.outcomes)

    def summary(self) -> str:
        n_fail = len(self.failed)
        return (
            f"{self.n_quanta} quanta: {self.n_quanta - n_fail} succeeded, {n_fail} failed "
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
    """
    t0 = time.perf_counter()
    pipe = Pipeline.from_uri(str(pipeline))
    wanted = set()
    subsets = pipe.subsets if hasattr(pipe, "subsets") else {}
    for label in labels:
        if label in subsets:
            wanted.update(subsets[label])
        else:
            wanted.add(label)
    all_labels = set(pipe.task_labels)
    unknown = sorted(wanted - all_labels)
    if unknown:
        raise ConfigurationError(
            f"unknown task label(s) {unknown}", where=str(pipeline), fix=f"known labels: {sorted(all_labels)}"
        )
    for label in sorted(all_labels - wanted):
        pipe.removeTask(label)
    for label, fields in (config_overrides or {}).items():
        if label in wanted:
            for key, value in fields.items():
                pipe.addConfigOverride(label, key, value)
    pipeline_graph = pipe.to_graph()
    butler = prepare_output(str(repo), inputs=inputs, output=output, output_run=output_run)
    run = butler.run
    assert run is not None
    builder = AllDimensionsQuantumGraphBuilder(pipeline_graph, butler, where=where, output_run=run)
    predicted = builder.finish(
        output=output, metadata={"data_query": where, "skip_existing_in": [], "skip_existing": False}
    ).assemble()
    report = RunReport(output_run=run, output_chain=output, graph_build_s=time.perf_counter() - t0)
    if len(predicted) == 0:
        _log.warning("%s: the data query selected nothing to do (%s)", description or "run", where)
        return report
    predicted.pipeline_graph.register_dataset_types(butler)
    predicted.write_configs(butler, compare_existing=False)
    predicted.write_init_outputs(butler, skip_existing=False)
    predicted.write_packages(butler, compare_existing=False)
    predicted.build_execution_quanta()
    executor = SingleQuantumExecutor(
        butler=butler, task_factory=TaskFactory(), raise_on_partial_outputs=False
    )
    nodes = predicted.quantum_only_xgraph.nodes
    t1 = time.perf_counter()
    bar = tqdm(total=len(predicted), desc=description or "quanta", unit="q", disable=not progress, leave=True)
    n_failed = 0
    for quantum_id in predicted:
        node = nodes[quantum_id]
        task_node, quantum = node["pipeline_node"], node["quantum"]
        label = task_node.label
        data_id = _data_id_dict(quantum.dataId)
        tq = time.perf_counter()
        try:
            executor.execute(task_node, quantum, quantum_id)
            outcome = QuantumOutcome(label, data_id, "succeeded")
        except Exception as exc:  # a quantum fails alone; the campaign goes on
            n_failed += 1
            msg = exc.one_line() if isinstance(exc, OpenDRPError) else f"{type(exc).__name__}: {exc}"
            outcome = QuantumOutcome(label, data_id, "failed", error=msg.splitlines()[0][:500])
            _log.error("%s %s failed: %s", label, data_id, outcome.error)
        outcome.wall_s = time.perf_counter() - tq
        report.outcomes.append(outcome)
        bar.set_postfix_str(f"{label} | failed={n_failed}", refresh=False)
        bar.update(1)
    bar.close()
    report.execution_s = time.perf_counter() - t1
    return report


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
