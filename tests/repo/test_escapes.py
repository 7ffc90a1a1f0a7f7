"""No escapes: names that become repository paths stay inside it; no password is written; copies follow
the umask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import make_raw

from opendrp.errors import ConfigurationError
from opendrp.instrument import Camera
from opendrp.repo import create_repo, ingest_raws, open_butler
from opendrp.repo.butler import _check_no_password, _redacted, check_collection_name
from opendrp.skymap import SkyMapConfig


@pytest.mark.parametrize("name", ["../../x", "a/b", "", ".hidden", "x y", "/abs"])
def test_camera_names_that_would_be_paths_are_refused(small_camera: Camera, name: str) -> None:
    data = small_camera.to_dict()
    data["name"] = name
    with pytest.raises(ConfigurationError, match=r"camera: name: .* is not a valid name"):
        Camera.from_dict(data)


@pytest.mark.parametrize("field", ["physical_filter", "band"])
def test_filter_names_that_would_be_paths_are_refused(small_camera: Camera, field: str) -> None:
    data = small_camera.to_dict()
    data["filters"][0][field] = "../up"
    with pytest.raises(ConfigurationError, match=rf"filters\[0\]\.{field}: '../up' is not a valid name"):
        Camera.from_dict(data)


def test_sky_map_name_that_would_be_a_path_is_refused(tmp_path: Path, small_camera: Camera) -> None:
    with pytest.raises(ConfigurationError, match="skymap.name: '../../sky' is not a valid name"):
        create_repo(tmp_path / "r", camera=small_camera, skymap_config=SkyMapConfig(name="../../sky"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["../../x", "u/../../x", "/abs/run", "a//b", "a/", "run one", ""])
def test_output_collection_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="--output: .* is not a valid collection name"):
        check_collection_name(name, where="--output")


@pytest.mark.parametrize("name", ["HSC/runs/drp", "u/jdoe/test-1", "w_2026.03+b"])
def test_ordinary_collection_names_pass(name: str) -> None:
    assert check_collection_name(name, where="--output") == name


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://drp:Sekr3t@db:5432/drp",
        "postgresql://drp@db:5432/drp?password=Sekr3t",
        "postgresql://drp@db/drp?sslmode=require&PASSWORD=Sekr3t",
    ],
)
def test_registry_password_anywhere_in_the_url_is_refused_without_echo(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _check_no_password(url)
    assert "carries a password" in info.value.one_line() and "Sekr3t" not in info.value.one_line()


def test_passwords_are_redacted_from_middleware_messages() -> None:
    text = "could not connect: postgresql://drp:Sekr3t@db/drp?password=Sekr3t&x=1 (host db)"
    assert _redacted(text) == "could not connect: postgresql://drp:***@db/drp?password=***&x=1 (host db)"


def test_ingested_copies_follow_the_umask(repo: Path, small_camera: Camera, tmp_path: Path) -> None:
    world_writable = make_raw(tmp_path / "a.fits", small_camera, exposure=100, detector=0)
    private = make_raw(tmp_path / "b.fits", small_camera, exposure=101, detector=0)
    os.chmod(world_writable, 0o666)
    os.chmod(private, 0o600)
    old = os.umask(0o027)
    try:
        report = ingest_raws(open_butler(repo, writeable=True), [world_writable, private])
    finally:
        os.umask(old)
    assert len(report.ingested) == 2
    copies = sorted((repo / "HSC" / "raw").rglob("*.fits"))
    assert [oct(p.stat().st_mode & 0o777) for p in copies] == ["0o640", "0o640"]
    assert all(repo.resolve() in p.resolve().parents for p in copies)
