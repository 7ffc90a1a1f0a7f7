"""The artefact truth is complete and exact: bleed trails only where stars saturate, every artefact listed.

One 1024 x 1024 CCD (HSC detector 49) of the ``rc`` preset, every artefact on (cosmic rays, hot pixels, dead
columns, dust rings, a satellite trail, ghosts, bleed trails, blind insertions), with a grid of injected
stars from r = 12 (saturated, bleeding, with a ghost) to r = 20 (unsaturated) on top of the simulated sky.
The raw is read back to electrons with the exact bias levels and bias structure of the read-out and compared
with the simulator's noiseless model without artefacts (`expected_electrons(..., artifacts=False)`): every
pixel that differs by more than 5 sigma of its noise must lie on an artefact the truth tables list.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pandas as pd
import pytest
from lsst.sphgeom import HtmPixelization
from scipy import ndimage, stats

from opendrp.astrometry.tangent import tangent_to_sky
from opendrp.image.photo_calib import mag_to_njy
from opendrp.instrument.geometry import pixel_to_sky, sky_to_pixel
from opendrp.raw import read_raw
from opendrp.sim import build_camera, load_sim_config, plan_exposures, simulate
from opendrp.sim.artifacts import add_ghost
from opendrp.sim.blind import make_blind_insertions
from opendrp.sim.catalog import TruthCatalog, make_truth_catalog
from opendrp.sim.detector import amplifier_bias_levels, bias_structure, flat_response, full_well_electrons
from opendrp.sim.optics import cloud_factor
from opendrp.sim.psf import local_psf, moffat_alpha
from opendrp.sim.refcat import htm_indices
from opendrp.sim.simulate import _init_worker, expected_electrons, simulate_unit
from opendrp.sim.survey import sky_footprint
from opendrp.sim.truth_tables import artifact_tables

DET = 49
#: Injected stars: r magnitudes (8 x 8 grid, 12 to 20 mag); brighter than ~18.3 they saturate in 200 s.
INJECTED_MAGS = np.linspace(12.0, 20.0, 64)


def _injected(camera, exposure) -> TruthCatalog:
    g = np.linspace(70.0, 950.0, 8)
    xy = np.array([(x + 0.31 * j, y + 0.17 * i) for i, y in enumerate(g) for j, x in enumerate(g)])
    ra, dec = pixel_to_sky(camera, DET, xy[:, 0], xy[:, 1], exposure.pointing)
    n = len(ra)
    zeros = np.zeros(n)
    return TruthCatalog(
        id=900_000_000 + np.arange(n, dtype=np.int64),
        ra=ra,
        dec=dec,
        is_star=np.ones(n, bool),
        mags={b: INJECTED_MAGS.copy() for b in "grizy"},
        disk_hlr=zeros,
        bulge_hlr=zeros,
        bulge_fraction=zeros,
        e1=zeros,
        e2=zeros,
    )


def _raw_electrons(path, config, camera, exposure) -> np.ndarray:
    """Raw -> electrons with the read-out's exact bias levels (incl. drift) and bias structure."""
    det = camera.detector(DET)
    rng = np.random.default_rng([config.seed, exposure.exposure_id, DET])
    levels = amplifier_bias_levels(config.instrument, det, config.seed)
    levels = levels + rng.normal(0.0, config.instrument.bias_drift_adu, levels.size)
    structure = bias_structure(config.instrument, det, config.seed)
    raw = read_raw(path).pixels.astype(float)
    out = np.empty((det.ny, det.nx))
    for amp, level in zip(det.amplifiers, levels):
        data = raw[amp.raw_data_slice()] - level
        if amp.flip_x:
            data = data[:, ::-1]
        ys, xs = amp.assembled_slice()
        out[ys, xs] = (data - structure[ys, xs]) * amp.gain
    return out


