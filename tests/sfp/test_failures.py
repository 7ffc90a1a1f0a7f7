"""A CCD the algorithms cannot process fails alone, with its reason: unit level (each failure raises
`AlgorithmError` with a message naming the cause) and repository level (the reason is recorded in the run
report, the other CCDs of the visit get their calexp and src)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from opendrp.errors import AlgorithmError
from opendrp.image import Exposure, mask_bit
from opendrp.sfp import calibrate_exposure
from opendrp.sfp.synthetic import make_synthetic_field


@pytest.fixture(scope="module")
def field():
    return make_synthetic_field((384, 384), n_stars=120, n_galaxies=20, seed=11)


def test_no_sources(field) -> None:
    rng = np.random.default_rng(0)
    img = (1000 + rng.normal(0, 32, (384, 384))).astype(np.float32)
    exp = Exposure(
        img, np.zeros(img.shape, np.int32), np.full(img.shape, 1020.0, np.float32), wcs=field.exposure.wcs
    )
    with pytest.raises(AlgorithmError, match="no sources detected"):
        calibrate_exposure(exp, field.refcat, band="i")


def test_all_saturated(field) -> None:
    exp = field.exposure
    img = np.full(exp.shape, 150_000.0, np.float32)
    mask = np.full(exp.shape, mask_bit("SAT"), np.int32)
    sat = Exposure(img, mask, np.full(exp.shape, 150_000.0, np.float32), wcs=exp.wcs)
    with pytest.raises(AlgorithmError, match="no sources|PSF stars"):
        calibrate_exposure(sat, field.refcat, band="i")


def test_no_reference_matches(field) -> None:
    far = field.refcat.copy()
    far["coord_dec"] = np.asarray(far["coord_dec"]) + 60.0 / 3600  # 60" off: beyond the 20" searched
    with pytest.raises(AlgorithmError, match="no significant match"):
        calibrate_exposure(field.exposure, far, band="i")


@pytest.mark.slow
def test_unprocessable_ccd_fails_alone_with_its_reason(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.execution._micro import make_micro_repo

    from opendrp.execution import run_drp
    from opendrp.execution.runner import ExecutionOptions
    from opendrp.instrument import Camera
    from opendrp.raw.format import read_raw_header, write_raw
    from opendrp.repo import open_butler

    root = tmp_path_factory.mktemp("sfp_fail")
    repo = make_micro_repo(root)
    butler = open_butler(repo)
    raws = sorted(
        butler.query_datasets(
            "raw", collections="HSC/raw/all", where="exposure.observation_type = 'science'", explain=False
        ),
        key=lambda r: (r.dataId["exposure"], r.dataId["detector"]),
    )
    bad = raws[0]
    path = Path(butler.getURI(bad).ospath)
    camera = Camera.from_yaml(root / "sim" / "camera.yaml")
    header = read_raw_header(path, camera)
    pixels = 1000.0 + np.random.default_rng(1).normal(0.0, 3.0, camera.detector(header.detector).raw_shape)
    path.unlink()
    write_raw(path, pixels, header, camera)  # pure noise: no sources, no PSF stars
    (report,) = run_drp(
        repo, steps=["drp"], progress=False, options=ExecutionOptions(processes=1, retries=0, backoff_s=0.1)
    )
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert [o.task for o in failed] == ["calibrateImage"]
    assert failed[0].failure_class == "algorithm"
    assert "no sources detected" in failed[0].error or "PSF stars" in failed[0].error
    # the other CCD of the same visit (and the other visit) were calibrated
    same_visit = [r for r in raws if r.dataId["exposure"] == bad.dataId["exposure"] and r != bad]
    butler = open_butler(repo)
    for ref in same_visit:
        did = {"instrument": "HSC", "visit": ref.dataId["exposure"], "detector": ref.dataId["detector"]}
        assert butler.query_datasets("calexp", collections="HSC/runs/drp", data_id=did, explain=False)
        assert butler.query_datasets("src", collections="HSC/runs/drp", data_id=did, explain=False)
    n_calexp = len(butler.query_datasets("calexp", collections="HSC/runs/drp", explain=False))
    assert n_calexp == len(raws) - 1
    shutil.rmtree(root, ignore_errors=True)
