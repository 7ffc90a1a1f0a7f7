"""Build the predicted quantum graph of part of a pipeline (the middleware's all-dimensions builder).

`build_graph` returns the middleware's ``PredictedQuantumGraphComponents``, the same quanta with the same
inputs as ``pipetask qgraph`` (the plain ``AllDimensionsQuantumGraphBuilder``) gives, faster:

- **Planner statistics**: an SQLite registry is ``ANALYZE``d first (sampled, ~0.3 s).  Without statistics
  SQLite may join the data-ID table the builder uploads by scanning it once per row of the other side: the
  ``ref_cat`` join on the ``visit_detector_region`` overlap table (htm7 envelopes) took 10 s for 10k quanta
  (~100 times that for 100k), the ``raw`` look-up 4 s for 10k; with statistics both search the indexes.
- **Garbage collector paused** while building and assembling (millions of small objects, no cycles to
  free): 20-65 % of the CPU time otherwise, more for larger graphs.
- **Chunks in parallel**: when every task has the ``visit`` dimension (single-frame steps), quanta of
  different visits share no intermediate dataset, so large graphs are built as groups of visits in
  ``processes`` spawned workers, each writing a ``.qg`` file, and merged here into one graph (one init
  quantum per task, shared prerequisites once).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler, DimensionGroup
from lsst.daf.butler.dimensions import (
    DimensionDataAttacher,
    DimensionRecordSet,
    DimensionRecordSetDeserializer,
)
from lsst.pipe.base import Pipeline
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder
from lsst.pipe.base.pipeline_graph import PipelineGraph
from lsst.pipe.base.quantum_graph import PredictedQuantumGraph, PredictedQuantumGraphComponents

from ..errors import ConfigurationError

__all__ = ["GraphComponents", "build_graph", "refresh_sqlite_statistics"]

_log = logging.getLogger(__name__)

#: dimension along which quanta are independent when every task has it
CHUNK_DIMENSION = "visit"
#: below this many quanta one process builds the graph (a spawned worker costs ~3 CPU-s of imports)
MIN_PARALLEL_QUANTA = 20_000
#: chunks per worker (smaller chunks: lower peak memory per worker and better balance)
CHUNKS_PER_WORKER = 2


class GraphComponents(PredictedQuantumGraphComponents):
    """The middleware's graph components, whose `assemble` pauses the cyclic garbage collector (it creates
    millions of acyclic objects; with the collector on it takes ~3x the CPU time)."""

    def assemble(self) -> PredictedQuantumGraph:
        with _gc_paused():
            return super().assemble()


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
    processes: int | None = None,
) -> GraphComponents:
    """Build the predicted quantum graph of the tasks ``labels`` into ``butler.run``.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Butler with the input collections and the output ``run`` set.
    pipeline : `str` or `pathlib.Path`
        Pipeline definition (YAML).
    labels : sequence of `str`
        Task labels or subset names to build.
    where : `str`
        Data query (butler expression language).
    output : `str`
        Output chained collection (recorded in the graph header).
    config_overrides : `dict`, optional
        ``{label: {field: value}}`` applied to the tasks built.
    skip_existing_in : sequence of `str`, optional
        Collections whose finished quanta are left out of the graph.
    attach_datastore_records : `bool`, optional
        Attach the overall inputs' datastore records (needed only by quantum-backed execution).
    processes : `int`, optional
        Worker processes for chunked building; default: the CPUs this process may use (at most 4).
        Chunks are used only when every task has the ``visit`` dimension and the query selects at least
        `MIN_PARALLEL_QUANTA` quanta; ``1`` builds in this process.

    Returns
    -------
    components : `GraphComponents`
        The middleware's ``PredictedQuantumGraphComponents``: ``.assemble()`` for the graph,
        ``.write(path)`` to save it.
    """
    pipeline_graph = _pipeline_graph(pipeline, labels, config_overrides)
    if butler.run is None:
        raise ConfigurationError("the butler has no output run", fix="make it with prepare_output()")
    refresh_sqlite_statistics(butler)
    spec = _ChunkSpec(
        pipeline=str(pipeline),
        labels=list(labels),
        config_overrides=config_overrides or {},
        where=where,
        output=output,
        skip_existing_in=list(skip_existing_in),
        attach_datastore_records=attach_datastore_records,
    )
    workers = processes if processes is not None else min(4, len(os.sched_getaffinity(0)))
    if workers > 1 and _per_visit(pipeline_graph, butler) and _n_quanta(butler, pipeline_graph, where) > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_ignore_sigint
        ) as pool:
            for _ in range(workers):
                pool.submit(_warm_up)  # the workers' imports overlap the planning query
            chunks = _plan_chunks(butler, pipeline_graph, where, workers)
            if len(chunks) > 1:
                return _build_chunked(pool, butler, spec, chunks)
    t0 = time.perf_counter()
    with _gc_paused():
        components = _as_graph_components(_build_one(butler, pipeline_graph, spec, where, None))
    _log.info("graph: %d quanta built in %.1f s", len(components.quantum_datasets), time.perf_counter() - t0)
    return components


def _ignore_sigint() -> None:
    """Chunk workers leave Ctrl-C to the driver (which stops them): no traceback from each of them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pipeline_graph(
    pipeline: str | Path, labels: Sequence[str], config_overrides: dict[str, dict[str, Any]] | None
) -> PipelineGraph:
    """The pipeline graph of the tasks (or subsets) ``labels``, with the configuration overrides."""
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
                # Python values (not expressions to parse: addConfigOverride would turn the string
                # "g,r,0.05" into a tuple): the value's repr is assigned as it is
                pipe.addConfigPython(label, f"config.{key} = {value!r}")
    return pipe.to_graph()