def _per_amp(camera, values) -> np.ndarray:
    """An assembled ``(ny, nx)`` map of one value per amplifier."""
    det = camera.detector(DET)
    out = np.empty((det.ny, det.nx))
    for amp, v in zip(det.amplifiers, values):
        out[amp.assembled_slice()] = v
    return out


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    config = load_sim_config("rc")
    config.camera.detectors = [DET]
    config.camera.nx, config.camera.ny = 1024, 1024
    for band in config.bands.values():
        band.n_visits = 1
    config.instrument.cosmic_ray_rate = 0.05  # ~24 tracks
    config.instrument.hot_pixel_fraction = 1e-4  # ~100 hot pixels
    config.instrument.n_dust_rings = 6
    config.blind.density_per_deg2 = 40000.0  # ~100 insertions on the CCD
    config.validate()
    camera = build_camera(config)
    exposures = plan_exposures(config, camera)
    science = next(e for e in exposures if e.observation_type == "science" and e.band == "r")
    det = camera.detector(DET)
    # a satellite trail across the CCD centre
    ra0, dec0 = pixel_to_sky(camera, DET, np.array([500.0]), np.array([530.0]), science.pointing)
    exposure = dataclasses.replace(science, trail=(float(ra0[0]), float(dec0[0]), 33.0))
    exposures = [exposure if e is science else e for e in exposures]
    footprint = sky_footprint(config, camera, exposures)
    sky = make_truth_catalog(config, footprint, np.random.default_rng([config.seed, 2]))
    injected = _injected(camera, exposure)
    truth = sky.concat(injected)
    blind = make_blind_insertions(config, footprint, exposures, np.random.default_rng([config.seed, 5]))
    drawn = truth.concat(blind.catalog)
    outdir = tmp_path_factory.mktemp("truth_complete")
    _init_worker({})
    result = simulate_unit(camera, config, exposure, DET, drawn, outdir, blind)
    tables = artifact_tables(config, camera, [exposure], [result])
    electrons = _raw_electrons(result.path, config, camera, exposure)
    clean = expected_electrons(camera, config, exposure, DET, drawn, blind, artifacts=False).electrons
    full = expected_electrons(camera, config, exposure, DET, drawn, blind, artifacts=True).electrons
    no_blind = expected_electrons(camera, config, exposure, DET, truth, artifacts=True).electrons
    read_var = _per_amp(camera, [a.read_noise**2 + a.gain**2 / 12.0 for a in det.amplifiers])
    rng = np.random.default_rng([config.seed, exposure.exposure_id, DET])
    levels = amplifier_bias_levels(config.instrument, det, config.seed)
    levels = levels + rng.normal(0.0, config.instrument.bias_drift_adu, levels.size)
    full_well = _per_amp(camera, full_well_electrons(det, levels))
    response = flat_response(
        camera, det, exposure.band_index, config.instrument, config.psf.field_radius_deg, config.seed
    )
    clouds = cloud_factor(camera, DET, exposure)
    return types.SimpleNamespace(
        config=config,
        camera=camera,
        det=det,
        exposure=exposure,
        truth=truth,
        injected=injected,
        blind=blind,
        sealed=blind.to_dataframe(list(config.bands), exposures),
        result=result,
        tables=tables,
        electrons=electrons,
        clean=np.asarray(clean, float),
        full=np.asarray(full, float),
        no_blind=np.asarray(no_blind, float),
        sigma=np.sqrt(np.maximum(np.asarray(clean, float), 0.0) + read_var),
        read_sigma=np.sqrt(read_var),
        full_well=full_well,
        response=response * (clouds if clouds is not None else 1.0),
    )


def _trail_mask(unit, tables) -> np.ndarray:
    """Pixels of the listed bleed trails, with the row at each end that receives the remainder."""
    mask = np.zeros(unit.electrons.shape, bool)
    for row in tables["bleed_trails"].itertuples():
        mask[max(row.y0 - 1, 0) : row.y1 + 2, row.x] = True
    return mask


def _segment_distance(xx, yy, x0, y0, x1, y1) -> np.ndarray:
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))


def _artifact_masks(unit) -> dict[str, np.ndarray]:
    """Pixels explained by each listed artefact (computed once per unit)."""
    if not hasattr(unit, "masks"):
        unit.masks = _compute_masks(unit)
    return unit.masks


