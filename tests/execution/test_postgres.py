"""The DRP on a PostgreSQL registry (a real server started by the test) with warm workers; credentials only
in db-auth.yaml, never in the repository's configuration or in the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendrp.errors import ConfigurationError
from opendrp.execution import run_drp
from opendrp.execution.runner import ExecutionOptions
from opendrp.repo import create_repo, open_butler

from ._micro import make_micro_repo
from ._postgres import postgres_bin, postgres_server


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory):
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed and cannot be (apt-get install postgresql)")
    with postgres_server(bindir) as server:
        yield server


def test_drp_on_postgresql(pg: dict, tmp_path: Path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("LSST_DB_AUTH", str(pg["auth_file"]))
    repo = make_micro_repo(tmp_path, registry_db=pg["url"])
    butler_yaml = (repo / "butler.yaml").read_text()
    assert "127.0.0.1" in butler_yaml and pg["password"] not in butler_yaml
    (report,) = run_drp(
        repo,
        steps=["drp"],
        where="detector = 49",
        progress=False,
        options=ExecutionOptions(processes=2, backoff_s=0.1),
    )
    assert report.failed == [] and report.n_quanta > 10
    butler = open_butler(repo)
    assert "postgresql://" in butler_yaml and not list(repo.glob("*.sqlite3"))
    assert len(butler.query_datasets("calexp", collections="HSC/runs/drp", explain=False)) == 2
    assert butler.query_datasets("objectTable_tract", collections="HSC/runs/drp", explain=False)
    out, err = capfd.readouterr()
    assert pg["password"] not in out + err
    for path in repo.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json", ".log", ".txt"):
            assert pg["password"] not in path.read_text(errors="ignore"), path


def test_password_in_url_is_refused(tmp_path: Path, small_camera) -> None:
    from opendrp.skymap import SkyMapConfig

    with pytest.raises(ConfigurationError, match="db-auth.yaml"):
        create_repo(
            tmp_path / "r",
            camera=small_camera,
            skymap_config=SkyMapConfig(),
            registry_db="postgresql://u:secret@127.0.0.1:5432/drp",
        )
