import numpy as np
import pytest
from tests.isr._raw_factory import make_detector, make_raw

from opendrp.calib import clipped_mean, combine_bias, combine_dark, combine_flat
from opendrp.image import mask_bit
from opendrp.isr import run_isr


@pytest.fixture
def det():
    return make_detector(nx=128, ny=96)


def _bias_pattern(det):
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx]
    return 5.0 + 2.0 * np.sin(xx / 9.0) + 0.02 * yy  # residual bias structure, electrons


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_combine_bias_rejects_cosmic_rays(det, n):
    rng = np.random.default_rng(n)
    pattern = _bias_pattern(det)
    raws = []
    for i in range(n):
        img = pattern.copy()
        if n > 1:
            img[10 + i, 20:25] += 5000.0  # a cosmic ray in each frame, at a different place
        raws.append(make_raw(det, img, noise=True, rng=rng, exptime=0.0, data_typ="BIAS"))
    bias = combine_bias(raws, det)
    assert bias.metadata["NCOMBINE"] == n and bias.metadata["CALIBTYP"] == "bias"
    resid = bias.image - pattern
    rn = max(a.read_noise for a in det.amplifiers)
    assert np.max(np.abs(resid)) < 6 * rn / np.sqrt(max(n - 1, 1)) + 1.0  # no cosmic ray survives
    assert np.std(resid) == pytest.approx(np.sqrt(np.mean(bias.variance)), rel=0.25)


def test_clipped_mean_outliers_and_variance():
    rng = np.random.default_rng(0)
    stack = rng.normal(10.0, 2.0, (9, 200, 200)).astype(np.float32)
    stack[3, :50, :50] += 100.0
    mean, n_used, var = clipped_mean(stack, noise_var=np.full((1, 200, 200), 4.0))
    assert np.all(n_used[:50, :50] <= 8)
    assert abs(mean.mean() - 10.0) < 0.01
    assert np.std(mean) == pytest.approx(np.sqrt(var.mean()), rel=0.1)


def test_combine_flat_normalized_with_defects(det):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx]
    response = 1.0 - 0.2 * ((xx - 64) ** 2 + (yy - 48) ** 2) / 80.0**2  # vignetting-like
    response[:, 33] *= 0.3  # dead column
    raws = []
    for i, level in enumerate([20000.0, 25000.0, 30000.0, 22000.0]):
        img = level * response
        img = img + rng.normal(0, np.sqrt(img))
        if i == 1:
            img[50:53, 70:72] += 20000.0  # a cosmic ray
        raws.append(make_raw(det, img, rng=rng, data_typ="FLAT"))
    flat = combine_flat(raws, det)
    bad = (flat.mask & mask_bit("BAD")) != 0
    assert bad[:, 33].all()
    assert bad.sum() < 1.05 * det.ny
    good = ~bad
    assert np.mean(flat.image[good]) == pytest.approx(1.0, abs=1e-6)
    expected = response / np.mean(response[good])
    rel = flat.image[good] / expected[good] - 1.0
    # noise of the mean of four flats with ~25000 e- each: ~0.3%
    assert np.std(rel) < 0.005 and np.max(np.abs(rel)) < 0.03


def test_single_flat_and_isr_round_trip(det):
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx]
    response = 0.9 + 0.2 * xx / det.nx
    bias_raws = [make_raw(det, _bias_pattern(det), noise=True, rng=rng, data_typ="BIAS") for _ in range(5)]
    bias = combine_bias(bias_raws, det)
    flat = combine_flat([make_raw(det, 9e4 * response + _bias_pattern(det), data_typ="FLAT")], det, bias=bias)
    sky = 500.0
    sci = make_raw(det, sky * response + _bias_pattern(det), noise=False)
    exp = run_isr(sci, det, bias=bias, flat=flat)
    # flat normalization is arbitrary: the sky is flat to the bias noise level
    assert np.std(exp.image) / np.mean(exp.image) < 0.01


def test_combine_dark(det):
    rng = np.random.default_rng(2)
    rate = np.full(det.shape, 0.5)
    rate[40, 40] = 50.0  # hot pixel
    raws = [
        make_raw(det, rate * 100.0, noise=True, rng=rng, exptime=100.0, data_typ="DARK") for _ in range(3)
    ]
    dark = combine_dark(raws, det)
    assert dark.metadata["BUNIT"] == "electron/s"
    assert dark.image[40, 40] == pytest.approx(50.0, rel=0.01)
    assert abs(np.median(dark.image) - 0.5) < 0.01
