import numpy as np
import pytest

from opendrp.errors import AlgorithmError
from opendrp.photometry import fit_zero_point


def test_recovers_calibration_and_rejects_outliers():
    rng = np.random.default_rng(3)
    n = 200
    inst = np.exp(rng.uniform(np.log(1e3), np.log(1e6), n))
    inst_err = np.sqrt(inst + 300.0 * 30)
    calib = 57.5
    ref = calib * (inst + rng.normal(size=n) * inst_err) * (1 + 0.01 * rng.normal(size=n))
    ref_err = 0.01 * ref
    ref[:10] *= 1.5  # variable stars / bad matches
    res = fit_zero_point(inst, inst_err, ref, ref_err)
    assert res.photo_calib.calibration_mean == pytest.approx(calib, rel=2e-3)
    assert not res.used[:10].any()
    assert res.zero_point == pytest.approx(31.4 - 2.5 * np.log10(calib), abs=0.01)
    # quoted error consistent with the scatter of the 1% reference errors over ~150 stars
    assert 0.0003 < res.zero_point_err < 0.003


def test_too_few_stars():
    with pytest.raises(AlgorithmError, match="zero point"):
        fit_zero_point(np.array([1e4, 2e4]), np.array([100.0, 150.0]), np.array([5e5, 1e6]))


def _gradient_stars(seed: int, n: int = 300, gx: float = 0.0, gy: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2047, n)
    y = rng.uniform(0, 4175, n)
    inst = np.exp(rng.uniform(np.log(2e4), np.log(1e6), n))
    inst_err = np.sqrt(inst + 300.0 * 30)
    calib = 57.5
    # the transmission falls linearly across the CCD (mag per pixel), the reference flux does not
    dm = gx * (x - 1024) + gy * (y - 2088)
    ref = calib * (inst + rng.normal(size=n) * inst_err) * 10 ** (0.4 * dm) * (1 + 0.01 * rng.normal(size=n))
    return x, y, inst, inst_err, ref, 0.01 * ref, calib


def test_zero_point_plane_recovers_a_transparency_gradient():
    gy = 0.012 / 4176  # 1.2% across the long axis of a CCD
    x, y, inst, inst_err, ref, ref_err, calib = _gradient_stars(5, gy=gy)
    res = fit_zero_point(inst, inst_err, ref, ref_err, x=x, y=y)
    pc = res.photo_calib
    assert not pc.is_constant
    k = 0.4 * np.log(10)
    assert pc.gradient_y == pytest.approx(k * gy, abs=4 * pc.gradient_y_err)
    assert abs(pc.gradient_x) < 4 * pc.gradient_x_err
    # calibrated fluxes follow the transmission at every position
    truth = calib * 10 ** (0.4 * (gy * (np.array([0.0, 4175.0]) - 2088)))
    got = pc.calibration_at(np.array([1024.0, 1024.0]), np.array([0.0, 4175.0]))
    assert got == pytest.approx(truth, rel=3e-3)
    # the quoted errors grow away from the reference position
    e = pc.instflux_err_to_njy(
        np.array([1e5, 1e5]),
        np.array([0.0, 0.0]),
        np.array([pc.x_ref, pc.x_ref]),
        np.array([pc.y_ref, pc.y_ref + 2000.0]),
    )
    assert e[1] > e[0] > 0
    # without positions: a constant, the mean transmission
    res0 = fit_zero_point(inst, inst_err, ref, ref_err)
    assert res0.photo_calib.is_constant


def test_zero_point_plane_without_gradient_is_consistent_with_zero():
    x, y, inst, inst_err, ref, ref_err, calib = _gradient_stars(8)
    pc = fit_zero_point(inst, inst_err, ref, ref_err, x=x, y=y).photo_calib
    assert abs(pc.gradient_x) < 4 * pc.gradient_x_err
    assert abs(pc.gradient_y) < 4 * pc.gradient_y_err
    assert pc.calibration_mean == pytest.approx(calib, rel=2e-3)


def test_zero_point_plane_needs_enough_spread_stars():
    x, y, inst, inst_err, ref, ref_err, _ = _gradient_stars(9, n=20, gy=1e-6)
    assert fit_zero_point(inst, inst_err, ref, ref_err, x=x, y=y).photo_calib.is_constant
    x, y, inst, inst_err, ref, ref_err, _ = _gradient_stars(9, gy=1e-6)
    y = 100.0 + 0.01 * y  # all stars along one row: no constraint on a y gradient
    assert fit_zero_point(inst, inst_err, ref, ref_err, x=x, y=y).photo_calib.is_constant


def test_photo_calib_cards_round_trip():
    from opendrp.image import PhotoCalib

    pc = PhotoCalib(
        57.5,
        0.1,
        gradient_x=1e-6,
        gradient_y=-2e-6,
        gradient_x_err=1e-7,
        gradient_y_err=2e-7,
        x_ref=1000.0,
        y_ref=2000.0,
    )
    assert PhotoCalib.from_cards(pc.to_cards()) == pc
    assert set(PhotoCalib(57.5, 0.1).to_cards()) == {"PHOTCAL", "PHOTCERR"}
