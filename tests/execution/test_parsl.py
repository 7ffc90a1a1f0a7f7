"""The Parsl executor on the micro survey (2 CCDs x 2 visits): outputs registered from the quantum-backed
workers equal the local executor's; a transient failure is retried; a rerun has nothing to do.  Site files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from opendrp.errors import ConfigurationError
from opendrp.execution import run_drp
from opendrp.execution._failures import FAULT_ENV, FAULT_STATE_ENV, classify_exception
from opendrp.execution._site import SiteConfig, load_site
from opendrp.execution.runner import ExecutionOptions
from opendrp.repo import open_butler

from ._micro import make_micro_repo

CHAIN = "HSC/runs/drp"


def _output_counts(repo: Path) -> Counter:
    """Dataset type -> number of datasets made by the runs of the output chain (inputs left out)."""
    butler = open_butler(repo)
    runs = [c for c in butler.registry.getCollectionChain(CHAIN) if c.startswith(CHAIN + "/")]
    return Counter(ref.datasetType.name for ref in butler.query_all_datasets(runs, limit=None))


def test_parsl_executor_matches_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_micro_repo(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
    (local,) = run_drp(tmp_path / "a" / "repo", steps=["drp"], progress=False, options=ExecutionOptions(2))

    monkeypatch.setenv(FAULT_ENV, "oserror@makeWarp")
    monkeypatch.setenv(FAULT_STATE_ENV, str(tmp_path))
    options = ExecutionOptions(executor="parsl", site="local", retries=2, backoff_s=0.1)
    repo = tmp_path / "b" / "repo"
    (report,) = run_drp(repo, steps=["drp"], progress=False, options=options)
    assert report.failed == [] and report.n_quanta == local.n_quanta > 50
    assert [(o.task, o.attempts, o.status) for o in report.retried] == [("makeWarp", 2, "succeeded")]
    assert (tmp_path / "fault-oserror-makeWarp").exists()
    # the graph was saved for the workers, and every output registered by the aggregation
    assert list((repo / "opendrp_execution" / "graphs").glob("HSC_runs_drp_*.qg"))
    expected = _output_counts(tmp_path / "a" / "repo")
    assert expected["calexp"] == 4 and expected["objectTable_tract"] == 1
    assert _output_counts(repo) == expected
    butler = open_butler(repo)
    (ref,) = butler.query_datasets("objectTable_tract", collections=CHAIN, explain=False)
    assert len(butler.get(ref)) > 0
    # a rerun resumes from the output chain: nothing left to do
    (again,) = run_drp(repo, steps=["drp"], progress=False, options=options)
    assert again.n_quanta == 0


def test_sites_shipped_and_validated(tmp_path: Path) -> None:
    for name, provider in (("local", "LocalProvider"), ("slurm", "SlurmProvider"), ("pbs", "PBSProProvider")):
        site = load_site(name)
        assert site.provider == name
        config = site.parsl_config(tmp_path / name)
        (htex,) = config.executors
        assert type(htex.provider).__name__ == provider
        assert htex.max_workers_per_node == site.cores
    slurm = load_site("slurm")
    assert slurm.workers == slurm.nodes * slurm.cores * slurm.max_blocks == 256
    bad = tmp_path / "bad.yaml"
    bad.write_text("provider: slurm\ncores: 4\npartiton: x\n")
    with pytest.raises(ConfigurationError, match="partiton"):
        load_site(bad)
    with pytest.raises(ConfigurationError, match="walltime"):
        SiteConfig(walltime="2h").validate()
    with pytest.raises(ConfigurationError, match="no Parsl site"):
        load_site("nowhere")


def test_lost_parsl_worker_is_transient() -> None:
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

    assert classify_exception(WorkerLost(1, "node1")) == "transient"
    assert classify_exception(ManagerLost(b"abc", "node1")) == "transient"
