"""Graph building (`opendrp.execution.graph.build_graph`) on the micro survey's SQLite repository: the quanta,
their reference-catalog shards (against a direct HTM computation from each detector region), the camera and
the certified calibrations; built in one process and in chunks by worker processes, with the same result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsst.daf.butler import Butler, DatasetType, Timespan
from lsst.sphgeom import DISJOINT, HtmPixelization

from opendrp.execution import drp_pipeline_path
from opendrp.execution import graph as graph_module
from opendrp.execution.graph import build_graph
from opendrp.execution.runner import prepare_output
from opendrp.repo.butler import calib_collection, defaults_chain

from ._micro import make_micro_repo

INSTRUMENT = "HSC"
WHERE = f"instrument = '{INSTRUMENT}' AND exposure.observation_type = 'science'"
NO_CALIBS = {"calibrateImage": {"do_bias": False, "do_flat": False}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The micro survey (2 visits x 2 detectors), plus registry-only certified bias and flat per detector."""
    root = make_micro_repo(tmp_path_factory.mktemp("graph"))
    butler = Butler.from_config(str(root), writeable=True)
    reg = butler.registry
    detectors = sorted(r.id for r in reg.queryDimensionRecords("detector", instrument=INSTRUMENT))
    filters = sorted({r.physical_filter for r in reg.queryDimensionRecords("visit", instrument=INSTRUMENT)})
    universe = butler.dimensions
    bias = DatasetType(
        "bias", ["instrument", "detector"], "DrpExposure", universe=universe, isCalibration=True
    )
    flat = DatasetType(
        "flat",
        ["instrument", "detector", "physical_filter"],
        "DrpExposure",
        universe=universe,
        isCalibration=True,
    )
    reg.registerRun("test/calib/run")
    for dtype, rows in (
        (bias, [{"instrument": INSTRUMENT, "detector": d} for d in detectors]),
        (
            flat,
            [
                {"instrument": INSTRUMENT, "detector": d, "physical_filter": f}
                for d in detectors
                for f in filters
            ],
        ),
    ):
        reg.registerDatasetType(dtype)
        reg.certify(calib_collection(INSTRUMENT), reg.insertDatasets(dtype, rows, run="test/calib/run"),
                    Timespan(None, None))  # fmt: skip
    return root


