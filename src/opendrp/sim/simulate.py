"""`simulate`: plan a survey, draw its sky, and write raws, truth and reference catalogues.

Output layout (see ``docs/simulator.md``)::

    OUTDIR/camera.yaml               the simulated camera (detector subset, CCD size)
    OUTDIR/sim_config.yaml           the complete configuration
    OUTDIR/raw/science/*.fits        one raw per science exposure and detector
    OUTDIR/raw/calib/*.fits          biases and dome flats
    OUTDIR/truth/truth.parquet       every simulated source
    OUTDIR/truth/visits.parquet      every science visit (true and header pointing, seeing, sky, zero point)
    OUTDIR/truth/exposures.parquet   every exposure, calibrations included
    OUTDIR/refcat/refcat.parquet     the reference catalogue
    OUTDIR/refcat/gaia/*.parquet     Gaia-like astrometric catalogue, one file per HTM cell
    OUTDIR/refcat/ps1/*.parquet      PS1-like photometric catalogue, one file per HTM cell
    OUTDIR/truth/{defects,dust_rings,cosmic_rays,bleed_trails,ghosts,satellite_trails}.parquet  artefacts
    OUTDIR/truth/sealed/blind.parquet  blind insertions (not in truth.parquet)

Work is split by (exposure, detector); each unit draws its random numbers from a generator seeded by
``(seed, exposure_id, detector)``, so the output does not depend on the number of processes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.time import Time
from tqdm import tqdm

from ..errors import ConfigurationError
from ..instrument import Camera, DetectorSpec, load_camera
from ..raw import RawHeader, write_raw
from .artifacts import add_cosmic_rays, dark_rate_map, satellite_trail
from .blind import BlindInsertions, make_blind_insertions
from .catalog import TruthCatalog, make_refcat, make_truth_catalog
from .config import SimConfig
from .detector import (
    amplifier_bias_levels,
    bias_structure,
    bleed_columns,
    flat_response,
    full_well_electrons,
    photon_noise,
    static_rng,
    to_raw_adu,
)
from .optics import cloud_factor, draw_ghosts
from .psf import local_psf
from .refcat import make_gaia_refcat, make_ps1_refcat, write_shards
from .render import render_sources
from .survey import ExposurePlan, plan_exposures, sky_footprint, visits_table
from .truth_tables import artifact_tables

__all__ = [
    "ExpectedImage",
    "SimResult",
    "UnitResult",
    "build_camera",
    "expected_electrons",
    "raw_filename",
    "simulate",
    "simulate_unit",
]


@dataclasses.dataclass
class UnitResult:
    """What one (exposure, detector) unit produced."""

    exposure_id: int
    detector: int
    path: Path
    n_stars: int = 0
    n_galaxies: int = 0
    n_saturated: int = 0
    n_cosmic_rays: int = 0
    cosmic_rays: list[tuple[float, float, float, float, float]] = dataclasses.field(default_factory=list)
    bleed_trails: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    ghosts: list[tuple[int, float, float, float, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SimResult:
    """Paths and counts of a finished simulation."""

    outdir: Path
    camera_path: Path
    config_path: Path
    truth_path: Path
    visits_path: Path
    exposures_path: Path
    refcat_path: Path
    science_raws: list[Path]
    calib_raws: list[Path]
    n_stars: int
    n_galaxies: int
    n_refcat: int
    elapsed_s: float
    n_cosmic_rays: int = 0
    n_saturated_pixels: int = 0


def build_camera(config: SimConfig) -> Camera:
    """The camera actually simulated: the configured detectors and CCD size."""
    cam = load_camera(config.camera.name)
    # "the first N": science detectors in the camera's order (HSC: by distance from the optical axis)
    science = [i for i, d in cam.detectors.items() if d.purpose == "SCIENCE"]
    if config.camera.detectors is not None:
        ids = list(config.camera.detectors)
        missing = [i for i in ids if i not in cam.detectors]
        if missing:
            raise ConfigurationError(
                f"unknown detector ids {missing}",
                where="sim config field camera.detectors",
                fix=f"camera {cam.name} has ids {min(cam.detectors)}..{max(cam.detectors)}",
            )
    elif config.camera.n_detectors is not None:
        if config.camera.n_detectors > len(science):
            raise ConfigurationError(
                f"camera {cam.name} has only {len(science)} science detectors",
                where="sim config field camera.n_detectors",
            )
        ids = science[: config.camera.n_detectors]
    else:
        ids = science
    n_amp = len(next(iter(cam.detectors.values())).amplifiers)
    if config.camera.nx is not None and config.camera.nx % n_amp:
        raise ConfigurationError(
            f"nx={config.camera.nx} is not a multiple of the {n_amp} amplifiers",
            where="sim config field camera.nx",
        )
    sub = cam.subset(ids, nx=config.camera.nx, ny=config.camera.ny)
    for band in config.bands:
        try:
            sub.filter_for_band(band)
        except ConfigurationError:
            raise ConfigurationError(
                f"camera {sub.name} has no filter for band {band!r}", where=f"sim config field bands.{band}"
            ) from None
    return sub


def raw_filename(camera: Camera, exposure_id: int, detector: int) -> str:
    """File name of a raw: ``{CAMERA}-{exposure:08d}-{detector:03d}.fits``."""
    return f"{camera.name}-{exposure_id:08d}-{detector:03d}.fits"


# ---------------------------------------------------------------------- per-unit work

_STATE: dict[str, Any] = {}
_FLAT_CACHE: dict[tuple[int, int], np.ndarray] = {}
_STATIC_CACHE: dict[tuple[str, int], Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)
    _FLAT_CACHE.clear()
    _STATIC_CACHE.clear()


def _flat(camera: Camera, config: SimConfig, detector: int, band_index: int) -> np.ndarray:
    key = (detector, band_index)
    if key not in _FLAT_CACHE:
        if len(_FLAT_CACHE) >= 2:  # consecutive units share (detector, band): 34 MB per full-size CCD
            _FLAT_CACHE.pop(next(iter(_FLAT_CACHE)))
        _FLAT_CACHE[key] = flat_response(
            camera,
            camera.detector(detector),
            band_index,
            config.instrument,
            config.psf.field_radius_deg,
            config.seed,
        )
    return _FLAT_CACHE[key]


def _static(kind: str, det_id: int, make: Any) -> Any:
    """A fixed per-detector pattern, cached for the current detector only.

    Units are sorted so that consecutive ones share a detector; keeping the patterns of every detector
    would grow a worker by ~70 MB per full-size CCD (bias structure and dark map).
    """
    key = (kind, det_id)
    if key not in _STATIC_CACHE:
        for old in [k for k in _STATIC_CACHE if k[1] != det_id]:
            del _STATIC_CACHE[old]
        _STATIC_CACHE[key] = make()
    return _STATIC_CACHE[key]


def _bias_structure(config: SimConfig, det: DetectorSpec) -> np.ndarray:
    return _static("bias", det.id, lambda: bias_structure(config.instrument, det, config.seed))  # type: ignore[no-any-return]


def _dark_rate(config: SimConfig, det: DetectorSpec) -> np.ndarray | None:
    ins = config.instrument
    return _static(  # type: ignore[no-any-return]
        "dark",
        det.id,
        lambda: dark_rate_map(
            det.shape,
            dark_current=ins.dark_current,
            hot_pixel_fraction=ins.hot_pixel_fraction,
            hot_pixel_rate=ins.hot_pixel_rate,
            rng=static_rng(config.seed, 5, det.id),
        ),
    )


def _trail(camera: Camera, config: SimConfig, det: DetectorSpec, exposure: ExposurePlan) -> np.ndarray | None:
    if exposure.trail is None or exposure.psf is None:
        return None
    fx, fy = det.pixel_to_focal_plane(
        np.array([(det.nx - 1) / 2.0]), np.array([(det.ny - 1) / 2.0]), camera.pixel_size_mm
    )
    fwhm, _, _ = local_psf(
        exposure.psf, fx, fy, pixel_scale=camera.pixel_scale_arcsec, detector_rotation_deg=det.rotation_deg
    )
    per_arcsec = 10.0 ** (-0.4 * (config.conditions.satellite_trail_mag - exposure.zero_point))
    return satellite_trail(
        camera,
        det,
        exposure.pointing,
        exposure.trail,
        electrons_per_arcsec=per_arcsec * exposure.exposure_time,
        sigma_pixels=float(fwhm[0]) / 2.3548,
    )


@dataclasses.dataclass
class ExpectedImage:
    """The noiseless expected charge of one (exposure, detector) unit and what was drawn into it.

    Attributes
    ----------
    electrons : `numpy.ndarray`
        ``(ny, nx)`` expected electrons per pixel (assembled frame), before Poisson noise, cosmic rays,
        bleeding and read-out.
    n_stars, n_galaxies : `int`
        Sources drawn (science exposures).
    ghosts : `list` [`tuple`]
        ``(source_id, x, y, radius, electrons)`` of the ghosts drawn (see `opendrp.sim.optics.draw_ghosts`).
    """

    electrons: np.ndarray
    n_stars: int = 0
    n_galaxies: int = 0
    ghosts: list[tuple[int, float, float, float, float]] = dataclasses.field(default_factory=list)


def expected_electrons(
    camera: Camera,
    config: SimConfig,
    exposure: ExposurePlan,
    detector: int,
    truth: TruthCatalog | None,
    blind: BlindInsertions | None = None,
    *,
    artifacts: bool = True,
) -> ExpectedImage:
    """The noiseless model of one exposure on one detector: expected electrons per pixel.

    This is exactly what `simulate_unit` draws its Poisson noise from: sources (``truth`` followed by the
    blind insertions ``blind``), sky, satellite trail and ghosts, times the cloud transmission and the flat
    response, plus dark current.  With ``artifacts=False`` the artefacts listed in the truth tables are left
    out (satellite trail, ghosts, dead columns, dust rings, hot pixels), giving the clean model a residual
    test compares the raw against; cosmic rays and bleed trails are never in it (they come after the noise).

    Parameters
    ----------
    camera, config, exposure, detector
        The simulation and the unit.
    truth : `TruthCatalog` or `None`
        Sources drawn (science exposures): the true sources followed by the blind insertions, if any.
    blind : `BlindInsertions`, optional
        The blind insertions at the end of ``truth`` (their fluxes vary per exposure).
    artifacts : `bool`
        Include the artefacts drawn before the noise.

    Returns
    -------
    expected : `ExpectedImage`
    """
    det = camera.detector(detector)
    kind = exposure.observation_type
    out = ExpectedImage(np.zeros((det.ny, det.nx), np.float32))
    if kind == "bias":
        return out
    ins = config.instrument
    if artifacts:
        flat = _flat(camera, config, detector, exposure.band_index)
        dark = _dark_rate(config, det)
    else:
        clean = dataclasses.replace(ins, n_bad_columns=0, n_dust_rings=0)
        flat = flat_response(
            camera, det, exposure.band_index, clean, config.psf.field_radius_deg, config.seed
        )
        dark = None if ins.dark_current <= 0.0 else np.full((det.ny, det.nx), ins.dark_current, np.float32)
    expected: np.ndarray
    if kind == "dark":
        expected = out.electrons
    elif kind == "flat":
        expected = flat * np.float32(config.calibration.flat_level_electrons)
    else:
        assert truth is not None
        scale = None
        if blind is not None and len(blind):
            scale = np.ones(len(truth))
            scale[len(truth) - len(blind) :] = blind.flux_scale(exposure)
        sources, stats = render_sources(
            camera,
            detector,
            exposure,
            truth,
            oversampling=config.psf.oversampling,
            galaxy_config=config.galaxies,
            flux_scale=scale,
        )
        out.n_stars, out.n_galaxies = stats.n_stars, stats.n_galaxies
        if artifacts:
            out.ghosts = draw_ghosts(sources, camera, detector, exposure, truth, config.optics)
        sources += exposure.sky_electrons
        trail = _trail(camera, config, det, exposure) if artifacts else None
        if trail is not None:
            sources += trail
        clouds = cloud_factor(camera, detector, exposure)
        if clouds is not None:
            sources *= clouds
        sources *= flat
        expected = sources
    if dark is not None:
        expected = expected + dark * np.float32(exposure.exposure_time)
    out.electrons = expected
    return out


def simulate_unit(
    camera: Camera,
    config: SimConfig,
    exposure: ExposurePlan,
    detector: int,
    truth: TruthCatalog | None,
    outdir: Path,
    blind: BlindInsertions | None = None,
) -> UnitResult:
    """Simulate and write the raw file of one exposure on one detector.

    ``truth`` is what is drawn: the true sources followed by the blind insertions ``blind`` (if any),
    whose fluxes vary per exposure (`BlindInsertions.flux_scale`).  The noiseless model is
    `expected_electrons`; then Poisson noise, cosmic rays, bleeding and the read-out (`to_raw_adu`).

    Returns
    -------
    result : `UnitResult`
        The written path and what was drawn.
    """
    det = camera.detector(detector)
    rng = np.random.default_rng([config.seed, exposure.exposure_id, detector])
    levels = amplifier_bias_levels(config.instrument, det, config.seed)
    levels = levels + rng.normal(0.0, config.instrument.bias_drift_adu, levels.size)
    structure = _bias_structure(config, det)
    result = UnitResult(exposure.exposure_id, detector, Path())
    kind = exposure.observation_type
    if kind == "bias":
        electrons = np.zeros((det.ny, det.nx), np.float32)
    else:
        model = expected_electrons(camera, config, exposure, detector, truth, blind)
        result.n_stars, result.n_galaxies, result.ghosts = model.n_stars, model.n_galaxies, model.ghosts
        electrons = photon_noise(model.electrons, rng)
        del model
        ins = config.instrument
        if ins.cosmic_ray_rate > 0.0 and exposure.exposure_time > 0.0:
            result.n_cosmic_rays = add_cosmic_rays(
                electrons,
                rate_per_cm2_s=ins.cosmic_ray_rate,
                exposure_time=exposure.exposure_time,
                pixel_size_mm=camera.pixel_size_mm,
                thickness_um=ins.sensor_thickness_um,
                rng=rng,
                records=result.cosmic_rays,
            )
        full_well = full_well_electrons(det, levels)
        for amp, fw in zip(det.amplifiers, full_well):
            ys, xs = amp.assembled_slice()
            view = electrons[ys, xs]
            result.n_saturated += int((view > fw).sum())
            if ins.bleed_trails:
                trails: list[tuple[int, int, int]] = []
                bleed_columns(view, float(fw), trails)
                result.bleed_trails += [(x + amp.assembled_x0, y0, y1) for x, y0, y1 in trails]
    raw = to_raw_adu(electrons, det, bias_levels=levels, structure=structure, rng=rng)
    header = RawHeader(
        instrument=camera.name,
        exposure_id=exposure.exposure_id,
        obs_id=f"{camera.name}{exposure.exposure_id:08d}",
        detector=detector,
        physical_filter=exposure.physical_filter,
        exposure_time=exposure.exposure_time,
        date_obs=Time(exposure.date_obs, format="isot", scale="utc"),
        observation_type=exposure.observation_type,
        boresight_ra=exposure.header_pointing.ra,
        boresight_dec=exposure.header_pointing.dec,
        boresight_rotation=exposure.header_pointing.rotation,
        target_name="SIMFIELD"
        if exposure.observation_type == "science"
        else exposure.observation_type.upper(),
    )
    sub = "science" if kind == "science" else "calib"
    result.path = write_raw(
        outdir / "raw" / sub / raw_filename(camera, exposure.exposure_id, detector), raw, header, camera
    )
    return result


def _run_unit(task: tuple[int, int]) -> UnitResult:
    index, detector = task
    return simulate_unit(
        _STATE["camera"],
        _STATE["config"],
        _STATE["exposures"][index],
        detector,
        _STATE["truth"],
        _STATE["outdir"],
        _STATE.get("blind"),
    )


def _pool_context() -> Any:
    """The multiprocessing context: fork where available.

    Fork needs no re-import of the caller's ``__main__`` (spawn and forkserver re-run scripts that lack an
    ``if __name__ == "__main__"`` guard and fail from stdin).  The parent has not used GalSim's or
    BLAS's threads when the pool forks, and the children use no lock held by the parent.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _iter_results(
    tasks: list[tuple[int, int]], state: dict[str, Any], processes: int
) -> Iterator[UnitResult]:
    if processes <= 1 or len(tasks) <= 1:
        _init_worker(state)
        try:
            for task in tasks:
                yield _run_unit(task)
        finally:
            _STATE.clear()
            _FLAT_CACHE.clear()
            _STATIC_CACHE.clear()
        return
    with warnings.catch_warnings():
        # Python 3.12 warns about fork() in a process with threads (tqdm's monitor, BLAS pools)
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        pool = _pool_context().Pool(processes, initializer=_init_worker, initargs=(state,))
    with pool:
        yield from pool.imap_unordered(_run_unit, tasks, chunksize=1)


