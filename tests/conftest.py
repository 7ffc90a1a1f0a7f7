"""Shared fixtures: a small camera, raw files written in the documented format, a real SQLite repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time, TimeDelta

from opendrp.instrument import Camera, load_camera
from opendrp.raw import RawHeader, write_raw
from opendrp.repo import create_repo
from opendrp.skymap import SkyMapConfig


@pytest.fixture(scope="session")
def small_camera() -> Camera:
    """Two 256 x 256 CCDs of the HSC-like camera (fast to write and read)."""
    return load_camera("hsc").subset([0, 1], nx=256, ny=256)


def make_raw(
    path: Path,
    camera: Camera,
    *,
    exposure: int,
    detector: int,
    obs_type: str = "science",
    physical_filter: str = "HSC-G",
    level: float = 1000.0,
    ra: float = 150.1,
    dec: float = 2.2,
    seed: int = 0,
) -> Path:
    det = camera.detector(detector)
    rng = np.random.default_rng(seed + 1000 * exposure + detector)
    pixels = level + rng.normal(0, 3.0, det.raw_shape)
    t0 = Time("2026-03-01T10:00:00", scale="utc") + TimeDelta(60 * exposure, format="sec")
    header = RawHeader(
        instrument=camera.name,
        exposure_id=exposure,
        obs_id=f"{camera.name}A{exposure:08d}",
        detector=detector,
        physical_filter=physical_filter,
        exposure_time=30.0,
        date_obs=t0,
        observation_type=obs_type,
        boresight_ra=ra,
        boresight_dec=dec,
        boresight_rotation=0.0,
    )
    return write_raw(path, pixels, header, camera)


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` demo, made once per test session (simulate, DRP, verify; ~100 s): the e2e tests and the
    DRP-00 product tests read it; a test that damages it restores what it changed."""
    from opendrp.cli.demo import run_demo

    out = tmp_path_factory.mktemp("tiny") / "out"
    run_demo("tiny", out, progress=False, echo=lambda s: None)
    return out


@pytest.fixture()
def repo(tmp_path: Path, small_camera: Camera) -> Path:
    root = tmp_path / "repo"
    create_repo(root, camera=small_camera, skymap_config=SkyMapConfig(patch_inner_pixels=1000))
    return root