def _compute_masks(unit) -> dict[str, np.ndarray]:
    t, camera, det = unit.tables, unit.camera, unit.det
    shape = unit.electrons.shape
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    masks = {
        name: np.zeros(shape, bool) for name in ["bleed", "cosmic", "satellite", "ghost", "defect", "dust"]
    }
    masks["bleed"] = _trail_mask(unit, t)
    # a track deposits bilinearly: pixels within sqrt(2) of the track
    for r in t["cosmic_rays"].itertuples():
        masks["cosmic"] |= _segment_distance(xx, yy, r.x0, r.y0, r.x1, r.y1) <= 1.5
    # satellite trails: within 2 FWHM of the listed great circle (below 5 sigma beyond 1.3 FWHM)
    fwhm = unit.exposure.seeing_fwhm_arcsec * 1.2 / camera.pixel_scale_arcsec
    for r in t["satellite_trails"].itertuples():
        s = np.linspace(-0.2, 0.2, 4001)
        ra, dec = tangent_to_sky(s * np.sin(np.radians(r.pa)), s * np.cos(np.radians(r.pa)), r.ra, r.dec)
        x, y = sky_to_pixel(camera, DET, ra, dec, unit.exposure.pointing)
        on = (x > -50) & (x < det.nx + 50) & (y > -50) & (y < det.ny + 50)
        masks["satellite"] |= (
            _segment_distance(xx, yy, x[on][0], y[on][0], x[on][-1], y[on][-1]) <= 2.0 * fwhm
        )
    for r in t["ghosts"].itertuples():
        rr = np.hypot(xx - r.x, yy - r.y)
        inner = unit.config.optics.ghost_inner_fraction * r.radius
        masks["ghost"] |= (rr <= r.radius + 1.5) & (rr >= inner - 1.5)
    for r in t["defects"].itertuples():
        masks["defect"][r.y0 : r.y1 + 1, r.x] = True
    for r in t["dust_rings"].itertuples():
        masks["dust"] |= np.abs(np.hypot(xx - r.x, yy - r.y) - r.radius) <= 4.0 * r.width
    return masks


def test_every_artifact_type_is_present(unit) -> None:
    t = unit.tables
    assert len(t["cosmic_rays"]) >= 10
    assert len(t["bleed_trails"]) >= 20
    assert len(t["ghosts"]) >= 3
    assert len(t["satellite_trails"]) == 1
    assert set(t["defects"].kind) == {"bad_column", "hot_pixel"}
    assert len(t["dust_rings"]) == 6
    assert unit.result.n_saturated > 0
    for name, cols in {
        "defects": ["detector", "kind", "x", "y0", "y1", "value"],
        "dust_rings": ["detector", "x", "y", "radius", "width", "depth"],
        "cosmic_rays": ["exposure_id", "detector", "x0", "y0", "x1", "y1", "electrons"],
        "bleed_trails": ["exposure_id", "detector", "x", "y0", "y1"],
        "ghosts": ["exposure_id", "detector", "source_id", "x", "y", "radius", "electrons"],
        "satellite_trails": ["exposure_id", "ra", "dec", "pa", "mag_per_arcsec"],
    }.items():
        assert list(t[name].columns) == cols  # the schema issue #4 reads (docs/simulator.md)


def test_saturated_pixels_all_in_listed_bleed_trails(unit) -> None:
    e, fw = unit.electrons, unit.full_well
    # at full well: within 5 sigma of read noise (raws are clipped at the saturation level)
    saturated = e >= fw - 5.0 * unit.read_sigma
    assert saturated.sum() > 100
    in_trail = np.zeros(e.shape, bool)
    for row in unit.tables["bleed_trails"].itertuples():
        in_trail[row.y0 : row.y1 + 1, row.x] = True
    outside = saturated & ~in_trail
    # the only saturated pixels outside a listed run: a run's end pixels topped up by its remainder,
    # or pixels whose own expected charge reaches full well within 5 sigma of the Poisson noise
    near_end = _trail_mask(unit, unit.tables) & ~in_trail
    near_full = unit.clean + 5.0 * np.sqrt(unit.clean) >= fw
    assert np.sum(outside & ~near_end & ~near_full) == 0
    # and the listed runs are at full well (the bleed model fills each run to exactly full well)
    assert np.all(e[in_trail] >= fw[in_trail] - 5.0 * unit.read_sigma[in_trail])