# ---------------------------------------------------------------------- driver


def simulate(
    config: SimConfig, outdir: str | Path, *, processes: int | None = None, progress: bool = True
) -> SimResult:
    """Simulate a survey and write its raws, truth and reference catalogues.

    Parameters
    ----------
    config : `SimConfig`
        The configuration (validated here).
    outdir : `str` or `pathlib.Path`
        Output directory (created).  Raw files (``raw/science/*.fits``, ``raw/calib/*.fits``) of an earlier
        simulation there are removed; the other outputs are overwritten.
    processes : `int`, optional
        Worker processes; default ``os.cpu_count()``.  The output does not depend on it.
    progress : `bool`
        Show a tqdm progress bar (CCD read-outs done, rate, ETA).

    Returns
    -------
    result : `SimResult`

    Raises
    ------
    ConfigurationError
        If the configuration is invalid (the message names the field).
    """
    t0 = time.perf_counter()
    config.validate()
    camera = build_camera(config)
    outdir = Path(outdir)
    for sub in ("raw/science", "raw/calib", "truth", "refcat"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)
    # raws of an earlier simulation in the same directory would be ingested with the new ones
    for sub in ("raw/science", "raw/calib"):
        for stale in (outdir / sub).glob("*.fits"):
            stale.unlink()
    camera_path = outdir / "camera.yaml"
    camera.to_yaml(camera_path)
    config_path = outdir / "sim_config.yaml"
    config.to_yaml(config_path)

    exposures = plan_exposures(config, camera)
    footprint = sky_footprint(config, camera, exposures)
    truth = make_truth_catalog(config, footprint, np.random.default_rng([config.seed, 2]))
    bands = list(config.bands)
    truth_path = outdir / "truth" / "truth.parquet"
    _write_parquet(truth.to_dataframe(bands), truth_path)
    refcat = make_refcat(truth, config.refcat, bands, np.random.default_rng([config.seed, 3]))
    refcat_path = outdir / "refcat" / "refcat.parquet"
    _write_parquet(refcat, refcat_path)
    if config.refcat.shards:
        level = config.refcat.htm_level
        write_shards(
            make_gaia_refcat(truth, config.refcat, np.random.default_rng([config.seed, 7])),
            outdir / "refcat" / "gaia",
            level,
        )
        write_shards(
            make_ps1_refcat(truth, config.refcat, np.random.default_rng([config.seed, 8])),
            outdir / "refcat" / "ps1",
            level,
        )
    blind = make_blind_insertions(config, footprint, exposures, np.random.default_rng([config.seed, 5]))
    sealed = outdir / "truth" / "sealed"
    sealed.mkdir(parents=True, exist_ok=True)
    _write_parquet(blind.to_dataframe(bands, exposures), sealed / "blind.parquet")
    drawn = truth.concat(blind.catalog) if len(blind) else truth
    visits_path = outdir / "truth" / "visits.parquet"
    _write_parquet(visits_table(exposures), visits_path)
    exposures_path = outdir / "truth" / "exposures.parquet"
    _write_parquet(_exposures_table(exposures), exposures_path)

    # biggest units first (science); consecutive units share (band, detector), so that each worker
    # reuses its cached flat response
    def unit_key(task: tuple[int, int]) -> tuple:
        e = exposures[task[0]]
        return (e.observation_type != "science", e.observation_type, e.band_index, task[1], e.exposure_id)

    tasks = sorted(((i, det) for i in range(len(exposures)) for det in camera.detectors), key=unit_key)
    state = {
        "camera": camera,
        "config": config,
        "exposures": exposures,
        "truth": drawn,
        "outdir": outdir,
        "blind": blind if len(blind) else None,
    }
    n_proc = max(1, min(processes or os.cpu_count() or 1, len(tasks)))
    results: list[UnitResult] = []
    with tqdm(total=len(tasks), unit="ccd", desc="simulate", disable=not progress, smoothing=0.1) as bar:
        for res in _iter_results(tasks, state, n_proc):
            results.append(res)
            bar.update(1)
    by_type = {e.exposure_id: e.observation_type for e in exposures}
    results.sort(key=lambda r: (r.exposure_id, r.detector))
    for name, table in artifact_tables(config, camera, exposures, results).items():
        _write_parquet(table, outdir / "truth" / f"{name}.parquet")
    return SimResult(
        outdir=outdir,
        camera_path=camera_path,
        config_path=config_path,
        truth_path=truth_path,
        visits_path=visits_path,
        exposures_path=exposures_path,
        refcat_path=refcat_path,
        science_raws=[r.path for r in results if by_type[r.exposure_id] == "science"],
        calib_raws=[r.path for r in results if by_type[r.exposure_id] != "science"],
        n_stars=int(truth.is_star.sum()),
        n_galaxies=int((~truth.is_star).sum()),
        n_refcat=len(refcat),
        elapsed_s=time.perf_counter() - t0,
        n_cosmic_rays=sum(r.n_cosmic_rays for r in results),
        n_saturated_pixels=sum(r.n_saturated for r in results),
    )


def _exposures_table(exposures: list[ExposurePlan]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "exposure_id": e.exposure_id,
                "observation_type": e.observation_type,
                "band": e.band,
                "physical_filter": e.physical_filter,
                "exposure_time": e.exposure_time,
                "date_obs": e.date_obs,
                "mjd": e.mjd,
            }
            for e in exposures
        ]
    )


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
