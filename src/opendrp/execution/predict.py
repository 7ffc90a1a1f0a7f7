"""The outputs a pipeline run should have produced: its quantum graph rebuilt, every quantum predicted.

`predict_outputs` rebuilds the quantum graph of the pipeline that made a collection and lists every output
it predicts, for `opendrp verify` (DRP-00-05 / DRP-00-10: expected vs actual products, reference 000
Table 1).  Rules:

- **The pipeline that made the collection**: the tasks of ``labels`` (default the ``drp`` subset of
  ``pipelines/DRP.yaml``) that have a ``{label}_config`` dataset in the collection, each with *that* stored
  configuration (so configuration-dependent connections are those of the run), not the YAML's defaults.
- **The same inputs**: the non-RUN members of the collection's chain (``{instrument}/defaults``), i.e. the
  chain without the output runs; the data query is the one the runs recorded (`recorded_data_query`: each
  RUN's documentation, written by ``run_pipeline``), else the one ``opendrp run`` uses by default
  (``instrument = I AND skymap = S``).
- **Every quantum predicted**: the graph is built into a scratch output run that does not exist
  (`SCRATCH_RUN`), without skipping existing outputs, so nothing already done is left out.  Nothing is
  written to the repository (a read-only butler; the query planner statistics the run refreshed are used).

Cost: one graph build (seconds for the demos; the same as the run's own graph build).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler, CollectionType, MissingDatasetTypeError
from lsst.pipe.base import Pipeline
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder
from lsst.pipe.base.pipeline_graph import PipelineGraph

from ..errors import RepositoryError
from ..repo.butler import get_instrument_name, get_skymap
from .drp import drp_pipeline_path

__all__ = ["SCRATCH_RUN", "PredictedOutputs", "predict_outputs", "recorded_data_query"]

#: the dataset of a run's software versions (an init-output of the run, not of a task)
PACKAGES = "packages"
#: the output run the prediction is built into (never created)
SCRATCH_RUN = "opendrp/verify/scratch-prediction"


@dataclass
class PredictedOutputs:
    """The outputs of a rebuilt quantum graph.

    Attributes
    ----------
    datasets : `dict` [`str`, `list` [`dict`]]
        Dataset type -> the required data IDs (``{dimension: value}``) of its predicted datasets.
    producers : `dict` [`str`, `str`]
        Dataset type -> label of the task that produces it.
    init_outputs : `list` [`str`]
        Dataset types written once per run (``*_config``, ``packages``).
    labels : `list` [`str`]
        The task labels of the graph.
    where : `str`
        The data query of the graph.
    """

    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    producers: dict[str, str] = field(default_factory=dict)
    init_outputs: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    where: str = ""


def predict_outputs(
    repo: str | Path,
    collection: str,
    *,
    pipeline: str | Path | None = None,
    labels: Sequence[str] = ("drp",),
    where: str | None = None,
) -> PredictedOutputs:
    """Rebuild the quantum graph that made ``collection`` and list what it predicts (rules: module doc).

    Parameters
    ----------
    repo : path
        The data repository.
    collection : `str`
        The output collection of the run (CHAINED: its runs and its inputs).
    pipeline : path, optional
        Pipeline YAML (default ``pipelines/DRP.yaml``).
    labels : sequence of `str`
        Task labels or subsets of the run.
    where : `str`, optional
        Data query (default: the one the runs recorded, else the default of ``opendrp run``).
    """
    reader = Butler.from_config(str(repo), writeable=False)
    inputs = _input_collections(reader, collection)
    butler = Butler.from_config(str(repo), writeable=False, collections=inputs)
    graph = _stored_pipeline_graph(reader, collection, pipeline or drp_pipeline_path(), labels)
    if where is None:
        where = recorded_data_query(reader, collection) or (
            f"instrument = '{get_instrument_name(reader)}' AND skymap = '{get_skymap(reader).name}'"
        )
    builder = AllDimensionsQuantumGraphBuilder(graph, butler, where=where, output_run=SCRATCH_RUN)
    components = builder.finish(output=f"{SCRATCH_RUN}-chain", metadata={}, attach_datastore_records=False)
    predicted = components.assemble()
    out = PredictedOutputs(labels=sorted(graph.tasks), where=where)
    for name, by_id in predicted.datasets_by_type.items():
        if name == PACKAGES:  # the run's software versions, written by no task
            out.init_outputs.append(name)
            out.datasets[name] = [{}]
            continue
        producer = graph.producer_of(name) if name in graph.dataset_types else None
        if producer is None:
            continue  # an overall input
        out.producers[name] = producer.label
        if name in graph.tasks[producer.label].init.outputs or name.endswith("_config"):
            out.init_outputs.append(name)
        out.datasets[name] = [dict(data_id.required) for data_id in by_id]
    return out


def recorded_data_query(butler: Butler, collection: str) -> str:
    """The data query the runs of ``collection`` recorded (`run_pipeline` writes it in each RUN's
    documentation), OR-ed when they differ; '' when none recorded one."""
    queries: list[str] = []
    for info in butler.collections.query_info(collection, flatten_chains=True, include_doc=True):
        if info.type != CollectionType.RUN or not info.doc:
            continue
        try:
            query = json.loads(info.doc).get("data_query")
        except (ValueError, AttributeError):
            continue
        if isinstance(query, str) and query.strip() and query not in queries:
            queries.append(query)
    return " OR ".join(f"({q})" for q in queries)


def _input_collections(butler: Butler, collection: str) -> list[str]:
    """The members of ``collection``'s chain that are not RUNs (the inputs of the run), or itself."""
    info = butler.collections.get_info(collection)
    if info.type != CollectionType.CHAINED:
        return [collection]
    members = [c for c in info.children if butler.collections.get_info(c).type != CollectionType.RUN]
    return members or [collection]


def _stored_pipeline_graph(
    butler: Butler, collection: str, pipeline: str | Path, labels: Sequence[str]
) -> PipelineGraph:
    """The pipeline graph of the tasks of ``labels`` that ran in ``collection``, with their stored configs."""
    pipe = Pipeline.from_uri(str(pipeline))
    wanted: set[str] = set()
    for label in labels:
        wanted.update(pipe.subsets[label] if label in pipe.subsets else [label])
    full = pipe.to_graph()
    graph = PipelineGraph(universe=butler.dimensions)
    for label in sorted(wanted & set(full.tasks)):
        try:
            refs = butler.query_datasets(f"{label}_config", collections=collection, explain=False, limit=1)
        except MissingDatasetTypeError:
            refs = []
        if refs:
            graph.add_task(label, full.tasks[label].task_class, butler.get(refs[0]))
    if not graph.tasks:
        raise RepositoryError(
            f"no task of {sorted(wanted)} ran in the collection (no *_config dataset)", where=collection
        )
    graph.resolve(registry=butler.registry)
    return graph