@dataclasses.dataclass
class _ChunkSpec:
    """What a worker needs to rebuild the pipeline graph and build one chunk (picklable)."""

    pipeline: str
    labels: list[str]
    config_overrides: dict[str, dict[str, Any]]
    where: str
    output: str
    skip_existing_in: list[str]
    attach_datastore_records: bool


def _build_one(
    butler: Butler, pipeline_graph: PipelineGraph, spec: _ChunkSpec, where: str, bind: dict[str, Any] | None
) -> PredictedQuantumGraphComponents:
    """Build the graph of the data query ``where`` (all of it or one chunk) in this process."""
    assert butler.run is not None
    builder = AllDimensionsQuantumGraphBuilder(
        pipeline_graph,
        butler,
        where=where,
        bind=bind,
        output_run=butler.run,
        skip_existing_in=spec.skip_existing_in,
    )
    metadata = {"data_query": spec.where, "skip_existing_in": spec.skip_existing_in, "skip_existing": False}
    return builder.finish(
        output=spec.output, metadata=metadata, attach_datastore_records=spec.attach_datastore_records
    )


def _per_visit(pipeline_graph: PipelineGraph, butler: Butler) -> bool:
    """Whether every task has the chunk dimension (then quanta of different visits share no dataset)."""
    pipeline_graph.resolve(registry=butler.registry)
    tasks = list(pipeline_graph.tasks.values())
    return bool(tasks) and all(CHUNK_DIMENSION in task.dimensions.names for task in tasks)


def _n_quanta(butler: Butler, pipeline_graph: PipelineGraph, where: str) -> int:
    """About how many quanta the data query selects (0 below `MIN_PARALLEL_QUANTA`)."""
    with butler.query() as query:
        dimensions = _task_dimensions(pipeline_graph)
        n = query.join_dimensions(dimensions).where(where).data_ids(dimensions).count(exact=False)
    return n if n >= MIN_PARALLEL_QUANTA else 0


def _task_dimensions(pipeline_graph: PipelineGraph) -> DimensionGroup:
    tasks = pipeline_graph.tasks.values()
    return DimensionGroup.union(*(task.dimensions for task in tasks), universe=pipeline_graph.universe)


def _warm_up() -> None:
    """Worker: nothing (the module's imports are the point)."""


def _plan_chunks(
    butler: Butler, pipeline_graph: PipelineGraph, where: str, workers: int
) -> list[tuple[str, list[int]]]:
    """Groups of ``(instrument, visits)`` with about equal numbers of quanta (``[]`` for a small graph)."""
    dimensions = _task_dimensions(pipeline_graph)
    per_visit: dict[tuple[str, int], int] = {}
    with butler.query() as query:
        for data_id in query.join_dimensions(dimensions).where(where).data_ids(dimensions):
            key = (str(data_id["instrument"]), int(data_id[CHUNK_DIMENSION]))  # type: ignore[arg-type]
            per_visit[key] = per_visit.get(key, 0) + 1
    n_chunks = min(len(per_visit), workers * CHUNKS_PER_WORKER)
    target = sum(per_visit.values()) / max(n_chunks, 1)
    chunks: list[tuple[str, list[int]]] = []
    size = 0
    for (instrument, visit), n in sorted(per_visit.items()):
        if not chunks or chunks[-1][0] != instrument or (size >= target and len(chunks) < n_chunks):
            chunks.append((instrument, []))
            size = 0
        chunks[-1][1].append(visit)
        size += n
    return chunks


