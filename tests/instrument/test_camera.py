"""Camera YAML model and the pixel <-> sky geometry."""

import numpy as np
import pytest

from opendrp.astrometry import angular_separation, wcs_residuals_mas
from opendrp.errors import ConfigurationError
from opendrp.instrument import Camera, load_camera
from opendrp.instrument.geometry import (
    Pointing,
    detector_corners_sky,
    detector_wcs,
    pixel_to_sky,
    sky_to_pixel,
)


@pytest.fixture(scope="module")
def hsc() -> Camera:
    return load_camera("hsc")


def test_hsc_geometry(hsc: Camera) -> None:
    det = hsc.detector(0)
    assert (det.nx, det.ny) == (2048, 4176)
    assert len(det.amplifiers) == 4
    # 4 x (8 prescan + 512 data + 16 overscan) columns, 4176 + 48 rows
    assert det.raw_shape == (4224, 2144)
    assert hsc.pixel_scale_arcsec == pytest.approx(0.168)
    assert [a.flip_x for a in det.amplifiers] == [False, True, False, True]
    # amplifier data slices tile the raw array without overlap
    cols = np.zeros(det.raw_shape[1], int)
    for a in det.amplifiers:
        cols[a.raw_data_slice()[1]] += 1
        cols[a.raw_overscan_slice()[1]] += 1
        cols[a.raw_prescan_slice()[1]] += 1
    assert np.all(cols == 1)


def test_subset_and_roundtrip(hsc: Camera, tmp_path) -> None:
    small = hsc.subset([3, 1], nx=1024, ny=512)
    assert sorted(small.detectors) == [1, 3]
    assert small.detector(3).shape == (512, 1024)
    assert small.detector(3).amplifiers[0].nx == 256
    small.to_yaml(tmp_path / "cam.yaml")
    again = Camera.from_yaml(tmp_path / "cam.yaml")
    assert again.detector(1).x_mm == small.detector(1).x_mm
    assert again.hash() == small.hash()


def test_bad_camera_yaml_names_the_problem(hsc: Camera) -> None:
    data = hsc.to_dict()
    data["ccd"]["nx"] = 2047  # not a multiple of 4 amplifiers
    with pytest.raises(ConfigurationError, match="multiple"):
        Camera.from_dict(data)
    with pytest.raises(ConfigurationError, match="unknown detector"):
        hsc.detector(999)


def test_pixel_scale_and_distortion(hsc: Camera) -> None:
    p = Pointing(150.0, 2.0, 0.0)
    # one pixel step at the centre of the central CCD is 0.168" (distortion negligible at r ~ 0)
    ra, dec = pixel_to_sky(hsc, 0, np.array([1023.0, 1024.0]), np.array([2088.0, 2088.0]), p)
    step = angular_separation(ra[0], dec[0], ra[1], dec[1]) * 3600
    assert step == pytest.approx(0.168, rel=1e-4)
    # at the edge of the field the radial scale grows by (1 + 3 c r^2)
    far = max(hsc.detectors.values(), key=lambda d: np.hypot(d.x_mm, d.y_mm))
    r = np.hypot(far.x_mm, far.y_mm)
    assert r > 200


def test_rotation_convention(hsc: Camera) -> None:
    # rotation 0: +y is north, +x is west; rotation 90: +y is east
    for rot, expect in ((0.0, (0.0, 1.0)), (90.0, (1.0, 0.0))):
        p = Pointing(150.0, 0.0, rot)
        ra, dec = pixel_to_sky(hsc, 0, np.array([1024.0, 1024.0]), np.array([2000.0, 2100.0]), p)
        d_ra, d_dec = (ra[1] - ra[0]), (dec[1] - dec[0])
        norm = np.hypot(d_ra, d_dec)
        assert d_ra / norm == pytest.approx(expect[0], abs=1e-6)
        assert d_dec / norm == pytest.approx(expect[1], abs=1e-6)


def test_sky_pixel_roundtrip_and_wcs(hsc: Camera) -> None:
    rng = np.random.default_rng(1)
    p = Pointing(359.9, -30.0, 37.0)  # across RA = 0
    for det in (0, 40, 76):
        x, y = rng.uniform(0, 2047, 300), rng.uniform(0, 4175, 300)
        ra, dec = pixel_to_sky(hsc, det, x, y, p)
        xb, yb = sky_to_pixel(hsc, det, ra, dec, p)
        assert np.max(np.abs(xb - x)) < 1e-6 and np.max(np.abs(yb - y)) < 1e-6
        wcs = detector_wcs(hsc, det, p)
        assert np.max(wcs_residuals_mas(wcs, x, y, ra, dec)) < 0.1


def test_corners_enclose_detector(hsc: Camera) -> None:
    p = Pointing(10.0, 5.0, 0.0)
    ra, dec = detector_corners_sky(hsc, 5, p)
    # a 2048 x 4176 CCD at 0.168": diagonal ~ 13 arcmin
    diag = angular_separation(ra[0], dec[0], ra[2], dec[2]) * 60
    assert diag == pytest.approx(np.hypot(2048, 4176) * 0.168 / 60, rel=0.01)
