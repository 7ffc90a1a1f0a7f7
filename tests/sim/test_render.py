"""Sources drawn on a CCD: flux, position and orientation against the truth."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.instrument import load_camera
from opendrp.instrument.geometry import Pointing, pixel_to_sky, sky_to_pixel
from opendrp.sim.catalog import TruthCatalog
from opendrp.sim.config import GalaxyConfig
from opendrp.sim.psf import VisitPsf
from opendrp.sim.render import render_sources
from opendrp.sim.survey import ExposurePlan


def _one_source(ra: float, dec: float, *, star: bool, e1: float = 0.0, e2: float = 0.0) -> TruthCatalog:
    one = np.ones(1)
    return TruthCatalog(
        id=np.array([1], np.int64),
        ra=one * ra,
        dec=one * dec,
        is_star=np.array([star]),
        mags={b: one * 20.0 for b in "grizy"},
        disk_hlr=one * (0.0 if star else 0.8),
        bulge_hlr=one * (0.0 if star else 0.4),
        bulge_fraction=one * (0.0 if star else 0.3),
        e1=one * e1,
        e2=one * e2,
    )


@pytest.fixture(scope="module")
def setup():
    camera = load_camera("hsc").subset([0], nx=256, ny=256)
    pointing = Pointing(150.0, 2.0, 30.0)
    psf = VisitPsf(0.7, 3.5, 0.0, 0.0, 0.0, 0.0, field_radius_mm=240.0)
    exposure = ExposurePlan(
        exposure_id=2,
        observation_type="science",
        band="r",
        band_index=0,
        physical_filter="HSC-R",
        exposure_time=100.0,
        date_obs="2025-01-01T00:00:00",
        mjd=0.0,
        pointing=pointing,
        header_pointing=pointing,
        zero_point=28.0,
        psf=psf,
    )
    ra, dec = pixel_to_sky(camera, 0, np.array([127.3]), np.array([128.6]), pointing)
    return camera, exposure, float(ra[0]), float(dec[0])


def _moments(image: np.ndarray) -> tuple[float, float, float, float, float]:
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    f = image.sum()
    x, y = (image * xx).sum() / f, (image * yy).sum() / f
    ixx = (image * (xx - x) ** 2).sum() / f
    iyy = (image * (yy - y) ** 2).sum() / f
    ixy = (image * (xx - x) * (yy - y)).sum() / f
    return x, y, ixx, iyy, ixy


@pytest.mark.parametrize("star", [True, False])
def test_flux_and_position(setup, star: bool) -> None:
    camera, exposure, ra, dec = setup
    image, stats = render_sources(
        camera, 0, exposure, _one_source(ra, dec, star=star), oversampling=3, galaxy_config=GalaxyConfig()
    )
    expected = 10.0 ** (-0.4 * (20.0 - 28.0)) * 100.0
    assert image.sum() == pytest.approx(expected, rel=2e-3)
    x, y, *_ = _moments(image)
    assert (x, y) == pytest.approx((127.3, 128.6), abs=0.02)
    assert stats.n_stars + stats.n_galaxies == 1


def test_galaxy_orientation_follows_the_sky(setup) -> None:
    """A galaxy elongated east-west lies along the image direction of east, whatever the rotation."""
    camera, exposure, ra, dec = setup
    image, _ = render_sources(
        camera,
        0,
        exposure,
        _one_source(ra, dec, star=False, e1=0.6),
        oversampling=3,
        galaxy_config=GalaxyConfig(),
    )
    x, y, ixx, iyy, ixy = _moments(image)
    angle = 0.5 * np.degrees(np.arctan2(2 * ixy, ixx - iyy))  # major axis, from +x
    xe, ye = sky_to_pixel(camera, 0, np.array([ra + 5.0 / 3600.0]), np.array([dec]), exposure.pointing)
    east = np.degrees(np.arctan2(ye[0] - y, xe[0] - x))
    diff = (angle - east + 90.0) % 180.0 - 90.0
    assert abs(diff) < 2.0