def test_bleed_trails_only_from_saturated_stars(unit) -> None:
    camera, exposure, fw, clean = unit.camera, unit.exposure, unit.full_well, unit.clean
    # every star drawn (simulated, injected, blind) and its noiseless peak
    stars = unit.truth.concat(unit.blind.catalog)
    x, y = sky_to_pixel(camera, DET, stars.ra[stars.is_star], stars.dec[stars.is_star], exposure.pointing)
    on = (x > -0.5) & (x < unit.det.nx - 0.5) & (y > -0.5) & (y < unit.det.ny - 0.5)
    ix, iy = np.rint(x[on]).astype(int), np.rint(y[on]).astype(int)
    peak, fw_star = clean[iy, ix], fw[iy, ix]
    # saturated cores: connected pixels whose expected charge reaches full well within 5 sigma of the noise
    core, _ = ndimage.label(clean + 5.0 * np.sqrt(clean) > fw)
    star_core = core[iy, ix]
    trails = unit.tables["bleed_trails"]
    trail_cores = set()
    for row in trails.itertuples():
        labels = set(np.unique(core[row.y0 : row.y1 + 1, row.x])) - {0}
        # every run starts in a saturated core that holds the centre of a drawn star
        assert labels, row
        assert labels & set(star_core), row
        trail_cores |= labels
    # every star whose peak clearly exceeds full well has a trail; the injected grid holds both kinds
    clearly = peak - 5.0 * np.sqrt(peak) > fw_star
    assert set(star_core[clearly]) <= trail_cores
    inj = np.isin(stars.id[stars.is_star][on], unit.injected.id)
    assert (inj & clearly).sum() >= 20 and (inj & (peak + 5.0 * np.sqrt(peak) < fw_star)).sum() >= 10
    # no unsaturated star has a trail of its own: a run through its centre belongs to another star's core
    in_trail = np.zeros(clean.shape, bool)
    for row in trails.itertuples():
        in_trail[row.y0 : row.y1 + 1, row.x] = True
    for k in np.flatnonzero(peak + 5.0 * np.sqrt(peak) < fw_star):
        box = (slice(max(iy[k] - 3, 0), iy[k] + 4), slice(max(ix[k] - 3, 0), ix[k] + 4))
        assert star_core[k] == 0
        if in_trail[box].any():
            cols = np.unique(np.nonzero(in_trail[box])[1]) + box[1].start
            runs = trails[trails.x.isin(cols)]
            assert all(set(np.unique(core[r.y0 : r.y1 + 1, r.x])) - {0} for r in runs.itertuples())


def test_bleeding_conserves_charge_along_columns(unit) -> None:
    """Each trail column keeps its charge: raw column sum = model column sum within the noise."""
    e, full = unit.electrons, unit.full  # the model with the artefacts drawn before the noise (ghosts, ...)
    ny = e.shape[0]
    hit = _artifact_masks(unit)["cosmic"]
    trails = unit.tables["bleed_trails"]
    checked, worst = 0, 0.0
    for x in np.unique(trails.x):
        runs = trails[trails.x == x]
        if runs.y0.min() == 0 or runs.y1.max() == ny - 1:
            continue  # charge flows off the CCD edge
        rows = slice(max(int(runs.y0.min()) - 60, 0), min(int(runs.y1.max()) + 61, ny))
        if hit[rows, x].any():
            continue  # a cosmic ray adds charge
        got, want = e[rows, x].sum(), full[rows, x].sum()
        sigma = np.sqrt(np.sum(unit.sigma[rows, x] ** 2))
        worst = max(worst, abs(got - want) / sigma)
        checked += 1
    # raws are clipped at the saturation level: a full-well pixel loses < 1 sigma of read noise, ~2 e-
    assert checked >= 20 and worst < 5.0


def test_every_outlier_pixel_is_a_listed_artifact(unit) -> None:
    masks = _artifact_masks(unit)
    explained = np.zeros(unit.electrons.shape, bool)
    for m in masks.values():
        explained |= m
    z = (unit.electrons - unit.clean) / unit.sigma
    outliers = np.abs(z) > 5.0
    unexplained = outliers & ~explained
    # each kind of artefact accounts for some outliers
    for name in ["bleed", "cosmic", "satellite", "ghost", "defect"]:
        assert (outliers & masks[name]).sum() > 0, name
    # Gaussian noise alone exceeds 5 sigma in 2 * Q(5) = 5.7e-7 of the pixels: 0.5 expected on the
    # unexplained part of the CCD; P(>= 4) = 0.2%.  An unlisted artefact would also exceed 6 sigma
    # (P = 2e-9 per pixel for noise) or touch another outlier.
    expected_noise = 2.0 * stats.norm.sf(5.0) * (~explained).sum()
    assert expected_noise < 1.0
    n_unexplained = int(unexplained.sum())
    assert n_unexplained <= 3, np.argwhere(unexplained)[:20]
    assert not (np.abs(z) > 6.0)[~explained].any()
    grown = ndimage.binary_dilation(unexplained, np.ones((3, 3), bool))
    assert not (grown & outliers & ~unexplained).any()  # isolated pixels, not parts of a shape
    # the masks are not a blanket: the sharp artefacts cover < 8% of the CCD (here: 64 stars of 12-20 mag
    # with long trails, 2 FWHM about the satellite trail); ghosts (17 doughnuts of 149 px) and dust rings are
    # diffuse, below 5 sigma but for a few pixels (their charge is checked below)
    sharp = masks["bleed"] | masks["cosmic"] | masks["satellite"] | masks["defect"]
    assert sharp.mean() < 0.08
    assert (outliers & ~sharp).sum() < 0.01 * outliers.sum()


