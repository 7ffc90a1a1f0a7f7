"""PSF stamps and detector effects against known answers."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from opendrp.instrument import load_camera
from opendrp.sim.detector import bleed_columns, to_raw_adu
from opendrp.sim.psf import (
    VisitPsf,
    add_stamp,
    local_psf,
    moffat_stamp,
    moffat_stamp_radius,
    shear_matrix,
)


@pytest.mark.parametrize(("e1", "e2"), [(0.0, 0.0), (0.1, -0.05), (-0.3, 0.2)])
def test_shear_matrix_matches_galsim(e1: float, e2: float) -> None:
    np.testing.assert_allclose(shear_matrix(e1, e2), galsim.Shear(e1=e1, e2=e2).getMatrix(), atol=1e-12)


def test_moffat_stamp_matches_galsim() -> None:
    flux, x, y = 1.0e4, 20.3, 19.6
    stamp, x0, y0 = moffat_stamp(flux, x, y, fwhm=4.0, beta=3.5, e1=0.08, e2=-0.04, radius=20, oversampling=5)
    ref = (
        galsim.Moffat(beta=3.5, fwhm=4.0, flux=flux)
        .shear(e1=0.08, e2=-0.04)
        .drawImage(nx=41, ny=41, scale=1.0, center=galsim.PositionD(x - x0 + 1, y - y0 + 1))
    )
    assert np.abs(stamp - ref.array).max() < 2e-3 * stamp.max()


@pytest.mark.parametrize("flux", [1e3, 1e5, 1e7])
def test_moffat_stamp_radius_keeps_flux(flux: float) -> None:
    radius = moffat_stamp_radius(flux, 4.2, 3.0)
    stamp, _, _ = moffat_stamp(flux, 0.0, 0.0, fwhm=4.2, beta=3.0, radius=radius, oversampling=3)
    assert flux - stamp.sum() < max(3.0, 1e-3 * flux)
    assert stamp.sum() <= flux


def test_add_stamp_clips_at_edges() -> None:
    image = np.zeros((10, 10))
    add_stamp(image, np.ones((5, 5)), -2, 7)
    assert image.sum() == 9.0 and image[7:10, 0:3].sum() == 9.0


def test_local_psf_variation() -> None:
    psf = VisitPsf(0.7, 3.5, 0.01, -0.02, 0.1, 0.03, field_radius_mm=240.0)
    fwhm, e1, e2 = local_psf(
        psf, np.array([0.0, 240.0]), np.array([0.0, 0.0]), pixel_scale=0.168, detector_rotation_deg=0.0
    )
    np.testing.assert_allclose(fwhm, [0.7 / 0.168, 0.7 / 0.168 * 1.1])
    np.testing.assert_allclose([e1[0], e2[0]], [0.01, -0.02])
    # tangential at +x: elongated along y, i.e. e1 decreases by ellipticity_radial
    np.testing.assert_allclose([e1[1], e2[1]], [0.01 - 0.03, -0.02], atol=1e-12)
    # a 180-degree detector rotation leaves a spin-2 quantity unchanged
    f2, e1b, e2b = local_psf(
        psf, np.array([240.0]), np.array([0.0]), pixel_scale=0.168, detector_rotation_deg=180.0
    )
    np.testing.assert_allclose([e1b[0], e2b[0]], [e1[1], e2[1]], atol=1e-12)


def test_bleed_conserves_charge() -> None:
    image = np.full((100, 3), 10.0)
    image[50, 1] = 1.0e6
    before = image.sum()
    bleed_columns(image, 1.0e5)
    assert image.max() <= 1.0e5
    assert image.sum() == pytest.approx(before, rel=1e-9)
    # 9e5 e- of excess flow 4.5e5 up and 4.5e5 down, filling pixels of 10 e- (room 99,990 each):
    # 4 full pixels on each side, then a remainder of 4.5e5 - 4 * 99,990 + 10 e- at rows 45 and 55
    assert np.flatnonzero(image[:, 1] == 1.0e5).tolist() == list(range(46, 55))
    assert image[45, 1] == pytest.approx(50050.0) and image[55, 1] == pytest.approx(50050.0)
    records: list[tuple[int, int, int]] = []
    image = np.full((100, 3), 10.0)
    image[50, 1] = 1.0e6
    image[56, 1] = 3.0e5  # a second run that the first one's spreading reaches: they merge
    image[2, 1] = 5.0e5  # near the edge: charge flows off the CCD
    before = image.sum()
    bleed_columns(image, 1.0e5, records)
    assert image.max() <= 1.0e5
    # the edge run (5e5 + 10 e-): 2e5 down fill rows 1 and 0 and 20 e- leave the CCD; 2e5 up fill 3, 4
    assert records[0] == (1, 0, 4) and image[5, 1] == pytest.approx(30.0)
    assert image.sum() == pytest.approx(before - 20.0, abs=1e-6)
    # the two runs near row 50 make one trail, with a remainder pixel at each end
    assert len(records) == 2
    _, y0, y1 = records[1]
    assert y0 < 50 and y1 > 56 and np.all(image[y0 : y1 + 1, 1] == 1.0e5)
    assert 10.0 < image[y0 - 1, 1] < 1.0e5 and 10.0 < image[y1 + 1, 1] < 1.0e5
    assert np.all(image[:, [0, 2]] == 10.0)


def test_raw_layout_flip_and_overscan() -> None:
    camera = load_camera("hsc").subset([0], nx=64, ny=32)
    det = camera.detector(0)
    ramp = np.tile(np.arange(det.nx, dtype=float), (det.ny, 1)) * 30.0  # electrons increase with x
    levels = np.array([1000.0, 1100.0, 1200.0, 1300.0])
    rng = np.random.default_rng(1)
    raw = to_raw_adu(ramp, det, bias_levels=levels, structure=None, rng=rng)
    assert raw.shape == det.raw_shape
    for amp, level in zip(det.amplifiers, levels):
        data = raw[amp.raw_data_slice()] - level
        expected = ramp[amp.assembled_slice()] / amp.gain
        if amp.flip_x:
            expected = expected[:, ::-1]
        assert np.abs(data - expected).mean() < 3.0 * amp.read_noise / amp.gain
        over = raw[amp.raw_overscan_slice()]
        assert over.mean() == pytest.approx(level, abs=1.0)
        parallel = raw[det.ny :, amp.raw_x0 : amp.raw_x0 + amp.raw_width]
        assert parallel.mean() == pytest.approx(level, abs=1.0)
