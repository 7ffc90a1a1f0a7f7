"""A small simulated survey measured against its own inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from opendrp.astrometry.tangent import angular_separation
from opendrp.instrument import load_camera
from opendrp.instrument.geometry import Pointing, sky_to_pixel
from opendrp.raw import read_raw, read_raw_header
from opendrp.sim import simulate
from opendrp.sim.catalog import reference_errors
from opendrp.sim.detector import flat_response


def _raws(run, kind: str) -> list:
    return sorted((run.outdir / "raw" / kind).glob("*.fits"))


def test_outputs_and_headers(sim_run) -> None:
    out, config = sim_run.outdir, sim_run.config
    camera = load_camera(out / "camera.yaml")
    assert sorted(camera.detectors) == [49, 50] and camera.detector(49).nx == 512
    assert (out / "sim_config.yaml").exists()
    science, calib = _raws(sim_run, "science"), _raws(sim_run, "calib")
    assert len(science) == 2 * 2 and len(calib) == (2 + 2) * 2
    headers = [read_raw_header(p, camera) for p in calib + science]
    kinds = {h.exposure_id: h.observation_type for h in headers}
    assert sorted(kinds.values()).count("bias") == 2 and sorted(kinds.values()).count("flat") == 2
    # calibrations precede science, ids distinct and increasing with time
    by_id = sorted({(h.exposure_id, h.date_obs.mjd, h.observation_type) for h in headers})
    assert [t for _, t, _ in by_id] == sorted(t for _, t, _ in by_id)
    assert by_id[-1][2] == "science" and by_id[0][2] == "bias"
    visits = pd.read_parquet(out / "truth" / "visits.parquet")
    assert set(visits.exposure_id) == {h.exposure_id for h in headers if h.observation_type == "science"}
    for h in headers:
        if h.observation_type != "science":
            continue
        v = visits.set_index("exposure_id").loc[h.exposure_id]
        assert h.boresight_ra == pytest.approx(v.header_ra) and h.boresight_dec == pytest.approx(v.header_dec)
        assert h.physical_filter == "HSC-R" and h.exposure_time == 100.0
        err = angular_separation(v.ra, v.dec, v.header_ra, v.header_dec) * 3600.0
        assert 0.0 < err < 5.0 * config.survey.pointing_error_arcsec
    for col in (
        "exposure_id",
        "band",
        "physical_filter",
        "ra",
        "dec",
        "rotation",
        "header_ra",
        "header_dec",
        "header_rotation",
        "seeing_fwhm_arcsec",
        "sky_level",
        "zero_point",
        "exposure_time",
    ):
        assert col in visits.columns


def test_truth_and_refcat_columns(sim_run) -> None:
    truth = pd.read_parquet(sim_run.result.truth_path)
    assert truth["id"].dtype == np.int64 and truth["id"].is_unique
    assert truth["is_star"].dtype == bool
    assert {"ra", "dec", "r_flux", "r_mag"} <= set(truth.columns)
    np.testing.assert_allclose(truth.r_mag, -2.5 * np.log10(truth.r_flux / 3631e9), atol=1e-9)
    stars = truth[truth.is_star]
    assert 17.0 <= stars.r_mag.min() and stars.r_mag.max() <= 23.0
    ref = pd.read_parquet(sim_run.result.refcat_path)
    assert list(ref.columns) == [
        "id",
        "coord_ra",
        "coord_dec",
        "coord_raErr",
        "coord_decErr",
        "r_flux",
        "r_fluxErr",
    ]
    assert ref["id"].dtype == np.int64
    matched = truth.set_index("id").loc[ref.id]
    assert matched.is_star.all()
    cfg = sim_run.config.refcat
    assert cfg.mag_min <= matched.r_mag.min() and matched.r_mag.max() <= cfg.mag_max
    # errors are what the columns say: normalized residuals have unit scatter
    dra = (ref.coord_ra.to_numpy() - matched.ra.to_numpy()) * np.cos(np.radians(matched.dec.to_numpy()))
    ddec = ref.coord_dec.to_numpy() - matched.dec.to_numpy()
    chi = np.concatenate([dra / ref.coord_raErr, ddec / ref.coord_decErr])
    assert len(chi) > 100 and np.std(chi) == pytest.approx(1.0, abs=0.15)
    pos_mas, _ = reference_errors(cfg, matched.r_mag.to_numpy())
    np.testing.assert_allclose(ref.coord_decErr * 3.6e6, pos_mas)
    chi_f = (ref.r_flux.to_numpy() - matched.r_flux.to_numpy()) / ref.r_fluxErr.to_numpy()
    assert np.std(chi_f) == pytest.approx(1.0, abs=0.15)


def test_bias_noise_matches_read_noise(sim_run, helpers) -> None:
    camera = load_camera(sim_run.outdir / "camera.yaml")
    path = next(p for p in _raws(sim_run, "calib") if read_raw_header(p).observation_type == "bias")
    raw = read_raw(path)
    det = camera.detector(int(raw.metadata["DET-ID"]))
    for amp in det.amplifiers:
        expected = amp.read_noise / amp.gain
        data = raw.pixels[amp.raw_data_slice()].astype(float)
        over = raw.pixels[amp.raw_overscan_slice()].astype(float)
        # difference of adjacent columns removes the fixed bias structure; var doubles
        diff = np.diff(data, axis=1)[:, ::2]
        assert np.std(diff) / np.sqrt(2.0) == pytest.approx(expected, rel=0.03)
        assert np.std(over) == pytest.approx(np.hypot(expected, 1.0 / np.sqrt(12.0)), rel=0.05)


def test_flat_photon_transfer_gives_gain(sim_run, helpers) -> None:
    camera = load_camera(sim_run.outdir / "camera.yaml")
    flats = [p for p in _raws(sim_run, "calib") if read_raw_header(p).observation_type == "flat"]
    by_det: dict[int, list] = {}
    for p in flats:
        by_det.setdefault(read_raw_header(p).detector, []).append(read_raw(p).pixels.astype(float))
    for det_id, (a, b) in by_det.items():
        det = camera.detector(det_id)
        for amp in det.amplifiers:
            sa = a[amp.raw_data_slice()] - np.median(a[amp.raw_overscan_slice()])
            sb = b[amp.raw_data_slice()] - np.median(b[amp.raw_overscan_slice()])
            mean = 0.5 * (sa.mean() + sb.mean())
            var = np.var(sa - sb) / 2.0 - (amp.read_noise / amp.gain) ** 2
            assert mean / var == pytest.approx(amp.gain, rel=0.03)


def _calibrated(sim_run, helpers, camera, det_id: int) -> tuple[np.ndarray, float]:
    """Master-bias-subtracted, flat-fielded science images in electrons; returns the mean flat response."""
    calib = _raws(sim_run, "calib")
    heads = {p: read_raw_header(p) for p in calib}
    biases = [
        helpers.assemble(p, camera)[0]
        for p, h in heads.items()
        if h.detector == det_id and h.observation_type == "bias"
    ]
    master_bias = np.mean(biases, axis=0)
    flats = [
        helpers.assemble(p, camera)[0] - master_bias
        for p, h in heads.items()
        if h.detector == det_id and h.observation_type == "flat"
    ]
    master_flat = np.mean(flats, axis=0)
    master_flat /= master_flat.mean()
    true_flat = flat_response(
        camera,
        camera.detector(det_id),
        0,
        sim_run.config.instrument,
        sim_run.config.psf.field_radius_deg,
        sim_run.config.seed,
    )
    # the simulated flats measure the true response (up to photon noise)
    ratio = master_flat / (true_flat / true_flat.mean())
    assert np.std(ratio) < 1.5 / np.sqrt(2 * sim_run.config.calibration.flat_level_electrons)
    return master_bias, master_flat, float(true_flat.mean())


def test_star_flux_matches_truth(sim_run, helpers) -> None:
    camera = load_camera(sim_run.outdir / "camera.yaml")
    truth = pd.read_parquet(sim_run.result.truth_path)
    visits = pd.read_parquet(sim_run.result.visits_path).set_index("exposure_id")
    ratios = []
    for det_id in camera.detectors:
        master_bias, master_flat, flat_mean = _calibrated(sim_run, helpers, camera, det_id)
        for path in _raws(sim_run, "science"):
            h = read_raw_header(path)
            if h.detector != det_id:
                continue
            v = visits.loc[h.exposure_id]
            img = (helpers.assemble(path, camera)[0] - master_bias) / master_flat
            x, y = sky_to_pixel(
                camera, det_id, truth.ra.to_numpy(), truth.dec.to_numpy(), Pointing(v.ra, v.dec, v.rotation)
            )
            e_true = 10.0 ** (-0.4 * (truth.r_mag.to_numpy() - v.zero_point)) * v.exposure_time
            inside = (x > 40) & (x < 471) & (y > 40) & (y < 471)
            candidates = np.flatnonzero(inside & truth.is_star.to_numpy() & (e_true > 2e5) & (e_true < 1.5e6))
            for k in candidates:
                d = np.hypot(x - x[k], y - y[k])
                near = (d < 45) & (d > 0)
                wings = (d < 100) & (d > 0)
                if np.any(e_true[near] > 1e-3 * e_true[k]) or np.any(e_true[wings] > 2.0 * e_true[k]):
                    continue  # not isolated (nothing within 45 px, no brighter star's wings within 100 px)
                yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
                r = np.hypot(xx - x[k], yy - y[k])
                sky = np.median(img[(r > 30) & (r < 40)])
                flux = np.sum(img[r < 25] - sky)
                ratios.append(flux / (e_true[k] * flat_mean))
    ratios = np.array(ratios)
    assert len(ratios) >= 3
    # ~2% sky noise per star in the aperture: the 0.5% test is tests/sim/test_fidelity.py
    assert np.median(ratios) == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(ratios - 1.0) < 0.06)


def test_sky_level_matches_visit(sim_run, helpers) -> None:
    camera = load_camera(sim_run.outdir / "camera.yaml")
    visits = pd.read_parquet(sim_run.result.visits_path).set_index("exposure_id")
    for det_id in camera.detectors:
        master_bias, master_flat, flat_mean = _calibrated(sim_run, helpers, camera, det_id)
        for path in _raws(sim_run, "science"):
            h = read_raw_header(path)
            if h.detector == det_id:
                img = (helpers.assemble(path, camera)[0] - master_bias) / master_flat
                # the mode of a sky-dominated image (sources push the median up a little)
                assert np.median(img) / (visits.loc[h.exposure_id].sky_level * flat_mean) == pytest.approx(
                    1.0, abs=0.01
                )


def test_deterministic_and_process_independent(sim_run, helpers, tmp_path) -> None:
    again = simulate(sim_run.config, tmp_path / "again", processes=2, progress=False)
    for first in _raws(sim_run, "science") + _raws(sim_run, "calib"):
        kind = first.parent.name
        second = again.outdir / "raw" / kind / first.name
        assert np.array_equal(fits.getdata(first), fits.getdata(second)), first.name
    pd.testing.assert_frame_equal(
        pd.read_parquet(sim_run.result.truth_path), pd.read_parquet(again.truth_path)
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(sim_run.result.refcat_path), pd.read_parquet(again.refcat_path)
    )


def test_other_seed_differs(sim_run, helpers, tmp_path) -> None:
    config = helpers.small_test_config(calibration__n_bias=0, calibration__n_flat=0)
    config.seed = 4
    config.bands["r"].n_visits = 1
    stale = tmp_path / "other" / "raw" / "calib" / "HSC-00000001-000.fits"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    other = simulate(config, tmp_path / "other", processes=1, progress=False)
    first = _raws(sim_run, "science")[0]
    assert not np.array_equal(fits.getdata(first), fits.getdata(other.science_raws[0]))
    # raws of an earlier run in the same directory are gone
    assert not stale.exists()
    assert sorted((tmp_path / "other" / "raw").rglob("*.fits")) == sorted(other.science_raws)


def test_bright_stars_saturate_and_bleed(helpers, tmp_path) -> None:
    config = helpers.small_test_config(
        stars__mag_min=13.0,
        stars__mag_max=15.0,
        stars__density_per_deg2=2000.0,
        galaxies__density_per_deg2=0.0,
        calibration__n_bias=0,
        calibration__n_flat=0,
    )
    config.bands["r"].n_visits = 1
    result = simulate(config, tmp_path / "sat", processes=1, progress=False)
    camera = load_camera(result.camera_path)
    n_clipped = 0
    for path in result.science_raws:
        raw = read_raw(path)
        det = camera.detector(int(raw.metadata["DET-ID"]))
        for amp in det.amplifiers:
            data = raw.pixels[amp.raw_data_slice()]
            assert data.max() <= amp.saturation
            at_sat = data >= amp.saturation - 1
            n_clipped += int(at_sat.sum())
            # bleed trails: saturated runs are long vertically
            if at_sat.any():
                assert at_sat.sum(axis=0).max() > 2 * at_sat.sum(axis=1).max()
    assert n_clipped > 0
