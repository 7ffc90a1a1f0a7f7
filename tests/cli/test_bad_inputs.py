"""Bad command-line inputs: one line (what, where, what to do), a non-zero exit, nothing left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner, Result
from tests.conftest import make_raw

from opendrp.cli.main import cli
from opendrp.instrument import Camera
from opendrp.repo import create_repo, ingest_raws, ingest_refcat, open_butler
from opendrp.skymap import SkyMapConfig


def _one_error_line(result: Result) -> str:
    """The single line a user reads; fails if there is a traceback or more than one line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def _camera_yaml(small_camera: Camera, path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = small_camera.to_dict()
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("detectors", []), "camera.yaml: detectors: is empty"),
        (lambda c: c["filters"].append(dict(c["filters"][0])), "physical filter 'HSC-G' appears twice"),
        (_set("ccd.nx", 0), "camera.yaml: ccd.nx: 0 is not in [1, 100000]"),
        (_set("ccd.nx", 256.5), "camera.yaml: ccd.nx: 256.5 is not an integer"),
        (_set("ccd.amplifiers.count", 0), "ccd.amplifiers.count: 0 is not in [1, 64]"),
        (_set("ccd.amplifiers.gain", 0.0), "ccd.amplifiers.gain: 0.0 is not in (0, 1000]"),
        (_set("ccd.amplifiers.gain.1", -3.0), "ccd.amplifiers.gain[1]: -3.0 is not in (0, 1000]"),
        (_set("ccd.amplifiers.gain", [3.0, 3.0]), "ccd.amplifiers.gain: has 2 values for 4 amplifiers"),
        (_set("ccd.amplifiers.read_noise", -1.0), "ccd.amplifiers.read_noise: -1.0 is not in [0, 1000]"),
        (_set("ccd.amplifiers.saturation", 0), "ccd.amplifiers.saturation: 0 is not in (0, 1e+07]"),
        (
            _set("ccd.amplifiers.names", ["A", "A", "C", "D"]),
            "ccd.amplifiers.names: ['A', 'A', 'C', 'D'] has dup",
        ),
        (
            _set("ccd.amplifiers.names", ["A", "B", "C"]),
            "ccd.amplifiers.names: has 3 values for 4 amplifiers",
        ),
        (_set("detectors.0.id", 49.7), "detectors[0].id: 49.7 is not an integer"),
        (_set("detectors.0.id", -1), "detectors[0].id: -1 is not in [0, 99999]"),
        (_set("name", "../../x"), "camera.yaml: name: '../../x' is not a valid name"),
        (_set("filters.0.physical_filter", "NONE"), "'NONE' is reserved for exposures without a filter"),
    ],
)
def test_init_refuses_a_bad_camera(
    tmp_path: Path, small_camera: Camera, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    cam = _camera_yaml(small_camera, tmp_path / "camera.yaml", edit)
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "repo"), "--camera", str(cam)])
    assert result.exit_code == 2
    assert expected in _one_error_line(result)
    assert not (tmp_path / "repo").exists()


def test_init_camera_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    cam = tmp_path / "camera.yaml"
    cam.write_text("name: HSC\nccd: {nx: 2\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "repo"), "--camera", str(cam)])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert line.startswith(f"error: {cam}: cannot read camera YAML (while parsing a flow mapping")


def test_registry_password_in_query_string_is_never_written(tmp_path: Path) -> None:
    secret = "Sekr3tPw9"
    url = f"postgresql://opendrp@127.0.0.1:1/nodb?password={secret}"
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "repo"), "--registry-db", url])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "--registry-db: the registry URL carries a password in its query string (password=)" in line
    assert secret not in result.output
    assert not (tmp_path / "repo").exists()