def _build(repo: Path, output: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    butler = prepare_output(str(repo), inputs=[defaults_chain(INSTRUMENT)], output=output)
    components = build_graph(
        butler, drp_pipeline_path(), labels=["step1"], where=WHERE, output=output, **kwargs
    )
    graph = components.assemble()
    graph.build_execution_quanta()
    return butler, components, graph


def _quanta(graph) -> dict[tuple[int, int], Any]:  # type: ignore[no-untyped-def]
    nodes = graph.quantum_only_xgraph.nodes
    return {(q.dataId["visit"], q.dataId["detector"]): q for q in (nodes[qid]["quantum"] for qid in graph)}


def _inputs(quantum) -> dict[str, list]:  # type: ignore[no-untyped-def]
    return {dtype.name: sorted(str(ref.id) for ref in refs) for dtype, refs in quantum.inputs.items()}


def test_step1_quanta_ref_cat_shards_and_camera(repo: Path) -> None:
    butler, components, graph = _build(repo, "test/graph/single", config_overrides=NO_CALIBS, processes=1)
    science = {(r.visit, r.detector) for r in butler.registry.queryDimensionRecords(
        "visit_detector_region", instrument=INSTRUMENT)}  # fmt: skip
    quanta = _quanta(graph)
    assert len(graph) == components.header.n_quanta == len(science) == 4
    assert set(quanta) == science
    shards = {ref.dataId["htm7"]: ref.id for ref in butler.query_datasets("ref_cat", explain=False)}
    (camera,) = butler.query_datasets("camera", explain=False)
    htm = HtmPixelization(7)
    for (visit, detector), quantum in quanta.items():
        region = butler.registry.expandDataId(instrument=INSTRUMENT, visit=visit, detector=detector).region
        envelope = {p for lo, hi in htm.envelope(region) for p in range(lo, hi)}
        overlapping = {p for p in shards if not region.relate(htm.triangle(p)) & DISJOINT}
        found = {ref.dataId["htm7"]: ref.id for ref in quantum.inputs["ref_cat"]}
        assert set(found) == envelope & set(shards)  # what the middleware's overlap table gives
        assert overlapping <= set(found) and overlapping  # no shard touching the detector is missing
        assert all(found[p] == shards[p] for p in found)
        assert [ref.id for ref in quantum.inputs["camera"]] == [camera.id]
        assert len(quantum.inputs["raw"]) == 1 and quantum.inputs["raw"][0].dataId["exposure"] == visit
        assert {dtype.name for dtype in quantum.inputs} == {"raw", "camera", "ref_cat"}


def test_calibrations_found_by_validity_range(repo: Path) -> None:
    butler, _, graph = _build(repo, "test/graph/calibs", processes=1)
    for (_, detector), quantum in _quanta(graph).items():
        (bias,) = quantum.inputs["bias"]
        (flat,) = quantum.inputs["flat"]
        assert bias.dataId["detector"] == flat.dataId["detector"] == detector
        assert flat.dataId["physical_filter"] == quantum.dataId["physical_filter"]
        assert bias.run == flat.run == "test/calib/run"


def test_chunked_build_gives_the_same_graph(repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Visits built by 2 spawned workers and merged: the same quanta and inputs as one process, and the
    merged graph survives a write/read round trip (quantum-backed execution reads it)."""
    from lsst.pipe.base.quantum_graph import PredictedQuantumGraph

    single = _quanta(_build(repo, "test/graph/one", processes=1)[2])
    chunks: list[list[tuple[str, list[int]]]] = []
    plan = graph_module._plan_chunks
    monkeypatch.setattr(graph_module, "MIN_PARALLEL_QUANTA", 1)
    monkeypatch.setattr(
        graph_module, "_plan_chunks", lambda *a, **k: chunks.append(plan(*a, **k)) or chunks[-1]
    )
    _, components, graph = _build(repo, "test/graph/chunks", processes=2)
    assert len(chunks) == 1 and len(chunks[0]) == 2  # one chunk per visit
    chunked = _quanta(graph)
    assert set(chunked) == set(single)
    for key, quantum in chunked.items():
        assert _inputs(quantum) == _inputs(single[key])
        assert {d.name for d in quantum.outputs} == {d.name for d in single[key].outputs}
    assert components.header.n_quanta == len(components.thin_graph.quanta["calibrateImage"]) == 4
    components.write(tmp_path / "g.qg")
    with PredictedQuantumGraph.open(tmp_path / "g.qg") as reader:
        reader.read_all()
        reread = reader.components.assemble()
    reread.build_execution_quanta()
    assert {k: _inputs(q) for k, q in _quanta(reread).items()} == {k: _inputs(q) for k, q in chunked.items()}


def test_pipeline_not_per_visit_is_built_in_one_process(repo: Path, monkeypatch) -> None:
    """The drp pipeline (warps per visit, coadds per patch) shares datasets across visits: never chunked."""
    monkeypatch.setattr(graph_module, "MIN_PARALLEL_QUANTA", 1)
    monkeypatch.setattr(graph_module, "_plan_chunks", lambda *a, **k: pytest.fail("chunked a step2 graph"))
    butler = prepare_output(str(repo), inputs=[defaults_chain(INSTRUMENT)], output="test/graph/step2")
    output = "test/graph/step2"
    components = build_graph(butler, drp_pipeline_path(), labels=["drp"], where=WHERE, output=output,
                             config_overrides=NO_CALIBS, processes=2)  # fmt: skip
    graph = components.assemble()
    labels = {graph.quantum_only_xgraph.nodes[qid]["task_label"] for qid in graph}
    assert {"calibrateImage", "makeWarp", "assembleCoadd"} <= labels
