"""Calibrations checked for what they are: the checks on arrays, and certification on a real repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opendrp.calib.checks import check_bias, check_flat
from opendrp.execution.drp import _certify
from opendrp.image import Exposure
from opendrp.repo import open_butler
from opendrp.repo.butler import register_dataset_type


def _flat(
    shape: tuple[int, int] = (64, 64), *, level: float = 1.0, rms: float = 0.01, seed: int = 1
) -> np.ndarray:
    return (level + np.random.default_rng(seed).normal(0, rms, shape)).astype(np.float32)


def _bias(shape: tuple[int, int] = (64, 64), *, level: float = 0.0, seed: int = 2) -> np.ndarray:
    return (level + np.random.default_rng(seed).normal(0, 2.6, shape)).astype(np.float32)


def test_sound_flat_and_bias_pass() -> None:
    assert check_flat(_flat(), None, {"FILTER01": "HSC-G"}, physical_filter="HSC-G") == []
    assert check_bias(_bias(), None, read_noise_e=4.5) == []


def test_flat_of_another_band() -> None:
    assert check_flat(_flat(), None, {"FILTER01": "HSC-R"}, physical_filter="HSC-G") == [
        "its header says FILTER01='HSC-R', its data ID 'HSC-G'"
    ]


def test_constant_and_zero_flats() -> None:
    constant = np.ones((64, 64), np.float32)
    assert check_flat(constant, None, {}, physical_filter="HSC-G") == [
        "pixel-to-pixel rms 0 < 0.0001: a constant array, not a measured flat"
    ]
    zero = np.zeros((64, 64), np.float32)
    assert check_flat(zero, None, {}, physical_filter="HSC-G") == [
        "median response 0 is outside [0.5, 2] (zero, not normalized)",
        "pixel-to-pixel rms 0 < 0.0001: a constant array, not a measured flat",
    ]
    masked = np.zeros((64, 64), np.int32) + 1
    assert check_flat(_flat(), masked, {}, physical_filter="HSC-G") == ["no good pixel"]


def test_bias_with_sky() -> None:
    # 3159 e-: the simulator's science frames of the tiny preset combined as a bias
    (problem,) = check_bias(_bias(level=3159.0), None, read_noise_e=4.5)
    assert problem.startswith("median level 3159.")
    assert problem.endswith("is beyond 22.5 e- (5 x read noise): light (sky, a flat) in the bias frames")
    assert check_bias(_bias(level=20.0), None, read_noise_e=4.5) == []  # within 5 read-noise sigmas


@pytest.fixture()
def calib_butler(repo: Path):  # type: ignore[no-untyped-def]
    butler = open_butler(repo, writeable=True)
    register_dataset_type(butler, "bias", ["instrument", "detector"], "DrpExposure", is_calibration=True)
    register_dataset_type(
        butler, "flat", ["instrument", "detector", "physical_filter"], "DrpExposure", is_calibration=True
    )
    butler.collections.register("HSC/calib/build/test")
    return butler


def _put(butler, image: np.ndarray, name: str, meta: dict[str, object], **data_id: object) -> None:  # type: ignore[no-untyped-def]
    mask = np.zeros(image.shape, np.int32)
    var = np.full(image.shape, 1e-4, np.float32)
    butler.put(
        Exposure(image, mask, var, metadata=meta),
        name,
        instrument="HSC",
        run="HSC/calib/build/test",
        **data_id,
    )


def _certified(butler, name: str) -> set[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    refs = butler.query_datasets(name, collections="HSC/calib", find_first=False, explain=False, limit=None)
    return {tuple(v for k, v in ref.dataId.required.items() if k != "instrument") for ref in refs}


def test_certification_refuses_what_is_not_what_it_says(calib_butler) -> None:  # type: ignore[no-untyped-def]
    b = calib_butler
    _put(b, _flat(seed=3), "flat", {"FILTER01": "HSC-G"}, detector=0, physical_filter="HSC-G")
    _put(b, _flat(seed=4), "flat", {"FILTER01": "HSC-R"}, detector=1, physical_filter="HSC-G")  # wrong band
    _put(b, np.ones((64, 64), np.float32), "flat", {"FILTER01": "HSC-I"}, detector=0, physical_filter="HSC-I")
    _put(
        b, np.zeros((64, 64), np.float32), "flat", {"FILTER01": "HSC-I"}, detector=1, physical_filter="HSC-I"
    )
    n, refused = _certify(b, "HSC/calib/build/test", "flat", "HSC")
    assert n == 1
    assert _certified(b, "flat") == {(0, "HSC-G")}
    assert [line.split(":")[0] for line in refused] == [
        "flat {detector=0, physical_filter=HSC-I}",
        "flat {detector=1, physical_filter=HSC-G}",
        "flat {detector=1, physical_filter=HSC-I}",
    ]
    assert "its header says FILTER01='HSC-R', its data ID 'HSC-G'" in refused[1]
    assert all(line.endswith("then run again") and "\n" not in line for line in refused)

    _put(b, _bias(seed=5), "bias", {}, detector=0)
    _put(b, _bias(level=3159.0, seed=6), "bias", {}, detector=1)
    n, refused = _certify(b, "HSC/calib/build/test", "bias", "HSC")
    assert n == 1 and _certified(b, "bias") == {(0,)}
    (line,) = refused
    assert line.startswith("bias {detector=1}: median level 3159.") and "light (sky, a flat)" in line
