"""The observing plan: calibration exposures, then dithered science visits band by band.

Exposure ids step by 2 from ``survey.first_exposure_id`` in time order (biases, dome flats per band,
then science visits); calibrations are taken six hours before the first science visit.  Per-visit
conditions (seeing, PSF ellipticity, sky brightness, transparency, dither, pointing error) come from one
generator seeded by ``(seed, 1)``, so they do not depend on anything else.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from astropy.time import Time, TimeDelta

from ..astrometry.tangent import sky_to_tangent, tangent_to_sky
from ..instrument import Camera
from ..instrument.geometry import Pointing, detector_corners_sky
from .catalog import SkyFootprint
from .config import SimConfig
from .psf import VisitPsf

__all__ = ["ExposurePlan", "plan_exposures", "sky_footprint", "visits_table"]

CALIB_LEAD_HOURS = 6.0


@dataclasses.dataclass(frozen=True)
class ExposurePlan:
    """Everything needed to simulate one exposure (all detectors).

    Attributes
    ----------
    exposure_id : `int`
    observation_type : `str`
        ``science``, ``bias`` or ``flat``.
    band : `str`
        Band (for biases: the band of the filter left in the beam).
    band_index : `int`
        Index of ``band`` in the configuration's bands.
    physical_filter : `str`
    exposure_time : `float`
        Seconds.
    date_obs : `str`
        UTC start, ISO format.
    mjd : `float`
    pointing : `Pointing`
        True boresight.
    header_pointing : `Pointing`
        Boresight written in the header (true + pointing error).
    visit_index : `int`
        Index of the visit within its band (science), of the exposure within its kind (calibrations).
    seeing_fwhm_arcsec, sky_mag, sky_electrons, zero_point, zero_point_nominal, transparency_mag : `float`
        Science only (zero for calibrations): seeing at the optical axis (arcsec), sky brightness
        (mag/arcsec^2), sky level (electrons/pixel before the flat response), effective zero point (AB mag
        for 1 e-/s, after cloud extinction), nominal zero point, extinction by clouds (mag).
    psf : `VisitPsf` or `None`
        Science only.
    trail : `tuple` [`float`, `float`, `float`] or `None`
        Satellite trail of a science visit: a point on it (ra, dec, deg) and its position angle (deg).
    cloud_gradient : `tuple` [`float`, `float`]
        Extra extinction gradient across the field (mag/deg along the focal-plane x and y axes; zero at the
        optical axis), from thin clouds.
    """

    exposure_id: int
    observation_type: str
    band: str
    band_index: int
    physical_filter: str
    exposure_time: float
    date_obs: str
    mjd: float
    pointing: Pointing
    header_pointing: Pointing
    visit_index: int = 0
    seeing_fwhm_arcsec: float = 0.0
    sky_mag: float = 0.0
    sky_electrons: float = 0.0
    zero_point: float = 0.0
    zero_point_nominal: float = 0.0
    transparency_mag: float = 0.0
    psf: VisitPsf | None = None
    trail: tuple[float, float, float] | None = None
    cloud_gradient: tuple[float, float] = (0.0, 0.0)


def _dither_offsets(config: SimConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    s = config.survey
    if s.dither_pattern == "list":
        offs = np.array(s.dither_offsets_arcsec, float)
        return offs[np.arange(n) % len(offs)]
    r = s.dither_radius_arcsec * np.sqrt(rng.random(n))
    t = rng.uniform(0.0, 2.0 * np.pi, n)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


def plan_exposures(config: SimConfig, camera: Camera) -> list[ExposurePlan]:
    """The exposures of a simulation, in time order (calibrations first).

    Parameters
    ----------
    config : `SimConfig`
        A validated configuration.
    camera : `Camera`
        The simulated camera (filters, pixel scale, plate scale).

    Returns
    -------
    exposures : `list` [`ExposurePlan`]
    """
    s, o, p = config.survey, config.conditions, config.psf
    rng = np.random.default_rng([config.seed, 1])
    bands = list(config.bands)
    filters = {b: camera.filter_for_band(b).physical_filter for b in bands}
    centre = Pointing(s.ra, s.dec, s.rotation_deg)
    field_radius_mm = p.field_radius_deg * 3600.0 / camera.plate_scale_arcsec_per_mm
    pixel_area = camera.pixel_scale_arcsec**2
    start = Time(s.start_date, format="isot", scale="utc")
    exposures: list[ExposurePlan] = []
    next_id = s.first_exposure_id

    def add(t: Time, **kwargs: object) -> None:
        nonlocal next_id
        exposures.append(
            ExposurePlan(exposure_id=next_id, date_obs=t.isot, mjd=float(t.mjd), **kwargs)  # type: ignore[arg-type]
        )
        next_id += 2

    # calibrations, six hours before the night
    t = start - TimeDelta(CALIB_LEAD_HOURS * 3600.0, format="sec")
    for k in range(config.calibration.n_bias):
        add(
            t,
            observation_type="bias",
            band=bands[0],
            band_index=0,
            physical_filter=filters[bands[0]],
            exposure_time=0.0,
            pointing=centre,
            header_pointing=centre,
            visit_index=k,
        )
        t = t + TimeDelta(s.overhead_s, format="sec")
    for k in range(config.calibration.n_dark):
        add(
            t,
            observation_type="dark",
            band=bands[0],
            band_index=0,
            physical_filter=filters[bands[0]],
            exposure_time=config.calibration.dark_exposure_time,
            pointing=centre,
            header_pointing=centre,
            visit_index=k,
        )
        t = t + TimeDelta(config.calibration.dark_exposure_time + s.overhead_s, format="sec")
    for bi, band in enumerate(bands):
        for k in range(config.calibration.n_flat):
            add(
                t,
                observation_type="flat",
                band=band,
                band_index=bi,
                physical_filter=filters[band],
                exposure_time=config.calibration.flat_exposure_time,
                pointing=centre,
                header_pointing=centre,
                visit_index=k,
            )
            t = t + TimeDelta(config.calibration.flat_exposure_time + s.overhead_s, format="sec")
    # science visits; satellite trails from their own generator (other draws do not depend on them)
    trail_rng = np.random.default_rng([config.seed, 4])
    cloud_rng = np.random.default_rng([config.seed, 6])
    t = start
    for bi, band in enumerate(bands):
        bconf = config.bands[band]
        n = bconf.n_visits
        offsets = _dither_offsets(config, rng, n)
        for k in range(n):
            ra, dec = tangent_to_sky(offsets[k, 0] / 3600.0, offsets[k, 1] / 3600.0, s.ra, s.dec)
            rot = (
                s.rotation_deg + rng.normal(0.0, s.rotation_jitter_deg)
                if s.rotation_jitter_deg
                else s.rotation_deg
            )
            true = Pointing(float(ra), float(dec), float(rot))
            err = rng.normal(0.0, s.pointing_error_arcsec, 2) / 3600.0
            hra, hdec = tangent_to_sky(err[0], err[1], true.ra, true.dec)
            header = Pointing(float(hra), float(hdec), true.rotation)
            if o.seeing_values_arcsec:
                seeing = o.seeing_values_arcsec[
                    len([e for e in exposures if e.observation_type == "science"])
                    % len(o.seeing_values_arcsec)
                ]
            else:
                seeing = o.seeing_fwhm_arcsec * np.exp(rng.normal(0.0, o.seeing_scatter))
            seeing = float(np.clip(seeing, o.seeing_min_arcsec, o.seeing_max_arcsec))
            e1, e2 = rng.normal(0.0, p.ellipticity_visit_sigma, 2)
            sky_mag = bconf.sky_brightness + rng.normal(0.0, o.sky_jitter_mag)
            transparency = abs(rng.normal(0.0, o.transparency_sigma_mag))
            zp = bconf.zero_point - transparency
            sky_e = 10.0 ** (-0.4 * (sky_mag - zp)) * pixel_area * bconf.exposure_time
            trail = None
            if trail_rng.random() < o.satellite_trail_probability:
                tx, ty = trail_rng.uniform(-0.25, 0.25, 2)
                tra, tdec = tangent_to_sky(tx, ty, true.ra, true.dec)
                trail = (float(tra), float(tdec), float(trail_rng.uniform(0.0, 180.0)))
            cloud = cloud_rng.normal(0.0, o.cloud_gradient_mag_per_deg, 2)
            psf = VisitPsf(
                fwhm_arcsec=seeing,
                beta=p.beta,
                e1=float(e1),
                e2=float(e2),
                fwhm_radial_variation=p.fwhm_radial_variation,
                ellipticity_radial=p.ellipticity_radial,
                field_radius_mm=field_radius_mm,
            )
            add(
                t,
                observation_type="science",
                band=band,
                band_index=bi,
                physical_filter=filters[band],
                exposure_time=bconf.exposure_time,
                pointing=true,
                header_pointing=header,
                visit_index=k,
                seeing_fwhm_arcsec=seeing,
                sky_mag=float(sky_mag),
                sky_electrons=float(sky_e),
                zero_point=float(zp),
                zero_point_nominal=bconf.zero_point,
                transparency_mag=float(transparency),
                psf=psf,
                trail=trail,
                cloud_gradient=(float(cloud[0]), float(cloud[1])),
            )
            t = t + TimeDelta(bconf.exposure_time + s.overhead_s, format="sec")
    return exposures


def sky_footprint(
    config: SimConfig, camera: Camera, exposures: list[ExposurePlan], *, margin_arcsec: float = 30.0
) -> SkyFootprint:
    """Tangent-plane rectangle about the field centre covering every science CCD, plus a margin."""
    xi_all, eta_all = [], []
    for exp in exposures:
        if exp.observation_type != "science":
            continue
        for det in camera.detectors:
            ra, dec = detector_corners_sky(camera, det, exp.pointing)
            xi, eta = sky_to_tangent(ra, dec, config.survey.ra, config.survey.dec)
            xi_all.append(xi)
            eta_all.append(eta)
    m = margin_arcsec / 3600.0
    if not xi_all:
        return SkyFootprint(config.survey.ra, config.survey.dec, -m, m, -m, m)
    xi_c, eta_c = np.concatenate(xi_all), np.concatenate(eta_all)
    return SkyFootprint(
        config.survey.ra,
        config.survey.dec,
        float(xi_c.min() - m),
        float(xi_c.max() + m),
        float(eta_c.min() - m),
        float(eta_c.max() + m),
    )


def visits_table(exposures: list[ExposurePlan]) -> pd.DataFrame:
    """The ``visits.parquet`` table: one row per science exposure."""
    rows = []
    for e in exposures:
        if e.observation_type != "science":
            continue
        assert e.psf is not None
        rows.append(
            {
                "exposure_id": e.exposure_id,
                "band": e.band,
                "physical_filter": e.physical_filter,
                "visit_index": e.visit_index,
                "date_obs": e.date_obs,
                "mjd": e.mjd,
                "exposure_time": e.exposure_time,
                "ra": e.pointing.ra,
                "dec": e.pointing.dec,
                "rotation": e.pointing.rotation,
                "header_ra": e.header_pointing.ra,
                "header_dec": e.header_pointing.dec,
                "header_rotation": e.header_pointing.rotation,
                "seeing_fwhm_arcsec": e.seeing_fwhm_arcsec,
                "psf_beta": e.psf.beta,
                "psf_e1": e.psf.e1,
                "psf_e2": e.psf.e2,
                "sky_mag": e.sky_mag,
                "sky_level": e.sky_electrons,
                "zero_point": e.zero_point,
                "zero_point_nominal": e.zero_point_nominal,
                "transparency_mag": e.transparency_mag,
                "trail_ra": e.trail[0] if e.trail else np.nan,
                "trail_dec": e.trail[1] if e.trail else np.nan,
                "trail_pa": e.trail[2] if e.trail else np.nan,
                "cloud_gradient_x": e.cloud_gradient[0],
                "cloud_gradient_y": e.cloud_gradient[1],
            }
        )
    return pd.DataFrame(rows)
