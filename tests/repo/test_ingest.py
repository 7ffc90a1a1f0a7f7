"""Repository creation and raw ingest on a real SQLite registry."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from tests.conftest import make_raw

from opendrp.errors import RepositoryError
from opendrp.repo import create_repo, get_camera, get_skymap, ingest_raws, open_butler
from opendrp.repo.ingest import day_obs_of
from opendrp.skymap import SkyMapConfig


def test_create_registers_instrument_and_skymap(repo: Path, small_camera) -> None:
    butler = open_butler(repo)
    assert get_camera(butler).hash() == small_camera.hash()
    assert get_skymap(butler).config.patch_inner_pixels == 1000
    detectors = {r.id for r in butler.query_dimension_records("detector", explain=False)}
    assert detectors == {0, 1}
    filters = {r.name: r.band for r in butler.query_dimension_records("physical_filter", explain=False)}
    assert filters["HSC-G"] == "g" and filters["HSC-I"] == "i"
    with pytest.raises(RepositoryError, match="already exists"):
        create_repo(repo, camera=small_camera, skymap_config=SkyMapConfig())


def test_open_missing_repo(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="opendrp init"):
        open_butler(tmp_path / "nothing")


def test_ingest_good_and_bad_files(repo: Path, small_camera, tmp_path: Path) -> None:
    good = [
        make_raw(tmp_path / f"sci_{e}_{d}.fits", small_camera, exposure=e, detector=d)
        for e in (100, 101)
        for d in (0, 1)
    ]
    good.append(make_raw(tmp_path / "bias.fits", small_camera, exposure=5, detector=0, obs_type="bias"))
    # truncated copy of a good file
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good[0].read_bytes()[:20000])
    # missing keyword
    no_filter = tmp_path / "nofilter.fits"
    with fits.open(good[1]) as hdul:
        del hdul[0].header["FILTER01"]
        hdul[0].header["EXPID"] = 300
        hdul.writeto(no_filter)
    # unknown detector
    bad_det = tmp_path / "baddet.fits"
    with fits.open(good[1]) as hdul:
        hdul[0].header["DET-ID"] = 42
        hdul[0].header["EXPID"] = 301
        hdul.writeto(bad_det)
    # wrong shape
    wrong_shape = tmp_path / "shape.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.uint16), header=fits.getheader(good[2])).writeto(wrong_shape)
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("hello")

    butler = open_butler(repo, writeable=True)
    bad = [truncated, no_filter, bad_det, wrong_shape, not_fits]
    report = ingest_raws(butler, good + bad)
    assert sorted(report.ingested) == sorted(str(p.resolve()) for p in good)
    failed = dict(report.failed)
    assert set(failed) == {str(p) for p in bad}
    assert "truncated" in failed[str(truncated)]
    assert "FILTER01" in failed[str(no_filter)]
    assert "DET-ID=42" in failed[str(bad_det)]
    assert "raw array is 10 x 10" in failed[str(wrong_shape)]
    assert all("\n" not in msg for msg in failed.values())
    assert report.visits == {100, 101}

    refs = butler.query_datasets("raw", collections="HSC/raw/all", explain=False)
    assert len(refs) == 5
    exposures = {r.id: r for r in butler.query_dimension_records("exposure", explain=False)}
    assert exposures[5].observation_type == "bias"
    assert exposures[100].observation_type == "science"
    assert exposures[100].physical_filter == "HSC-G"
    # each ingested detector of a visit has a region and joins some patches
    rows = butler.query_data_ids(["visit", "detector", "patch"], instrument="HSC", explain=False)
    assert {(r["visit"], r["detector"]) for r in rows} == {(100, 0), (100, 1), (101, 0), (101, 1)}
    # a second ingest of the same files is a no-op reported as skipped
    again = ingest_raws(butler, good)
    assert not again.ingested and len(again.skipped) == len(good) and again.ok
    raw = butler.get("raw", instrument="HSC", exposure=100, detector=1, collections="HSC/raw/all")
    assert raw.pixels.shape == small_camera.detector(1).raw_shape
    assert abs(float(np.median(raw.pixels)) - 1000.0) < 1.0


def test_day_obs() -> None:
    from astropy.time import Time

    assert day_obs_of(Time("2026-03-01T10:00:00", scale="utc")) == 20260228
    assert day_obs_of(Time("2026-03-01T13:00:00", scale="utc")) == 20260301
