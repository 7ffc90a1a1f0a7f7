import numpy as np
import pytest
from tests.isr._raw_factory import make_detector, make_raw

from opendrp.calib import (
    combine_dark,
    defects_from_calibs,
    defects_to_mask,
    find_dark_defects,
    mask_to_defects,
)
from opendrp.image import Exposure, mask_bit
from opendrp.isr import run_isr
from opendrp.tasks.calibs import DarkTask, DefectsTask


def test_mask_to_defects_round_trip_and_columns():
    rng = np.random.default_rng(3)
    bad = rng.random((80, 60)) < 0.01
    bad[10:70, 17] = True  # a bad column: one box
    bad[5, 30:40] = True
    table = mask_to_defects(bad)
    assert np.array_equal(defects_to_mask(table, bad.shape), bad)
    assert table.meta["NPIXBAD"] == bad.sum()
    col = (table["x0"] == 17) & (table["width"] == 1) & (table["height"] >= 20)
    assert col.sum() >= 1
    assert len(table) < bad.sum() // 2  # merged, not one box per pixel


def test_find_dark_defects_hot_pixels_only():
    rng = np.random.default_rng(0)
    dark = rng.normal(0.01, 0.002, (100, 120)).astype(np.float32)
    hot = np.zeros(dark.shape, bool)
    hot.flat[rng.choice(dark.size, 40, replace=False)] = True
    dark[hot] += rng.uniform(1.0, 50.0, hot.sum())
    found = find_dark_defects(dark, variance=np.full(dark.shape, 0.002**2, np.float32))
    assert np.array_equal(found, hot)


def _dark_raws(det, rate, n, t=100.0):
    rng = np.random.default_rng(1)
    raws = []
    for i in range(n):
        img = rng.poisson(rate * t).astype(float)
        img[5 + 3 * i, 10] += 3000.0  # a cosmic ray per frame
        raws.append(make_raw(det, img, noise=True, rng=rng, exptime=t, data_typ="DARK"))
    return raws


def test_dark_task_and_defects_task_and_isr():
    det = make_detector(nx=64, ny=48)
    rate = np.full((48, 64), 0.02)
    rate[20, 33] = 5.0
    rate[7, 50] = 0.8
    dark = DarkTask().run(raws=_dark_raws(det, rate, 3), camera=_Cam(det), detector=0).dark
    assert dark.image[20, 33] == pytest.approx(5.0, rel=0.1)
    assert abs(float(np.median(dark.image)) - 0.02) < 0.02
    flat_img = np.ones((48, 64), np.float32)
    flat_img[:, 12] = 0.05  # a dead column
    flat = Exposure(flat_img, np.zeros(flat_img.shape, np.int32), np.zeros(flat_img.shape, np.float32))
    defects = DefectsTask().run(dark=dark, flats=[flat]).defects
    m = defects_to_mask(defects, (48, 64))
    assert m[20, 33] and m[7, 50] and m[:, 12].all()
    assert m.sum() == 48 + 2  # no false positives (the cosmic rays were clipped)
    # ISR: dark scaled by the exposure time, defects masked BAD + INTRP and interpolated
    sky = np.full((48, 64), 500.0)
    sci = make_raw(det, sky + rate * 30.0, exptime=30.0)
    exp = run_isr(sci, det, dark=dark, defects=m)
    good = ~m
    assert abs(float(np.median(exp.image[good])) - 500.0) < 1.0
    assert ((exp.mask[m] & mask_bit("BAD")) != 0).all() and ((exp.mask[m] & mask_bit("INTRP")) != 0).all()
    assert abs(float(exp.image[20, 33]) - 500.0) < 5.0
    assert exp.metadata["ISR_DARK"] and exp.metadata["ISR_DEFC"]


def test_defects_need_inputs():
    with pytest.raises(ValueError):
        defects_from_calibs()


class _Cam:
    def __init__(self, det):
        self._det = det

    def detector(self, i):
        return self._det


def test_combine_dark_units():
    det = make_detector(nx=32, ny=16)
    raws = _dark_raws(det, np.full((16, 32), 0.5), 4, t=200.0)
    dark = combine_dark(raws, det)
    assert dark.metadata["BUNIT"] == "electron/s"
    assert abs(float(np.median(dark.image)) - 0.5) < 0.05