def test_unreachable_registry_leaves_nothing_and_init_can_be_retried(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    runner = CliRunner()
    result = runner.invoke(cli, ["init", str(repo), "--registry-db", "postgresql://opendrp@127.0.0.1:1/nodb"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "postgresql://opendrp@127.0.0.1:1/nodb: the registry database refused or did not answer" in line
    assert not repo.exists()
    assert runner.invoke(cli, ["init", str(repo)]).exit_code == 0
    assert (repo / "butler.yaml").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-j", "0"], "error: -j: 0 processes -- give -j 1 or more"),
        (["-j", "-3"], "error: -j: -3 processes"),
        (["--retries", "-1"], "error: --retries: -1 retries -- give 0 or more"),
        (["--steps", ""], "error: --steps: no step given"),
        (["--steps", ","], "error: --steps: no step given"),
        (["--steps", "foo"], "error: --steps: unknown step(s) ['foo']"),
        (["--output", "../../x"], "error: --output: '../../x' is not a valid collection name"),
        (["--output", "/abs/run"], "error: --output: '/abs/run' is not a valid collection name"),
    ],
)
def test_run_refuses_bad_options_before_doing_anything(
    tmp_path: Path, repo: Path, args: list[str], expected: str
) -> None:
    def listing() -> list[str]:
        return sorted(p.name for p in repo.iterdir() if not p.name.startswith("gen3.sqlite3-"))

    before = listing()
    result = CliRunner().invoke(cli, ["run", str(repo), "--no-progress", *args])
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(expected)
    assert listing() == before  # no execution directory
    collections = set(open_butler(repo).collections.query("*"))
    assert not any("runs" in c for c in collections)


@pytest.fixture()
def repo_with_raws(repo: Path, small_camera: Camera, tmp_path: Path) -> Path:
    raws = [make_raw(tmp_path / f"r{d}.fits", small_camera, exposure=100, detector=d) for d in (0, 1)]
    assert not ingest_raws(open_butler(repo, writeable=True), raws).failed
    return repo


def _refcat(path: Path) -> Path:
    Table({"id": [1, 2], "coord_ra": [150.1, 150.11], "coord_dec": [2.2, 2.21]}).write(path)
    return path


def test_run_without_reference_catalog(repo_with_raws: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(repo_with_raws), "--steps", "drp", "--no-progress"])
    assert result.exit_code == 2
    assert _one_error_line(result) == (
        "error: collection refcats: no reference catalog is ingested (astrometry and photometry need it) "
        "-- ingest one: opendrp ingest REPO --refcat refcat.parquet"
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("band = = 'g'", "error: --where: invalid data query ("),
        ("colour = 'g'", "error: --where: invalid data query ("),
        ("visit = 999999", "error: --where: the data query selects no raw data (visit = 999999)"),
        ("band = 'q'", "error: --where: "),
    ],
)
def test_run_bad_or_empty_query(repo_with_raws: Path, tmp_path: Path, where: str, expected: str) -> None:
    ingest_refcat(open_butler(repo_with_raws, writeable=True), _refcat(tmp_path / "ref.parquet"))
    result = CliRunner().invoke(
        cli, ["run", str(repo_with_raws), "--steps", "drp", "--where", where, "--no-progress"]
    )
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(expected)


def test_ingest_directory_finds_every_documented_extension(
    repo: Path, small_camera: Camera, tmp_path: Path
) -> None:
    d = tmp_path / "raws"
    d.mkdir()
    make_raw(d / "a.FITS", small_camera, exposure=100, detector=0)
    make_raw(d / "b.fit", small_camera, exposure=100, detector=1)
    make_raw(d / "c.Fits", small_camera, exposure=101, detector=0)
    packed = d / "d.fits.fz"
    data = fits.getdata(d / "a.FITS")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.asarray(data, np.int32))]).writeto(packed)
    (d / "README.txt").write_text("observing log\n")
    result = CliRunner().invoke(cli, ["ingest", str(repo), str(d), "--no-progress"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [
        f"skipped: {d / 'README.txt'}: not a raw file name (raw files end in .fits or .fit)",
        f"error: {packed}: compressed raw files are not ingested -- uncompress it first (funpack, gunzip): "
        "raw files end in .fits or .fit",
        "ingested 3 files (2 exposures, 2 visits); 0 already present; 0 failed",
    ]


def test_ingest_refcat_that_is_not_a_table(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "ref.parquet"
    bad.write_text("this is not a table\n")
    result = CliRunner().invoke(cli, ["ingest", str(repo), "--refcat", str(bad)])
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(f"error: {bad}: cannot read the reference catalog (")


def test_verify_unknown_collection(repo: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["verify", str(repo), "--collection", "nope/x", "--out", str(tmp_path / "v"), "--no-plots"]
    )
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(f"error: {repo}: nope/x: no such collection in the repository")


def test_skymap_config_syntax_error_leaves_nothing(tmp_path: Path) -> None:
    sky = tmp_path / "sky.yaml"
    sky.write_text("skymap: {a: [\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "repo"), "--skymap-config", str(sky)])
    assert result.exit_code == 2
    assert _one_error_line(result).startswith(f"error: {sky}: cannot read sky map config (")
    assert not (tmp_path / "repo").exists()


def test_create_repo_in_a_non_empty_directory_is_refused(tmp_path: Path, small_camera: Camera) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine\n")
    from opendrp.errors import RepositoryError

    with pytest.raises(RepositoryError, match="the directory is not empty"):
        create_repo(tmp_path / "r", camera=small_camera, skymap_config=SkyMapConfig())
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["notes.txt"]
