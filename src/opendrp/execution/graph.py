"""Build the predicted quantum graph of part of a pipeline (the middleware's all-dimensions builder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler
from lsst.pipe.base import Pipeline
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder

from ..errors import ConfigurationError

__all__ = ["build_graph"]


def build_graph(
    butler: Butler,
    pipeline: str | Path,
    *,
    labels: Sequence[str],
    where: str,
    output: str,
    config_overrides: dict[str, dict[str, Any]] | None = None,
    skip_existing_in: Sequence[str] = (),
    attach_datastore_records: bool = False,
) -> Any:
    """Build the predicted quantum graph of the tasks ``labels`` into ``butler.run``.

    Returns the middleware's ``PredictedQuantumGraphComponents`` (``.assemble()`` for the graph,
    ``.write(path)`` to save it).  ``attach_datastore_records`` is needed only by quantum-backed execution.
    """
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
    assert butler.run is not None
    builder = AllDimensionsQuantumGraphBuilder(
        pipeline_graph, butler, where=where, output_run=butler.run, skip_existing_in=list(skip_existing_in)
    )
    return builder.finish(
        output=output,
        metadata={"data_query": where, "skip_existing_in": list(skip_existing_in), "skip_existing": False},
        attach_datastore_records=attach_datastore_records,
    )
