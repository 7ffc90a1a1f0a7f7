"""Fault tests on a micro survey (2 CCDs x 2 visits, ~60 quanta): a transient I/O error and a worker death
retried, a failing CCD isolated, a configuration error stopping the run, SIGKILL of the driver then the same
command finishing the campaign with nothing run twice and no partial file registered."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from opendrp.errors import ConfigurationError
from opendrp.execution import run_drp
from opendrp.execution._failures import FAULT_ENV, FAULT_STATE_ENV
from opendrp.execution.runner import ExecutionOptions
from opendrp.instrument import Camera
from opendrp.raw.format import read_raw_header, write_raw
from opendrp.repo import open_butler

from ._micro import make_micro_repo

CHAIN = "HSC/runs/drp"
FAST = ExecutionOptions(processes=2, retries=2, backoff_s=0.1)


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("micro")
    make_micro_repo(root)
    return root


@pytest.fixture()
def repo(micro: Path, tmp_path: Path) -> Path:
    shutil.copytree(micro, tmp_path / "m", symlinks=True)
    return tmp_path / "m" / "repo"


def _n_science_raws(repo: Path) -> int:
    return len(list((repo.parent / "sim" / "raw" / "science").glob("*.fits")))


def _metadata_counts(repo: Path) -> Counter:
    """(task, data ID) -> number of ``<task>_metadata`` datasets in all runs of the chain."""
    butler = open_butler(repo)
    counts: Counter = Counter()
    for ref in butler.query_all_datasets(CHAIN, find_first=False, limit=None, name="*_metadata"):
        counts[(ref.datasetType.name, tuple(sorted(ref.dataId.required.items())))] += 1
    return counts


def _assert_registered_files_complete(repo: Path) -> int:
    """Every dataset registered in the chain has its file, of the size the datastore recorded."""
    butler = open_butler(repo)
    refs = list(butler.query_all_datasets(CHAIN, find_first=False, limit=None))
    n = 0
    for ref in refs:
        for info in butler._datastore.getStoredItemsInfo(ref):  # type: ignore[attr-defined]
            path = Path(butler.getURI(ref).ospath) if not info.component else None
            if path is None:
                continue
            assert path.exists(), ref
            assert path.stat().st_size == info.file_size, (ref, path)
            n += 1
    return n


def test_transient_io_error_and_dead_worker_are_retried(repo: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FAULT_ENV, "oserror@calibrateImage,kill@makeWarp")
    monkeypatch.setenv(FAULT_STATE_ENV, str(tmp_path))
    (report,) = run_drp(repo, steps=["drp"], progress=False, options=FAST)
    assert report.failed == []
    retried = report.retried
    assert sorted(o.task for o in retried) == ["calibrateImage", "makeWarp"]
    assert all(o.attempts == 2 and o.status == "succeeded" for o in retried)
    assert (tmp_path / "fault-oserror-calibrateImage").exists()
    assert (tmp_path / "fault-kill-makeWarp").exists()
    butler = open_butler(repo)
    assert len(butler.query_datasets("calexp", collections=CHAIN, explain=False)) == _n_science_raws(repo)
    assert butler.query_datasets("objectTable_tract", collections=CHAIN, explain=False)


def _blank_one_ccd(repo: Path) -> dict:
    """Replace the pixels of one science raw by pure noise (no stars): that CCD cannot be calibrated."""
    butler = open_butler(repo)
    ref = sorted(
        butler.query_datasets(
            "raw", collections="HSC/raw/all", where="exposure.observation_type = 'science'", explain=False
        ),
        key=lambda r: (r.dataId["exposure"], r.dataId["detector"]),
    )[0]
    path = Path(butler.getURI(ref).ospath)
    camera = Camera.from_yaml(repo.parent / "sim" / "camera.yaml")
    header = read_raw_header(path, camera)
    shape = camera.detector(header.detector).raw_shape
    pixels = 1000.0 + np.random.default_rng(1).normal(0.0, 3.0, shape)
    path.unlink()
    write_raw(path, pixels, header, camera)
    return {"exposure": header.exposure_id, "detector": header.detector}


def test_failing_ccd_is_isolated(repo: Path) -> None:
    bad = _blank_one_ccd(repo)
    (report,) = run_drp(repo, steps=["drp"], progress=False, options=FAST)
    failed = report.failed
    assert [o.task for o in failed] == ["calibrateImage"]
    assert failed[0].data_id["visit"] == bad["exposure"] and failed[0].data_id["detector"] == bad["detector"]
    assert failed[0].failure_class == "algorithm"
    assert failed[0].attempts == 1  # an algorithm failure is not retried
    # the other CCDs went on to coadds and the Object table
    butler = open_butler(repo)
    assert len(butler.query_datasets("calexp", collections=CHAIN, explain=False)) == _n_science_raws(repo) - 1
    assert butler.query_datasets("objectTable_tract", collections=CHAIN, explain=False)
    assert all(o.status in ("succeeded", "no_work", "skipped") for o in report.outcomes if o not in failed)


def test_configuration_error_stops_at_once(repo: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FAULT_ENV, "config@calibrateImage")
    monkeypatch.setenv(FAULT_STATE_ENV, str(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(ConfigurationError, match="injected configuration error"):
        run_drp(repo, steps=["drp"], progress=False, options=FAST)
    assert time.monotonic() - t0 < 60
    butler = open_butler(repo)
    assert not butler.query_datasets("objectTable_tract", collections=CHAIN, explain=False, limit=1)
    reports = list((repo / "opendrp_execution" / "reports").glob("HSC_runs_drp_*.json"))
    assert len(reports) == 1 and '"not_run"' in reports[0].read_text()


def test_kill_driver_then_rerun_finishes(repo: Path) -> None:
    cmd = [sys.executable, "-m", "opendrp.cli.main", "run", str(repo), "--steps", "drp", "-j", "2"]
    cmd.append("--no-progress")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    n_before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        n_before = len(list(repo.glob("HSC/runs/drp/*/*_metadata/**/*.*")))
        if n_before >= 12:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)  # workers die with the driver (PR_SET_PDEATHSIG)
    registered_at_kill = sum(_metadata_counts(repo).values())
    # quanta that ended but whose outputs the killed driver had not registered yet are in the journal; the
    # rerun registers them before it builds its graph
    journal = repo / "opendrp_execution" / "journal"
    journaled = sum(len(p.read_text().splitlines()) for p in journal.rglob("*.jsonl"))
    assert journaled >= 10  # (a worker may be between its metadata file and its journal line)

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    counts = _metadata_counts(repo)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]  # nothing ran twice
    n_second = int(out.stdout.split(" quanta:")[0].split()[-1])
    done_first = len(counts) - n_second  # the second run ran only what was left ...
    assert done_first >= max(journaled, registered_at_kill)  # ... so what ended in the first was not rerun
    assert not any(journal.rglob("*.jsonl"))
    assert _assert_registered_files_complete(repo) > 0
    butler = open_butler(repo)
    assert len(butler.query_datasets("calexp", collections=CHAIN, explain=False)) == _n_science_raws(repo)
    assert butler.query_datasets("objectTable_tract", collections=CHAIN, explain=False)