def _build_chunk(butler: Butler, spec: _ChunkSpec, instrument: str, visits: list[int], path: str) -> int:
    """Worker: build the graph of one group of visits and write it to ``path``; returns its quanta.

    The group is a run of consecutive visits of the query (sorted), so the range of their IDs selects
    exactly them (with the query), without a bound parameter per visit.
    """
    gc.disable()  # a worker process that only builds: nothing to collect
    pipeline_graph = _pipeline_graph(spec.pipeline, spec.labels, spec.config_overrides)
    where = (
        f"instrument = _drp_instrument AND {CHUNK_DIMENSION} >= _drp_first AND {CHUNK_DIMENSION} <= _drp_last"
    )
    if spec.where.strip():
        where = f"({spec.where}) AND {where}"
    bind = {"_drp_instrument": instrument, "_drp_first": min(visits), "_drp_last": max(visits)}
    components = _build_one(butler, pipeline_graph, spec, where, bind)
    components.write(path)
    return len(components.quantum_datasets)


def _build_chunked(
    pool: concurrent.futures.Executor, butler: Butler, spec: _ChunkSpec, chunks: list[tuple[str, list[int]]]
) -> GraphComponents:
    """Build the chunks in the worker processes of ``pool`` and merge their graphs."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="opendrp-graph-") as tmp:
        paths = [str(Path(tmp) / f"chunk{i:03d}.qg") for i in range(len(chunks))]
        futures = [
            pool.submit(_build_chunk, butler, spec, instrument, visits, path)
            for (instrument, visits), path in zip(chunks, paths, strict=True)
        ]
        parts = []
        with _gc_paused():
            for future, path in zip(futures, paths, strict=True):
                future.result()
                parts.append(_read_components(path))  # while the other chunks are still being built
            t1 = time.perf_counter()
            merged = _merge(parts)
    n = len(merged.quantum_datasets)
    _log.info(
        "graph: %d quanta built in %d chunks in %.1f s, merged in %.1f s", n, len(chunks), t1 - t0,
        time.perf_counter() - t1,
    )  # fmt: skip
    return merged


def _read_components(path: str) -> PredictedQuantumGraphComponents:
    with PredictedQuantumGraph.open(path) as reader:
        reader.read_all()
        return reader.components


def _merge(parts: list[PredictedQuantumGraphComponents]) -> GraphComponents:
    """One graph from chunk graphs with disjoint quanta: the header and init quanta of a chunk with an init
    quantum for every task that has quanta (the init-outputs are the same for every chunk, only their IDs
    differ; a chunk whose quanta were all skipped may have none), all quanta, all dimension records."""
    first = max(parts, key=lambda part: len(part.init_quanta.root))
    merged = GraphComponents(pipeline_graph=first.pipeline_graph, header=first.header)
    merged.init_quanta = first.init_quanta
    mappings: dict[str, dict[Any, Any]] = {}
    records: dict[str, Any] = {}
    for part in parts:
        merged.quantum_datasets.update(part.quantum_datasets)
        attacher = part.dimension_data
        if attacher is None:
            continue
        for name, deserializer in attacher.deserializers.items():
            mappings.setdefault(name, {}).update(deserializer._mapping)  # noqa: SLF001 - raw rows, no decode
        for name, record_set in attacher.records.items():
            if len(record_set):
                records.setdefault(name, DimensionRecordSet(record_set.element)).update(record_set)
    universe = first.pipeline_graph.universe
    merged.dimension_data = DimensionDataAttacher(
        records=records.values(),
        deserializers=[
            DimensionRecordSetDeserializer(universe[name], rows) for name, rows in mappings.items()
        ],
        dimensions=first.pipeline_graph.get_all_dimensions(),
    )
    # no quantum of one chunk reads an output of another: the thin graphs concatenate
    merged.thin_graph.quanta = {label: [] for label in first.pipeline_graph.tasks}
    for part in parts:
        for label, quanta in part.thin_graph.quanta.items():
            merged.thin_graph.quanta.setdefault(label, []).extend(quanta)
        merged.thin_graph.edges.extend(part.thin_graph.edges)
    merged.set_header_counts()
    return merged


def _as_graph_components(components: PredictedQuantumGraphComponents) -> GraphComponents:
    return GraphComponents(**{f.name: getattr(components, f.name) for f in dataclasses.fields(components)})


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off inside (restored on exit)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def refresh_sqlite_statistics(butler: Butler) -> bool:
    """Refresh the query planner's statistics of an SQLite registry (``ANALYZE``, sampled: ~0.3 s).

    Without statistics SQLite may join the data-ID tables the builder uploads by scanning them once per row
    of the other side (``SCAN tmp`` innermost): quadratic, 4 s for the ``raw`` look-up of 10k quanta, and
    the plan flips with table sizes.  With them it searches the indexes (0.03 s).  Returns whether the
    registry is SQLite (other databases keep their own statistics).
    """
    engine = getattr(getattr(getattr(butler, "_registry", None), "_db", None), "_engine", None)
    if engine is None or engine.dialect.name != "sqlite":
        return False
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=2000")
        conn.exec_driver_sql("ANALYZE")
    return True
