"""Batch ingest: every file judged on its own; a bad file leaves no registry row; the good files all go in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from tests.conftest import make_raw

from opendrp.instrument import Camera
from opendrp.raw import read_raw_header
from opendrp.repo import ingest_raws, open_butler
from opendrp.repo.butler import polygon_from_points


def _edit(src: Path, dest: Path, **cards: object) -> Path:
    with fits.open(src) as hdul:
        for key, value in cards.items():
            hdul[0].header[key] = value
        hdul.writeto(dest)
    return dest


def _with_data(
    src: Path, dest: Path, data: np.ndarray | None, *, extra_hdu: bool = False, **cards: object
) -> Path:
    hdr = fits.getheader(src)
    for key in ("BZERO", "BSCALE"):
        hdr.remove(key, ignore_missing=True)
    for key, value in cards.items():
        hdr[key] = value
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [fits.PrimaryHDU(data=data, header=hdr)]
    if extra_hdu:
        hdus.append(fits.ImageHDU(np.zeros((4, 4), np.float32)))
    fits.HDUList(hdus).writeto(dest)
    return dest


def _raws(butler) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    refs = butler.query_datasets("raw", collections="HSC/raw/all", explain=False, limit=None)
    return {(int(r.dataId["exposure"]), int(r.dataId["detector"])) for r in refs}


def _exposures(butler) -> dict[int, object]:  # type: ignore[no-untyped-def]
    return {int(r.id): r for r in butler.query_dimension_records("exposure", explain=False)}


def test_batch_with_broken_files_ingests_every_good_file(
    repo: Path, small_camera: Camera, tmp_path: Path
) -> None:
    good = [
        make_raw(tmp_path / f"sci_{e}_{d}.fits", small_camera, exposure=e, detector=d)
        for e in (100, 101)
        for d in (0, 1)
    ]
    good.append(make_raw(tmp_path / "bias.fits", small_camera, exposure=5, detector=0, obs_type="bias"))
    # the first file of exposure 104 defines it; its second file disagrees on EXPTIME
    good.append(make_raw(tmp_path / "e104_0.fits", small_camera, exposure=104, detector=0))
    src = good[0]
    d = tmp_path / "bad"
    d.mkdir()
    shape = fits.getdata(src).shape
    bad = {
        "clash": _edit(src, d / "clash.fits", EXPID=102, **{"EXP-ID": "HSCA00000100"}),
        "y9999": _edit(
            src, d / "y9999.fits", EXPID=103, **{"EXP-ID": "HSCA103", "DATE-OBS": "9999-12-31T23:59:59"}
        ),
        "y0001": _edit(
            src, d / "y0001.fits", EXPID=105, **{"EXP-ID": "HSCA105", "DATE-OBS": "0001-01-01T00:00:00"}
        ),
        "disagree": make_raw(tmp_path / "e104_1.fits", small_camera, exposure=104, detector=1),
        "cube": _with_data(
            src, d / "cube.fits", np.zeros((2, *shape), np.int16), EXPID=106, **{"EXP-ID": "X106"}
        ),
        "det_float": _edit(src, d / "det.fits", EXPID=107, **{"EXP-ID": "X107", "DET-ID": 0.7}),
        "exp_float": _edit(src, d / "exp.fits", EXPID=108.5, **{"EXP-ID": "X108"}),
        "exp_huge": _edit(src, d / "huge.fits", EXPID=2**31, **{"EXP-ID": "X109"}),
        "int32": _with_data(
            src, d / "int32.fits", np.zeros(shape, np.int32), EXPID=110, **{"EXP-ID": "X110"}
        ),
        "extra_hdu": _with_data(
            src, d / "extra.fits", fits.getdata(src), extra_hdu=True, EXPID=111, **{"EXP-ID": "X111"}
        ),  # fmt: skip
        "obs_id_path": _edit(src, d / "slash.fits", EXPID=112, **{"EXP-ID": "../../x"}),
        "no_data": _with_data(src, d / "nodata.fits", None, EXPID=113, **{"EXP-ID": "X113"}),
    }
    with fits.open(bad["disagree"], mode="update") as hdul:
        hdul[0].header["EXPTIME"] = 35.0
    butler = open_butler(repo, writeable=True)
    report = ingest_raws(butler, [*bad.values(), *good])

    assert sorted(report.ingested) == sorted(str(p.resolve()) for p in good)
    failed = dict(report.failed)
    assert set(failed) == {str(p) for p in bad.values()}
    expected = {
        "clash": "EXP-ID='HSCA00000100' already names exposure 100, not 102",
        "y9999": "DATE-OBS=9999-12-31T23:59:59.000 (+ EXPTIME) is outside the registry's time range",
        "y0001": "is outside the registry's time range 1970-01-01 .. 2100-01-01",
        "disagree": "exposure 104 is already defined with EXPTIME=30.0",
        "cube": "the primary array has 3 axes",
        "det_float": "DET-ID=0.7 is not an integer",
        "exp_float": "EXPID=108.5 is not an integer",
        "exp_huge": f"EXPID={2**31} is above the largest exposure id the repository takes ({2**31 - 1})",
        "int32": "pixel type BITPIX=32 BZERO=0 BSCALE=1 is not documented",
        "extra_hdu": "the file has 2 HDUs",
        "obs_id_path": "EXP-ID='../../x' is not a valid observation id",
        "no_data": "the primary array has 0 axes; a raw file holds one 2-D image",
    }
    for key, text in expected.items():
        message = failed[str(bad[key])]
        assert text in message, (key, message)
        assert message.startswith(str(bad[key])) and "\n" not in message
    assert "this file says EXPTIME=35.0" in failed[str(bad["disagree"])]

    butler = open_butler(repo)
    assert _raws(butler) == {(100, 0), (100, 1), (101, 0), (101, 1), (5, 0), (104, 0)}
    assert set(_exposures(butler)) == {5, 100, 101, 104}  # no exposure row without its raw
    visits = {int(r.id) for r in butler.query_dimension_records("visit", explain=False)}
    assert visits == {100, 101, 104} == report.visits
    regions = {
        (int(r.visit), int(r.detector))
        for r in butler.query_dimension_records("visit_detector_region", explain=False)
    }
    assert regions == {(100, 0), (100, 1), (101, 0), (101, 1), (104, 0)}
    assert report.exposures == {5, 100, 101, 104}


def test_redelivered_file_with_changed_exptime_is_refused(
    repo: Path, small_camera: Camera, tmp_path: Path
) -> None:
    first = make_raw(tmp_path / "a0.fits", small_camera, exposure=100, detector=0)
    butler = open_butler(repo, writeable=True)
    assert ingest_raws(butler, [first]).ingested == [str(first.resolve())]
    same = _edit(first, tmp_path / "again.fits")  # the same file delivered twice: skipped
    same_det = _edit(first, tmp_path / "fixed0.fits", EXPTIME=31.0)
    other_det = make_raw(tmp_path / "a1.fits", small_camera, exposure=100, detector=1)
    with fits.open(other_det, mode="update") as hdul:
        hdul[0].header["EXPTIME"] = 31.0
    fine = make_raw(tmp_path / "b0.fits", small_camera, exposure=101, detector=0)

    report = ingest_raws(butler, [same, fine])
    assert report.ingested == [str(fine.resolve())]
    assert report.skipped == [str(same)] and not report.failed
    report = ingest_raws(butler, [same_det, other_det])
    assert not report.ingested and not report.skipped
    failed = dict(report.failed)
    assert set(failed) == {str(same_det), str(other_det)}
    for path in (same_det, other_det):
        assert (
            "exposure 100 is already defined with EXPTIME=30.0 (in the repository); "
            "this file says EXPTIME=31.0" in failed[str(path)]
        )
    assert _exposures(open_butler(repo))[100].exposure_time == 30.0  # type: ignore[attr-defined]


def test_a_file_that_fails_inside_its_transaction_leaves_no_row(
    repo: Path, small_camera: Camera, tmp_path: Path
) -> None:
    """Visit 105 exists with another definition: exposure 105's visit conflicts inside the transaction,
    after its exposure row was written; the whole file is rolled back, the next file goes in."""
    butler = open_butler(repo, writeable=True)
    h = read_raw_header(make_raw(tmp_path / "tmp.fits", small_camera, exposure=105, detector=0), small_camera)
    ra = np.array([10.0, 10.1, 10.1, 10.0])
    dec = np.array([0.0, 0.0, 0.1, 0.1])
    from opendrp.repo.ingest import _exposure_records

    rec = dict(next(r for e, r in _exposure_records(small_camera, h).records if e == "visit"))
    day = dict(next(r for e, r in _exposure_records(small_camera, h).records if e == "day_obs"))
    rec.update(region=polygon_from_points(ra, dec), exposure_time=1.0)
    butler.registry.insertDimensionData("day_obs", day)
    butler.registry.insertDimensionData("visit", rec)

    conflicting = make_raw(tmp_path / "c.fits", small_camera, exposure=105, detector=0)
    fine = make_raw(tmp_path / "f.fits", small_camera, exposure=106, detector=0)
    report = ingest_raws(butler, [conflicting, fine])
    assert report.ingested == [str(fine.resolve())]
    ((path, message),) = report.failed
    assert path == str(conflicting) and "cannot be registered" in message and "\n" not in message
    butler = open_butler(repo)
    assert set(_exposures(butler)) == {106}
    assert _raws(butler) == {(106, 0)}
    stored = list((repo / "HSC" / "raw").rglob("*.fits"))
    assert len(stored) == 1  # the rolled-back file's copy is gone too


@pytest.mark.parametrize("bitpix", [16, -32])
def test_documented_pixel_types_are_accepted(
    repo: Path, small_camera: Camera, tmp_path: Path, bitpix: int
) -> None:
    src = make_raw(tmp_path / "src.fits", small_camera, exposure=100, detector=0)
    data = fits.getdata(src)
    if bitpix == -32:
        path = _with_data(src, tmp_path / "float.fits", data.astype(np.float32))
    else:
        path = src
    assert read_raw_header(path, small_camera).exposure_id == 100
    report = ingest_raws(open_butler(repo, writeable=True), [path])
    assert report.ingested == [str(path.resolve())] and not report.failed
