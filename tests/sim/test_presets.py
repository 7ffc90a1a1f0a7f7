"""The presets describe the surveys the pipeline tests and the demo need (geometry only, no pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.instrument.geometry import pixel_to_sky, sky_to_pixel
from opendrp.sim import build_camera, load_sim_config, make_truth_catalog, plan_exposures
from opendrp.sim.survey import sky_footprint


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_preset_source_counts_per_ccd(name: str) -> None:
    config = load_sim_config(name)
    camera = build_camera(config)
    exposures = plan_exposures(config, camera)
    truth = make_truth_catalog(
        config, sky_footprint(config, camera, exposures), np.random.default_rng([config.seed, 2])
    )
    bright, stars, faint_gal, faint_star = [], [], [], []
    science = [e for e in exposures if e.observation_type == "science"]
    for exp in science:
        for det_id, det in camera.detectors.items():
            x, y = sky_to_pixel(camera, det_id, truth.ra, truth.dec, exp.pointing)
            on = (x > -0.5) & (x < det.nx - 0.5) & (y > -0.5) & (y < det.ny - 0.5)
            mag = truth.mags[exp.band]
            bright.append(np.sum(on & truth.is_star & (mag < 22.0)))
            stars.append(np.sum(on & truth.is_star))
            faint_gal.append(np.sum(on & ~truth.is_star & (mag > 23.0)))
            faint_star.append(np.sum(on & truth.is_star & (mag > 23.0)))
    # enough stars for PSF modelling and astrometry on every CCD, galaxies dominate the faint counts
    assert np.median(bright) >= 60 and np.min(bright) >= 40
    assert np.median(stars) >= 150
    assert np.sum(faint_gal) > 3 * np.sum(faint_star)
    # every CCD overlaps a CCD of another visit in the same band (dithers)
    for exp in science:
        for det_id, det in camera.detectors.items():
            ra, dec = pixel_to_sky(camera, det_id, (det.nx - 1) / 2.0, (det.ny - 1) / 2.0, exp.pointing)
            overlaps = False
            for other in science:
                if other.exposure_id == exp.exposure_id or other.band != exp.band:
                    continue
                for oid, odet in camera.detectors.items():
                    x, y = sky_to_pixel(camera, oid, ra, dec, other.pointing)
                    if (
                        abs(x - (odet.nx - 1) / 2.0) < 0.9 * odet.nx
                        and abs(y - (odet.ny - 1) / 2.0) < 0.9 * odet.ny
                    ):
                        overlaps = True
            assert overlaps, (exp.exposure_id, det_id)
