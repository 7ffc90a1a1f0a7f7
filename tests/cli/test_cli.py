"""The command line: help everywhere, one-line errors, non-zero exit, good files still ingested."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import make_raw

from opendrp.cli.main import cli


@pytest.mark.parametrize("command", ["simulate", "init", "ingest", "run", "verify", "dashboard", "demo"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_init_twice_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path / "r")]).exit_code == 0
    result = runner.invoke(cli, ["init", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "already exists" in lines[0]
    assert "Traceback" not in result.output


def test_ingest_reports_bad_files_and_ingests_good_ones(tmp_path: Path, small_camera) -> None:
    runner = CliRunner()
    cam = tmp_path / "camera.yaml"
    small_camera.to_yaml(cam)
    repo = tmp_path / "repo"
    assert runner.invoke(cli, ["init", str(repo), "--camera", str(cam)]).exit_code == 0
    good = make_raw(tmp_path / "a.fits", small_camera, exposure=1, detector=0)
    other = make_raw(tmp_path / "b.fits", small_camera, exposure=1, detector=1)
    bad = tmp_path / "bad.fits"
    bad.write_bytes(good.read_bytes()[:4000])
    result = runner.invoke(cli, ["ingest", str(repo), str(good), str(bad), str(other), "--no-progress"])
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "bad.fits" in errors[0] and "truncated" in errors[0]
    assert "ingested 2 files" in result.output


def test_run_on_missing_repo(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "none")])
    assert result.exit_code == 2 and "opendrp init" in result.output


def test_show_preset_is_complete_yaml() -> None:
    import yaml

    result = CliRunner().invoke(cli, ["simulate", "--show-preset", "tiny"])
    assert result.exit_code == 0
    data = yaml.safe_load(result.output)
    assert "seed" in data and "skymap" in data
