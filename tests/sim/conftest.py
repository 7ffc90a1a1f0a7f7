"""Shared fixtures of the simulator tests: one small simulated survey and a minimal numpy ISR."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from opendrp.instrument import Camera
from opendrp.raw import read_raw
from opendrp.sim import SimConfig, load_sim_config, simulate


def small_test_config(**overrides: object) -> SimConfig:
    """2 detectors of 512 x 512 px, one band, 2 visits, 2 biases, 2 flats: ~2 s to simulate."""
    text = """
seed: 3
camera: {n_detectors: 2, nx: 512, ny: 512}
bands:
  r: {n_visits: 2, exposure_time: 100.0}
survey: {dither_radius_arcsec: 20.0}
stars: {density_per_deg2: 60000.0, mag_min: 17.0, mag_max: 23.0}
galaxies: {density_per_deg2: 20000.0, mag_min: 19.0, mag_max: 25.0}
calibration: {n_bias: 2, n_flat: 2}
"""
    config = load_sim_config(text)
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        setattr(getattr(config, section), name, value)
    return config.validate()


def assemble(path: Path, camera: Camera) -> tuple[np.ndarray, dict]:
    """Per-row overscan subtraction, un-flip, assemble, times gain: electrons ``(ny, nx)``."""
    raw = read_raw(path)
    det = camera.detector(int(raw.metadata["DET-ID"]))
    out = np.zeros((det.ny, det.nx))
    for amp in det.amplifiers:
        data = raw.pixels[amp.raw_data_slice()].astype(float)
        overscan = raw.pixels[amp.raw_overscan_slice()].astype(float)
        data = data - np.median(overscan, axis=1)[:, None]
        if amp.flip_x:
            data = data[:, ::-1]
        out[amp.assembled_slice()] = data * amp.gain
    return out, raw.metadata


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """The small test survey, simulated once (one process)."""
    config = small_test_config()
    outdir = tmp_path_factory.mktemp("sim")
    result = simulate(config, outdir, processes=1, progress=False)
    return types.SimpleNamespace(config=config, result=result, outdir=outdir)


@pytest.fixture(scope="session")
def helpers() -> types.SimpleNamespace:
    """Helper functions for the tests (``small_test_config``, ``assemble``)."""
    return types.SimpleNamespace(small_test_config=small_test_config, assemble=assemble)