def test_listed_cosmic_rays_and_ghosts_hold_their_charge(unit) -> None:
    yy, xx = np.mgrid[0 : unit.electrons.shape[0], 0 : unit.electrons.shape[1]]
    masks = _artifact_masks(unit)
    others = masks["bleed"] | masks["satellite"] | masks["defect"]
    resid = unit.electrons - unit.full  # the model with every artefact drawn before the noise
    n = 0
    for r in unit.tables["cosmic_rays"].itertuples():
        near = _segment_distance(xx, yy, r.x0, r.y0, r.x1, r.y1) <= 1.5
        if (near & others).any() or r.electrons < 1000.0:
            continue
        sigma = np.sqrt(np.sum(unit.sigma[near] ** 2))
        assert resid[near].sum() == pytest.approx(r.electrons, abs=5.0 * sigma), r
        n += 1
    assert n >= 5
    # a ghost is a doughnut of the listed centre, radius and charge, added before the flat response
    ghosts = np.zeros(unit.electrons.shape)
    for r in unit.tables["ghosts"].itertuples():
        add_ghost(
            ghosts,
            r.x,
            r.y,
            electrons=r.electrons,
            radius_pixels=r.radius,
            inner_fraction=unit.config.optics.ghost_inner_fraction,
        )
    ghosts *= unit.response
    resid = unit.electrons - unit.clean
    region = (ghosts > 0) & ~(others | masks["cosmic"] | masks["dust"])
    # the stars near the ghosts are in the clean model: the residual there is the ghosts' light
    got = resid[region].sum()
    sigma = np.sqrt(np.sum(unit.sigma[region] ** 2))
    assert got == pytest.approx(ghosts[region].sum(), abs=5.0 * sigma)
    assert ghosts[region].sum() > 10.0 * sigma


def test_blind_insertions_drawn_at_their_sealed_flux(unit) -> None:
    sealed, exposure, camera = unit.sealed, unit.exposure, unit.camera
    assert sealed.id.min() > unit.truth.id.max()
    assert not set(sealed.id) & set(unit.truth.id)
    x, y = sky_to_pixel(camera, DET, sealed.ra.to_numpy(), sealed.dec.to_numpy(), exposure.pointing)
    # the listed light curve: mag(t) = mag + amplitude sin(2 pi (mjd / period + phase)); transients once
    mag = sealed[f"{exposure.band}_mag"] + sealed.amplitude_mag * np.sin(
        2.0 * np.pi * (exposure.mjd / sealed.period_days + sealed.phase)
    )
    flux = 10.0 ** (-0.4 * (mag - exposure.zero_point)) * exposure.exposure_time
    flux = np.where(
        sealed.kind == "transient",
        np.where(sealed.transient_exposure == exposure.exposure_id, flux, 0.0),
        flux,
    )
    masks = _artifact_masks(unit)
    bad = masks["bleed"] | masks["cosmic"] | masks["satellite"] | masks["defect"] | masks["ghost"]
    resid = (unit.electrons - unit.no_blind) / unit.response
    rad = 16
    yy, xx = np.mgrid[-rad : rad + 1, -rad : rad + 1]
    aperture = np.hypot(xx, yy) <= rad
    # the Moffat's light beyond the aperture (~0.3%): 1 - EE(r) = (1 + (r / alpha)^2)^(1 - beta)
    fx, fy = unit.det.pixel_to_focal_plane(x, y, camera.pixel_size_mm)
    fwhm, _, _ = local_psf(
        exposure.psf,
        fx,
        fy,
        pixel_scale=camera.pixel_scale_arcsec,
        detector_rotation_deg=unit.det.rotation_deg,
    )
    beta = exposure.psf.beta
    alpha = np.array([moffat_alpha(f, beta) for f in fwhm])
    enclosed = 1.0 - (1.0 + ((rad + 0.5) / alpha) ** 2) ** (1.0 - beta)
    z, bright = [], []
    for k in range(len(sealed)):
        ix, iy = int(round(x[k])), int(round(y[k]))
        if not (rad <= ix < unit.det.nx - rad and rad <= iy < unit.det.ny - rad):
            continue
        if np.any((np.hypot(x - x[k], y - y[k]) < 3 * rad) & (flux > 0) & (np.arange(len(x)) != k)):
            continue  # another insertion nearby
        box = (slice(iy - rad, iy + rad + 1), slice(ix - rad, ix + rad + 1))
        if (bad[box] & aperture).any():
            continue
        got = resid[box][aperture].sum()
        sigma = np.sqrt(np.sum((unit.sigma[box][aperture] / unit.response[box][aperture]) ** 2))
        z.append((got - enclosed[k] * flux[k]) / sigma)
        if flux[k] > 300.0 * sigma:
            bright.append(got / (enclosed[k] * flux[k]))
    z = np.array(z)
    assert len(z) >= 25
    assert np.all(np.abs(z) < 5.0)
    assert abs(np.mean(z)) < 4.0 / np.sqrt(len(z))
    # bright insertions: within 0.5% of the sealed flux (noise 0.1-0.3%)
    assert len(bright) >= 3 and np.all(np.abs(np.array(bright) - 1.0) < 0.005), bright
    # transients of other exposures and the kinds present
    assert set(sealed.kind) == {"constant", "variable", "transient"}


