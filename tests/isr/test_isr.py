import numpy as np
import pytest

from opendrp.image import Exposure, mask_bit
from opendrp.isr import assemble_ccd, interpolate_rows, run_isr

from ._raw_factory import make_detector, make_raw


@pytest.fixture
def det():
    return make_detector()


def _truth(det):
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx]
    return (100.0 + 3.0 * xx + 0.5 * yy).astype(np.float64)  # asymmetric in x: catches a missing un-flip


def test_assemble_removes_overscan_gain_and_flip(det):
    truth = _truth(det)
    raw = make_raw(det, truth)
    image, sat = assemble_ccd(raw, det)
    assert image.shape == det.shape and image.dtype == np.float32
    # float32 raw storage limits the precision to ~1e-4 ADU * gain
    np.testing.assert_allclose(image, truth, atol=0.01)
    assert not sat.any()


def test_assemble_without_overscan_keeps_offset(det):
    raw = make_raw(det, _truth(det), row_slope=0.0)
    image, _ = assemble_ccd(raw, det, do_overscan=False)
    amp = det.amplifiers[1]
    np.testing.assert_allclose(
        image[amp.assembled_slice()] - _truth(det)[amp.assembled_slice()], 1200.0 * amp.gain, atol=0.05
    )


def test_saturation_mask_grown(det):
    truth = _truth(det)
    truth[20, 40] = 70000 * 2.5  # amp B (flipped): raw value above saturation
    raw = make_raw(det, truth)
    _, sat = assemble_ccd(raw, det, saturation_grow=1)
    assert sat[20, 40] and sat[19, 40] and sat[20, 41] and sat[20, 39]
    assert sat.sum() == 5


def test_run_isr_bias_flat_variance(det):
    truth = _truth(det)
    flat_img = np.ones(det.shape, np.float32)
    flat_img[:, : det.nx // 2] = 0.9
    flat_img[:, det.nx // 2 :] = 1.1
    bias_img = np.full(det.shape, 7.0, np.float32)
    bias = Exposure(bias_img, np.zeros(det.shape, np.int32), np.zeros(det.shape, np.float32))
    flat_mask = np.zeros(det.shape, np.int32)
    flat_mask[:, 10] = mask_bit("BAD")  # a bad column
    flat = Exposure(flat_img, flat_mask, np.zeros(det.shape, np.float32))
    raw = make_raw(det, truth * flat_img + bias_img)
    exp = run_isr(raw, det, bias=bias, flat=flat)
    good = np.ones(det.shape, bool)
    good[:, 10] = False
    np.testing.assert_allclose(exp.image[good], truth[good], rtol=1e-5, atol=0.02)
    # interpolated column: linear in x, so interpolation is exact
    np.testing.assert_allclose(exp.image[:, 10], truth[:, 10], atol=0.05)
    assert np.all(exp.mask[:, 10] & mask_bit("BAD", "INTRP") == mask_bit("BAD", "INTRP"))
    # variance: Poisson in electrons (before flat) + read noise**2, divided by flat**2
    rn2 = np.where(np.arange(det.nx) < det.nx // 2, 3.0**2, 4.0**2)[None, :]
    expected = (truth * flat_img + rn2) / flat_img**2
    np.testing.assert_allclose(exp.variance[good], expected[good], rtol=1e-4)
    assert exp.metadata["EXPTIME"] == 30.0 and exp.metadata["BUNIT"] == "electron"


def test_run_isr_noise_level(det):
    """With read noise only, the ISR image has the read noise of each amplifier (overscan adds little)."""
    rng = np.random.default_rng(3)
    big = make_detector(nx=256, ny=400)
    raw = make_raw(big, np.zeros(big.shape), noise=True, rng=rng)
    exp = run_isr(raw, big)
    for amp in big.amplifiers:
        sub = exp.image[amp.assembled_slice()]
        assert abs(np.mean(sub)) < 0.1 * amp.read_noise
        assert np.std(sub) == pytest.approx(amp.read_noise * np.sqrt(1 + 1.0 / amp.overscan), rel=0.05)


def test_interpolate_rows_edges():
    img = np.tile(np.arange(10, dtype=float), (3, 1))
    bad = np.zeros_like(img, bool)
    bad[:, 0] = True
    bad[1, 4:6] = True
    out = interpolate_rows(img, bad)
    np.testing.assert_allclose(out[1, 4:6], [4, 5])
    np.testing.assert_allclose(out[:, 0], 1.0)  # nearest good value at the row end


def test_interpolate_rows_matches_np_interp():
    rng = np.random.default_rng(8)
    img = rng.normal(size=(40, 60))
    bad = rng.uniform(size=img.shape) < 0.2
    bad[:, 0] = False
    bad[:, -1] = False
    bad[5, :] = False
    bad[7, 10:30] = True
    out = interpolate_rows(img, bad, max_width=1000)
    for r in range(img.shape[0]):
        good = ~bad[r]
        expected = np.interp(np.arange(img.shape[1]), np.flatnonzero(good), img[r, good])
        np.testing.assert_allclose(out[r], expected, atol=1e-12)


def test_saturation_within_read_noise_of_the_level_and_suspect(det):
    # amp A: gain 2, read noise 3 e- (1.5 ADU), overscan level 1000 + 0.05 y ADU, saturation 60000 ADU
    truth = _truth(det)
    level = 1000.0 + 0.05 * 10
    truth[10, 5] = (60000.0 - 3.0 - level) * 2.0  # 2 read-noise sigmas below the level: a full-well pixel
    truth[10, 20] = (0.95 * 60000.0 - level) * 2.0  # beyond the linear range, not saturated
    raw = make_raw(det, truth)
    suspect = np.zeros(det.shape, bool)
    _, sat = assemble_ccd(raw, det, saturation_grow=0, suspect_fraction=0.9, suspect_out=suspect)
    assert sat[10, 5] and sat.sum() == 1
    assert suspect[10, 20] and suspect.sum() == 1
    exp = run_isr(raw, det)
    assert exp.mask[10, 20] & mask_bit("SUSPECT") and not exp.mask[10, 20] & mask_bit("SAT")
    assert exp.mask[10, 5] & mask_bit("SAT")


def test_flat_noise_propagated_to_variance(det):
    truth = _truth(det)
    flat_img = np.full(det.shape, 1.1, np.float32)
    flat_var = np.full(det.shape, (0.004 * 1.1) ** 2, np.float32)  # 0.4% flat noise
    raw = make_raw(det, truth * flat_img)
    quiet = run_isr(raw, det, flat=Exposure(flat_img, np.zeros(det.shape, np.int32), np.zeros(det.shape)))
    noisy = run_isr(raw, det, flat=Exposure(flat_img, np.zeros(det.shape, np.int32), flat_var))
    np.testing.assert_allclose(noisy.variance - quiet.variance, (0.004 * noisy.image) ** 2, rtol=1e-3)
