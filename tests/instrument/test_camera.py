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


def _one_ccd_camera(hsc: Camera, *, distortion: list[float] | None = None) -> Camera:
    """The HSC CCD geometry, one detector on the optical axis with rotation 0."""
    data = hsc.to_dict()
    data["detectors"] = [{"id": 0, "name": "axis", "x_mm": 0.0, "y_mm": 0.0, "rotation_deg": 0.0}]
    if distortion is not None:
        data["distortion"] = distortion
    return Camera.from_dict(data)


def test_pixel_scale_and_distortion(hsc: Camera) -> None:
    p = Pointing(150.0, 2.0, 0.0)
    c = hsc.distortion[0]
    for det_id in list(hsc.detectors)[:: max(1, len(hsc.detectors) // 8)]:
        det = hsc.detector(det_id)
        # steps of one pixel along x and y at the CCD centre, compared with the radial distortion model:
        # r_sky = s r (1 + c r^2) -> radial scale s (1 + 3 c r^2), tangential scale s (1 + c r^2)
        x0, y0 = (det.nx - 1) / 2.0, (det.ny - 1) / 2.0
        fx, fy = det.pixel_to_focal_plane(np.array([x0]), np.array([y0]), hsc.pixel_size_mm)
        r = float(np.hypot(fx[0], fy[0]))
        ra, dec = pixel_to_sky(hsc, det_id, np.array([x0, x0 + 1.0, x0]), np.array([y0, y0, y0 + 1.0]), p)
        step_x = angular_separation(ra[0], dec[0], ra[1], dec[1])[()] * 3600
        step_y = angular_separation(ra[0], dec[0], ra[2], dec[2])[()] * 3600
        radial, tangential = 1 + 3 * c * r * r, 1 + c * r * r
        rot = np.radians(det.rotation_deg)
        ux = np.array([np.cos(rot), np.sin(rot)])
        cos2 = float((ux @ np.array([fx[0], fy[0]]) / r) ** 2) if r > 0 else 1.0
        expect_x = 0.168 * np.sqrt(cos2 * radial**2 + (1 - cos2) * tangential**2)
        expect_y = 0.168 * np.sqrt((1 - cos2) * radial**2 + cos2 * tangential**2)
        assert step_x == pytest.approx(expect_x, rel=2e-4), det_id
        assert step_y == pytest.approx(expect_y, rel=2e-4), det_id


def test_rotation_convention(hsc: Camera) -> None:
    cam = _one_ccd_camera(hsc)
    # rotation 0: +y is north, +x is west; rotation 90: +y is east
    for rot, expect in ((0.0, (0.0, 1.0)), (90.0, (1.0, 0.0))):
        p = Pointing(150.0, 0.0, rot)
        ra, dec = pixel_to_sky(cam, 0, np.array([1024.0, 1024.0]), np.array([2000.0, 2100.0]), p)
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
    cam = _one_ccd_camera(hsc, distortion=[])
    ra, dec = detector_corners_sky(cam, 0, Pointing(10.0, 5.0, 0.0))
    # a 2048 x 4176 CCD at 0.168" without distortion: diagonal ~ 13 arcmin
    diag = angular_separation(ra[0], dec[0], ra[2], dec[2]) * 60
    assert diag == pytest.approx(np.hypot(2048, 4176) * 0.168 / 60, rel=1e-4)