def test_sealed_file_and_truth_are_disjoint(helpers, tmp_path) -> None:
    config = helpers.small_test_config(
        blind__density_per_deg2=30000.0, calibration__n_bias=0, calibration__n_flat=0
    )
    config.camera.n_detectors = 1
    config.bands["r"].n_visits = 2
    result = simulate(config, tmp_path / "sealed", processes=1, progress=False)
    truth = pd.read_parquet(result.truth_path)
    blind = pd.read_parquet(result.outdir / "truth" / "sealed" / "blind.parquet")
    visits = pd.read_parquet(result.visits_path)
    assert len(blind) >= 10 and set(blind.kind) == {"constant", "variable", "transient"}
    assert not set(blind.id) & set(truth.id)
    assert blind.id.min() > 1_000_000_000
    assert len(truth.merge(blind, on=["ra", "dec"])) == 0  # not copies of true sources
    assert set(blind.transient_exposure[blind.kind == "transient"]) <= set(visits.exposure_id)
    assert np.all(blind.transient_exposure[blind.kind != "transient"] == -1)
    assert np.allclose(blind.r_flux, mag_to_njy(blind.r_mag))
    # nothing else in truth/ names them
    for path in (result.outdir / "truth").glob("*.parquet"):
        table = pd.read_parquet(path)
        for col in ("id", "source_id"):
            if col in table:
                assert not set(table[col]) & set(blind.id), path


def test_refcat_shards_partition_the_catalogs(sim_run) -> None:
    out, config = sim_run.outdir, sim_run.config
    level = config.refcat.htm_level
    truth = pd.read_parquet(out / "truth" / "truth.parquet").set_index("id")
    refcat = pd.read_parquet(out / "refcat" / "refcat.parquet")
    pix = HtmPixelization(level)
    selections = {
        "ps1": truth.is_star
        & (truth.r_mag >= config.refcat.ps1_mag_min)
        & (truth.r_mag <= config.refcat.ps1_mag_max),
        "gaia": None,  # G needs g and r; the test survey has r only
    }
    for name, sel in selections.items():
        files = sorted((out / "refcat" / name).glob("*.parquet"))
        assert files
        shards = [pd.read_parquet(f) for f in files]
        ids = np.concatenate([s.id.to_numpy() for s in shards])
        assert len(ids) == len(set(ids))  # every star in exactly one shard
        for f, shard in zip(files, shards):
            cell = int(f.stem)
            assert pix.level(cell) == level
            assert np.all(htm_indices(shard.coord_ra.to_numpy(), shard.coord_dec.to_numpy(), level) == cell)
        if sel is not None:
            assert set(ids) == set(truth.index[sel])
        # the same stars as the flat reference catalogue (17 < r < 22: inside the PS1-like range)
        both = set(refcat.id) & set(ids)
        if name == "ps1":
            assert both == set(refcat.id)
        assert both
        merged = pd.concat(shards).set_index("id").loc[sorted(both)]
        t = truth.loc[sorted(both)]
        sep_mas = (
            np.hypot((merged.coord_ra - t.ra) * np.cos(np.radians(t.dec)), merged.coord_dec - t.dec) * 3.6e6
        )
        assert np.all(sep_mas < 5.0 * np.hypot(merged.coord_raErr, merged.coord_decErr) * 3.6e6 + 1e-3)
