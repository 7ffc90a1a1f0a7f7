"""Artefacts (off by default): cosmic rays, satellite trails, dark current and hot pixels, dead columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opendrp.instrument import load_camera
from opendrp.instrument.geometry import Pointing, pixel_to_sky, sky_to_pixel
from opendrp.raw import read_raw_header
from opendrp.sim import simulate
from opendrp.sim.artifacts import ELECTRONS_PER_MICRON, add_cosmic_rays, dark_rate_map, satellite_trail


def test_cosmic_rays_rate_and_charge() -> None:
    image = np.zeros((1000, 1000), np.float32)
    rng = np.random.default_rng(5)
    n = add_cosmic_rays(
        image, rate_per_cm2_s=0.02, exposure_time=200.0, pixel_size_mm=0.015, thickness_um=200.0, rng=rng
    )
    expected = 0.02 * 200.0 * (1000 * 0.0015) ** 2  # 9 per image
    assert abs(n - expected) < 4 * np.sqrt(expected) + 1
    big = add_cosmic_rays(
        np.zeros((2000, 2000), np.float32),
        rate_per_cm2_s=1.0,
        exposure_time=10.0,
        pixel_size_mm=0.015,
        thickness_um=200.0,
        rng=rng,
    )
    assert big == pytest.approx(1.0 * 10.0 * 9.0, rel=0.25)
    # each track leaves at least the charge of a vertical crossing (minus its random scatter and edge losses)
    assert image.sum() > 0.5 * n * ELECTRONS_PER_MICRON * 200.0


def test_satellite_trail_profile() -> None:
    camera = load_camera("hsc").subset([49], nx=512, ny=512)
    det = camera.detector(49)
    pointing = Pointing(150.0, 2.0, 0.0)
    ra0, dec0 = pixel_to_sky(camera, 49, np.array([255.5]), np.array([255.5]), pointing)
    trail = (float(ra0[0]), float(dec0[0]), 30.0)
    image = satellite_trail(camera, det, pointing, trail, electrons_per_arcsec=1000.0, sigma_pixels=2.0)
    assert image is not None
    x0, y0 = sky_to_pixel(camera, 49, ra0, dec0, pointing)
    peak = 1000.0 * camera.pixel_scale_arcsec / (np.sqrt(2.0 * np.pi) * 2.0)
    assert image[int(round(y0[0])), int(round(x0[0]))] == pytest.approx(peak, rel=0.1)
    assert image.max() == pytest.approx(peak, rel=0.01)
    # a trail far from the CCD is not drawn
    assert (
        satellite_trail(camera, det, pointing, (151.0, 2.0, 0.0), electrons_per_arcsec=1.0, sigma_pixels=2.0)
        is None
    )


def test_dark_rate_map() -> None:
    rate = dark_rate_map(
        (500, 400),
        dark_current=0.01,
        hot_pixel_fraction=1e-3,
        hot_pixel_rate=20.0,
        rng=np.random.default_rng(1),
    )
    assert rate is not None
    n_hot = int((rate > 1.0).sum())
    assert n_hot == pytest.approx(200, abs=50)
    assert np.median(rate) == pytest.approx(0.01)
    assert (
        dark_rate_map((5, 5), dark_current=0.0, hot_pixel_fraction=0.0, hot_pixel_rate=1.0, rng=None) is None
    )  # type: ignore[arg-type]


def test_artifacts_end_to_end(helpers, tmp_path) -> None:
    config = helpers.small_test_config(
        instrument__dark_current=2.0,
        instrument__hot_pixel_fraction=1e-3,
        instrument__n_bad_columns=3,
        instrument__cosmic_ray_rate=0.05,
        conditions__satellite_trail_probability=1.0,
        calibration__n_dark=1,
        calibration__n_flat=1,
        calibration__n_bias=2,
    )
    config.bands["r"].n_visits = 1
    result = simulate(config, tmp_path / "art", processes=1, progress=False)
    camera = load_camera(result.camera_path)
    assert result.n_cosmic_rays > 0
    visits = pd.read_parquet(result.visits_path)
    assert visits.trail_pa.notna().all()
    heads = {p: read_raw_header(p) for p in result.calib_raws}
    assert sorted({h.observation_type for h in heads.values()}) == ["bias", "dark", "flat"]
    dark_time = config.calibration.dark_exposure_time
    defects = pd.read_parquet(result.outdir / "truth" / "defects.parquet")
    hot = defects[defects.kind == "hot_pixel"]
    assert len(hot) > 0 and np.all(hot.value > 0)
    for det_id in camera.detectors:
        bias = np.mean(
            [
                helpers.assemble(p, camera)[0]
                for p, h in heads.items()
                if h.detector == det_id and h.observation_type == "bias"
            ],
            axis=0,
        )
        dark = (
            next(
                helpers.assemble(p, camera)[0]
                for p, h in heads.items()
                if h.detector == det_id and h.observation_type == "dark"
            )
            - bias
        )
        assert np.median(dark) == pytest.approx(2.0 * dark_time, rel=0.05)
        assert (
            dark > 2.0 * dark_time + 1000.0
        ).sum() > 0.5 * 1e-3 * dark.size  # hot pixels (and cosmic rays)
        flat = (
            next(
                helpers.assemble(p, camera)[0]
                for p, h in heads.items()
                if h.detector == det_id and h.observation_type == "flat"
            )
            - bias
        )
        flat -= 2.0 * config.calibration.flat_exposure_time
        column_median = np.median(flat / np.median(flat), axis=0)
        low = np.flatnonzero(np.min(flat / np.median(flat), axis=0) < 0.2)
        assert 1 <= len(low) <= 3 and np.all(column_median[low] < 1.01)
        # the defect list of the truth names exactly these columns
        bad = defects[(defects.detector == det_id) & (defects.kind == "bad_column")]
        assert sorted(set(bad.x)) == sorted(low)
        for row in bad.itertuples():
            assert np.all(flat[row.y0 : row.y1 + 1, row.x] / np.median(flat) < 0.2)
