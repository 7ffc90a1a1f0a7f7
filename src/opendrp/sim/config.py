"""Configuration of the survey simulator: dataclasses, YAML (de)serialization, validation, presets.

A `SimConfig` holds every parameter of a simulation.  It is written as YAML (one mapping per section) and
every field has a default and a doc string (``metadata["doc"]``), which `SimConfig.to_yaml` writes as a
comment.  Presets are complete, commented YAML files in ``opendrp/sim/presets/``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigurationError

__all__ = [
    "BandConfig",
    "BlindConfig",
    "CalibrationConfig",
    "CameraConfig",
    "ConditionsConfig",
    "GalaxyConfig",
    "InstrumentConfig",
    "OpticsConfig",
    "PsfConfig",
    "RefcatConfig",
    "SimConfig",
    "StarConfig",
    "SurveyConfig",
    "load_sim_config",
    "preset_names",
    "preset_yaml",
]

#: Bands whose stellar and galaxy colours the simulator knows.
KNOWN_BANDS = ("g", "r", "i", "z", "y")


def _field(default: Any, doc: str) -> Any:
    """A dataclass field with a default (copied if mutable) and a doc string."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class CameraConfig:
    """Which camera, which detectors and what CCD size to simulate."""

    name: str = _field("hsc", "built-in camera name or path to a camera YAML")
    detectors: list[int] | None = _field(None, "explicit detector ids; null: the first n_detectors")
    n_detectors: int | None = _field(4, "number of detectors (the first N of the camera); null: all")
    nx: int | None = _field(
        None, "CCD width override (pixels, multiple of the amplifier count); null: camera's"
    )
    ny: int | None = _field(None, "CCD height override (pixels); null: camera's")


@dataclasses.dataclass
class BandConfig:
    """Photometric parameters and number of visits of one band."""

    zero_point: float = _field(28.5, "AB magnitude giving 1 electron/s (mag)")
    sky_brightness: float = _field(21.0, "dark-sky surface brightness (mag/arcsec^2)")
    exposure_time: float = _field(200.0, "science exposure time (s)")
    n_visits: int = _field(3, "number of science visits in this band")


#: Default photometric parameters of the five bands (HSC-like, electrons).
DEFAULT_BANDS: dict[str, dict[str, float]] = {
    "g": {"zero_point": 28.9, "sky_brightness": 22.0},
    "r": {"zero_point": 28.9, "sky_brightness": 21.1},
    "i": {"zero_point": 28.6, "sky_brightness": 20.3},
    "z": {"zero_point": 27.9, "sky_brightness": 19.4},
    "y": {"zero_point": 27.2, "sky_brightness": 18.6},
}


@dataclasses.dataclass
class SurveyConfig:
    """Where and when the visits are taken."""

    ra: float = _field(150.1, "field centre right ascension (deg)")
    dec: float = _field(2.2, "field centre declination (deg)")
    rotation_deg: float = _field(0.0, "position angle of the focal-plane +y axis, east of north (deg)")
    rotation_jitter_deg: float = _field(0.0, "rms random change of the rotation per visit (deg)")
    dither_pattern: str = _field("random", "'random' (uniform in a disc) or 'list' (dither_offsets_arcsec)")
    dither_radius_arcsec: float = _field(120.0, "radius of the random dither disc (arcsec)")
    dither_offsets_arcsec: list[list[float]] = _field(
        [], "[[east, north], ...] offsets (arcsec) of the visits of each band, cycled; for pattern 'list'"
    )
    pointing_error_arcsec: float = _field(
        2.0, "rms per axis of the error of the header boresight relative to the true one (arcsec)"
    )
    start_date: str = _field("2025-03-11T08:00:00", "UTC start of the first science visit (ISO)")
    overhead_s: float = _field(30.0, "time between the end of an exposure and the next start (s)")
    first_exposure_id: int = _field(1000, "exposure id of the first (calibration) exposure; ids step by 2")


@dataclasses.dataclass
class ConditionsConfig:
    """Observing conditions drawn per visit."""

    seeing_fwhm_arcsec: float = _field(0.7, "median seeing FWHM at the field centre (arcsec)")
    seeing_scatter: float = _field(0.12, "log-normal scatter of the seeing between visits (natural log)")
    seeing_min_arcsec: float = _field(0.45, "lower clip of the seeing (arcsec)")
    seeing_max_arcsec: float = _field(1.3, "upper clip of the seeing (arcsec)")
    seeing_values_arcsec: list[float] = _field([], "explicit per-visit seeing (arcsec), cycled; [] to draw")
    sky_jitter_mag: float = _field(0.1, "rms visit-to-visit change of the sky brightness (mag)")
    transparency_sigma_mag: float = _field(
        0.02, "scale of the extinction by clouds per visit, |N(0, sigma)| (mag); lowers the zero point"
    )
    satellite_trail_probability: float = _field(0.0, "probability that a science visit has a satellite trail")
    satellite_trail_mag: float = _field(
        21.0, "brightness of a trail: each arcsec of it holds the flux of a star of this magnitude"
    )
    cloud_gradient_mag_per_deg: float = _field(
        0.0, "rms per axis of a per-visit linear extinction gradient across the field (mag/deg; thin clouds)"
    )


@dataclasses.dataclass
class PsfConfig:
    """The PSF: a sheared Moffat whose width and ellipticity vary over the focal plane."""

    beta: float = _field(3.5, "Moffat beta")
    fwhm_radial_variation: float = _field(
        0.1, "fractional FWHM increase at field_radius_deg, growing as radius^2"
    )
    ellipticity_visit_sigma: float = _field(0.02, "rms per component of the visit-wide PSF ellipticity")
    ellipticity_radial: float = _field(0.03, "tangential PSF ellipticity at field_radius_deg (~ radius^2)")
    field_radius_deg: float = _field(0.75, "radius of the field of view (deg), scale of the variations")
    oversampling: int = _field(3, "sub-pixels per axis used to integrate star profiles over pixels")


@dataclasses.dataclass
class StarConfig:
    """Stars: number counts and a stellar locus in g, r, i, z, y."""

    density_per_deg2: float = _field(16000.0, "stars per deg^2 between mag_min and mag_max")
    mag_min: float = _field(16.0, "brightest star (reference-band AB mag)")
    mag_max: float = _field(24.0, "faintest star (reference-band AB mag)")
    count_slope: float = _field(0.12, "slope of the counts, d log10 N / dm")
    reference_band: str = _field("r", "band in which mag_min/mag_max apply")
    red_fraction: float = _field(0.35, "fraction of red (M-dwarf-like, g-r 1.0-1.5) stars")
    bright_density_per_deg2: float = _field(
        0.0, "extra bright stars per deg^2 between bright_mag_min and mag_min (saturated, bleeding, ghosts)"
    )
    bright_mag_min: float = _field(11.0, "brightest of the extra bright stars (reference-band AB mag)")


@dataclasses.dataclass
class GalaxyConfig:
    """Galaxies: counts, sizes, shapes and colours."""

    density_per_deg2: float = _field(100000.0, "galaxies per deg^2 between mag_min and mag_max")
    mag_min: float = _field(18.0, "brightest galaxy (reference-band AB mag)")
    mag_max: float = _field(25.5, "faintest galaxy (reference-band AB mag)")
    count_slope: float = _field(0.33, "slope of the counts, d log10 N / dm")
    reference_band: str = _field("r", "band in which mag_min/mag_max apply")
    model: str = _field(
        "bulge_disk", "'bulge_disk' (exponential disk + de Vaucouleurs bulge) or 'exponential'"
    )
    hlr_arcsec_at_mag22: float = _field(0.6, "median disk half-light radius at mag 22 (arcsec)")
    hlr_mag_slope: float = _field(0.1, "d log10(hlr) / d mag (hlr shrinks for fainter galaxies)")
    hlr_scatter_dex: float = _field(0.2, "log-normal scatter of the half-light radius (dex)")
    hlr_min_arcsec: float = _field(0.05, "lower clip of the half-light radius (arcsec)")
    hlr_max_arcsec: float = _field(3.0, "upper clip of the half-light radius (arcsec)")
    bulge_size_ratio: float = _field(0.5, "bulge half-light radius / disk half-light radius")
    bulge_mag_max: float = _field(
        24.0, "galaxies fainter than this (reference band) are pure disks (saves drawing time)"
    )
    red_fraction: float = _field(0.25, "fraction of red, bulge-dominated galaxies")
    ellipticity_sigma: float = _field(0.25, "rms per component of the intrinsic ellipticity (distortion)")
    ellipticity_max: float = _field(0.8, "upper clip of the ellipticity modulus")
    max_stamp_pixels: int = _field(161, "largest galaxy stamp side (pixels)")


@dataclasses.dataclass
class InstrumentConfig:
    """Detector effects beyond what the camera YAML describes."""

    bias_level_adu: float | list[float] = _field(1000.0, "bias level (ADU): one value, or one per amplifier")
    bias_amp_scatter_adu: float = _field(
        20.0, "rms of fixed per-amplifier offsets added to bias_level_adu (ADU)"
    )
    bias_drift_adu: float = _field(
        2.0, "rms per exposure and amplifier of the bias level drift, seen by the overscan (ADU)"
    )
    bias_structure_adu: float = _field(
        2.0, "amplitude of the fixed 2-d bias pattern of the data pixels, removed by a master bias (ADU)"
    )
    vignetting: float = _field(0.1, "fractional loss of illumination at psf.field_radius_deg (~ radius^2)")
    pixel_response_sigma: float = _field(0.01, "rms of the fixed pixel-to-pixel response (fraction)")
    flat_band_gradient: float = _field(
        0.01, "amplitude of a per-detector, per-band linear response gradient across the CCD (fraction)"
    )
    bleed_trails: bool = _field(True, "spread the charge above full well along the columns (bleed trails)")
    dark_current: float = _field(0.0, "uniform dark current (electrons/s/pixel)")
    hot_pixel_fraction: float = _field(0.0, "fraction of hot pixels (fixed per detector)")
    hot_pixel_rate: float = _field(20.0, "typical dark current of a hot pixel (electrons/s; x0.3-3)")
    n_bad_columns: int = _field(0, "dead column segments per detector (2-10% response, in flats too)")
    cosmic_ray_rate: float = _field(
        0.0, "cosmic rays per cm^2 per s (~0.02 at a high site); tracks cross sensor_thickness_um"
    )
    sensor_thickness_um: float = _field(200.0, "depleted sensor thickness (microns), sets track lengths")
    n_dust_rings: int = _field(0, "dust-grain shadows (rings) in the flat response per detector")
    dust_ring_depth: float = _field(0.03, "maximum fractional response loss of a dust ring")


@dataclasses.dataclass
class OpticsConfig:
    """Optical ghosts of bright stars (out-of-focus reflections)."""

    ghost_mag_max: float = _field(
        0.0, "stars brighter than this (each band's AB mag) make a ghost; 0: no ghosts"
    )
    ghost_flux_fraction: float = _field(2e-3, "ghost flux / star flux")
    ghost_radius_arcsec: float = _field(25.0, "outer radius of the ghost's doughnut (arcsec)")
    ghost_inner_fraction: float = _field(0.4, "inner radius / outer radius (central obscuration)")
    ghost_radial_shift: float = _field(
        0.05, "ghost centre = star focal-plane position x (1 + shift): radial offset from the star"
    )


@dataclasses.dataclass
class BlindConfig:
    """Blind insertions ("easter eggs"): sources written only to the sealed truth file."""

    density_per_deg2: float = _field(0.0, "inserted sources per deg^2 (0: none)")
    mag_min: float = _field(18.0, "brightest insertion (r-band AB mag)")
    mag_max: float = _field(24.0, "faintest insertion (r-band AB mag)")
    variable_fraction: float = _field(0.3, "fraction of variable point sources (sinusoidal light curves)")
    transient_fraction: float = _field(0.2, "fraction of transients (present in one visit only)")
    amplitude_mag: float = _field(0.5, "largest variability amplitude (mag)")


@dataclasses.dataclass
class CalibrationConfig:
    """Calibration exposures taken before the science visits."""

    n_bias: int = _field(5, "number of bias exposures")
    n_flat: int = _field(5, "number of dome flats per band")
    flat_level_electrons: float = _field(20000.0, "dome flat illumination (electrons/pixel)")
    flat_exposure_time: float = _field(10.0, "dome flat exposure time (s)")
    n_dark: int = _field(0, "number of dark exposures (taken after the biases)")
    dark_exposure_time: float = _field(200.0, "dark exposure time (s)")


@dataclasses.dataclass
class RefcatConfig:
    """A Gaia/PS1-like reference catalogue of stars."""

    reference_band: str = _field("r", "band in which mag_min/mag_max apply")
    mag_min: float = _field(17.0, "brightest reference star (mag)")
    mag_max: float = _field(22.0, "faintest reference star (mag)")
    astrometric_error_mas: float = _field(2.0, "position error at mag_max (mas); scales as flux^-1/2")
    astrometric_floor_mas: float = _field(0.2, "position error floor (mas), added in quadrature")
    phot_depth_mag: float = _field(23.5, "5-sigma depth of the reference photometry (mag)")
    phot_error_floor_mag: float = _field(0.01, "photometric error floor (mag), added in quadrature")
    shards: bool = _field(True, "also write Gaia-like and PS1-like catalogues sharded on HTM cells")
    htm_level: int = _field(7, "HTM level of the shards (7: cells of ~0.5 deg)")
    gaia_mag_max: float = _field(21.0, "faintest star of the Gaia-like catalogue (G, AB mag)")
    gaia_error_mas_at_20: float = _field(0.5, "Gaia-like position error at G = 20 (mas), ~ flux^-1/2")
    ps1_mag_min: float = _field(14.5, "brightest star of the PS1-like catalogue (r; brighter saturate)")
    ps1_mag_max: float = _field(23.0, "faintest star of the PS1-like catalogue (r)")
    ps1_astrometric_error_mas: float = _field(15.0, "PS1-like position error floor (mas)")
    ps1_depth_mag: float = _field(23.3, "5-sigma depth of the PS1-like photometry (mag)")


@dataclasses.dataclass
class SimConfig:
    """Every parameter of a simulated survey.

    Use `load_sim_config` to read one from YAML; `validate` checks it and raises
    `opendrp.errors.ConfigurationError` naming the offending field.
    """

    seed: int = _field(1, "random seed: the same seed gives identical outputs")
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    bands: dict[str, BandConfig] = dataclasses.field(
        default_factory=lambda: {b: _default_band(b) for b in ("g", "r")}
    )
    survey: SurveyConfig = dataclasses.field(default_factory=SurveyConfig)
    conditions: ConditionsConfig = dataclasses.field(default_factory=ConditionsConfig)
    psf: PsfConfig = dataclasses.field(default_factory=PsfConfig)
    stars: StarConfig = dataclasses.field(default_factory=StarConfig)
    galaxies: GalaxyConfig = dataclasses.field(default_factory=GalaxyConfig)
    instrument: InstrumentConfig = dataclasses.field(default_factory=InstrumentConfig)
    calibration: CalibrationConfig = dataclasses.field(default_factory=CalibrationConfig)
    refcat: RefcatConfig = dataclasses.field(default_factory=RefcatConfig)
    optics: OpticsConfig = dataclasses.field(default_factory=OpticsConfig)
    blind: BlindConfig = dataclasses.field(default_factory=BlindConfig)
    skymap: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "name": "sim_rings",
            "patch_inner_pixels": 2000,
            "patch_border_pixels": 100,
            "pixel_scale_arcsec": 0.168,
            "num_rings": 120,
        }
    )

    # ------------------------------------------------------------------ validation
    def validate(self) -> SimConfig:
        """Check every field; raise `ConfigurationError` naming the first offending one.

        Returns
        -------
        config : `SimConfig`
            ``self``, for chaining.
        """
        _validate(self)
        return self

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain Python types (YAML-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "sim config") -> SimConfig:
        """Build (without validating) a configuration; missing fields take their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("the configuration must be a YAML mapping", where=where)
        data = dict(data)
        bands_raw = data.pop("bands", None)
        config = _from_dict(cls, data, "", where)
        if bands_raw is not None:
            config.bands = _bands_from(bands_raw, where)
        return config

    def to_yaml(self, path: str | Path | None = None, *, comments: bool = True) -> str:
        """YAML text of the complete configuration (with field docs as comments), optionally written."""
        lines: list[str] = []
        _emit(self, lines, 0, comments)
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text


def _default_band(band: str) -> BandConfig:
    return BandConfig(**DEFAULT_BANDS.get(band, {}))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- dict -> dataclass


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{prefix.rstrip('.') or 'config'} must be a mapping", where=where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = str(unknown[0])
        close = difflib.get_close_matches(key, list(fields), n=1)
        raise ConfigurationError(
            f"unknown field {prefix}{key}",
            where=where,
            fix=f"did you mean {prefix}{close[0]}?" if close else f"known fields: {', '.join(fields)}",
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(typing.cast(type, tp), value or {}, f"{prefix}{name}.", where)
        elif name == "skymap":
            if not isinstance(value, Mapping):
                raise ConfigurationError("skymap must be a mapping", where=f"{where}: field skymap")
            kwargs[name] = dict(value)
        else:
            kwargs[name] = _coerce(value, tp, f"{prefix}{name}", where)
    return cls(**kwargs)


def _bands_from(raw: Any, where: str) -> dict[str, BandConfig]:
    if isinstance(raw, list | tuple):
        raw = {str(b): {} for b in raw}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            "bands must be a mapping band -> parameters (or a list of band names)",
            where=f"{where}: field bands",
        )
    bands = {}
    for band, params in raw.items():
        base = dataclasses.asdict(_default_band(str(band)))
        override = _from_dict(BandConfig, params or {}, f"bands.{band}.", where)
        given = set((params or {}).keys())
        base.update({k: v for k, v in dataclasses.asdict(override).items() if k in given})
        bands[str(band)] = BandConfig(**base)
    return bands


def _coerce(value: Any, tp: Any, name: str, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise naming the field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, name, where)
            except ConfigurationError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigurationError(f"{name} must be a list, got {value!r}", where=where)
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{name}[{i}]", where) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"{name} must be a number, got {value!r}", where=where)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigurationError(f"{name} must be an integer, got {value!r}", where=where)
        return int(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigurationError(f"{name} must be a string, got {value!r}", where=where)
        return str(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigurationError(f"{name} must be true or false, got {value!r}", where=where)
        return value
    return value


# ---------------------------------------------------------------------- YAML writer


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text.removesuffix("...").strip()


def _emit(obj: Any, lines: list[str], indent: int, comments: bool) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        doc = f.metadata.get("doc", "")
        if dataclasses.is_dataclass(value):
            cls_doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines.append(f"{pad}{f.name}:" + (f"  # {cls_doc}" if comments and cls_doc else ""))
            _emit(value, lines, indent + 1, comments)
        elif f.name == "bands":
            lines.append(f"{pad}bands:" + ("  # band -> photometry and number of visits" if comments else ""))
            for band, bconf in value.items():
                lines.append(f"{pad}  {_scalar(band)}:")
                _emit(bconf, lines, indent + 2, comments)
        elif f.name == "skymap":
            lines.append(
                f"{pad}skymap:"
                + (
                    "  # passed through to the pipeline's sky map (not used by the simulator)"
                    if comments
                    else ""
                )
            )
            for key, v in value.items():
                lines.append(f"{pad}  {_scalar(key)}: {_scalar(v)}")
        else:
            line = f"{pad}{f.name}: {_scalar(value)}"
            if comments and doc:
                line += f"  # {doc}"
            lines.append(line)


# ---------------------------------------------------------------------- validation


def _fail(field: str, what: str, fix: str = "") -> None:
    raise ConfigurationError(what, where=f"sim config field {field}", fix=fix)


def _check_range(field: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    if not math.isfinite(value):
        _fail(field, f"must be finite, got {value}")
    if lo is not None and value < lo:
        _fail(field, f"must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        _fail(field, f"must be <= {hi}, got {value}")


def _validate(c: SimConfig) -> None:
    _check_range("seed", c.seed, 0)
    cam = c.camera
    if cam.detectors is not None and len(cam.detectors) == 0:
        _fail("camera.detectors", "is empty", "give detector ids or null")
    if cam.detectors is not None and len(set(cam.detectors)) != len(cam.detectors):
        _fail("camera.detectors", "has duplicate ids")
    if cam.n_detectors is not None:
        _check_range("camera.n_detectors", cam.n_detectors, 1)
    for name in ("nx", "ny"):
        v = getattr(cam, name)
        if v is not None:
            _check_range(f"camera.{name}", v, 64, 20000)
    if not c.bands:
        _fail("bands", "no band given")
    for band, b in c.bands.items():
        if band not in KNOWN_BANDS:
            _fail(f"bands.{band}", f"unknown band {band!r}", f"the simulator knows {', '.join(KNOWN_BANDS)}")
        _check_range(f"bands.{band}.zero_point", b.zero_point, 15.0, 40.0)
        _check_range(f"bands.{band}.sky_brightness", b.sky_brightness, 10.0, 30.0)
        _check_range(f"bands.{band}.exposure_time", b.exposure_time, 0.001, 1e5)
        _check_range(f"bands.{band}.n_visits", b.n_visits, 0, 10000)
    s = c.survey
    _check_range("survey.ra", s.ra, 0.0, 360.0)
    _check_range("survey.dec", s.dec, -89.0, 89.0)
    _check_range("survey.rotation_deg", s.rotation_deg, -360.0, 360.0)
    _check_range("survey.rotation_jitter_deg", s.rotation_jitter_deg, 0.0, 180.0)
    if s.dither_pattern not in ("random", "list"):
        _fail("survey.dither_pattern", f"must be 'random' or 'list', got {s.dither_pattern!r}")
    _check_range("survey.dither_radius_arcsec", s.dither_radius_arcsec, 0.0, 36000.0)
    if s.dither_pattern == "list" and not s.dither_offsets_arcsec:
        _fail("survey.dither_offsets_arcsec", "is empty but dither_pattern is 'list'")
    for i, off in enumerate(s.dither_offsets_arcsec):
        if len(off) != 2:
            _fail(f"survey.dither_offsets_arcsec[{i}]", f"must be [east, north], got {off}")
    _check_range("survey.pointing_error_arcsec", s.pointing_error_arcsec, 0.0, 3600.0)
    _check_range("survey.overhead_s", s.overhead_s, 0.0, 86400.0)
    _check_range("survey.first_exposure_id", s.first_exposure_id, 0, 2**31 - 1)
    try:
        from astropy.time import Time

        Time(s.start_date, format="isot", scale="utc")
    except ValueError:
        _fail("survey.start_date", f"not an ISO date-time: {s.start_date!r}", "e.g. 2025-03-11T08:00:00")
    o = c.conditions
    _check_range("conditions.seeing_fwhm_arcsec", o.seeing_fwhm_arcsec, 0.1, 10.0)
    _check_range("conditions.seeing_scatter", o.seeing_scatter, 0.0, 2.0)
    _check_range("conditions.seeing_min_arcsec", o.seeing_min_arcsec, 0.1, 10.0)
    _check_range("conditions.seeing_max_arcsec", o.seeing_max_arcsec, o.seeing_min_arcsec, 10.0)
    for i, v in enumerate(o.seeing_values_arcsec):
        _check_range(f"conditions.seeing_values_arcsec[{i}]", v, 0.1, 10.0)
    _check_range("conditions.sky_jitter_mag", o.sky_jitter_mag, 0.0, 5.0)
    _check_range("conditions.transparency_sigma_mag", o.transparency_sigma_mag, 0.0, 5.0)
    _check_range("conditions.satellite_trail_probability", o.satellite_trail_probability, 0.0, 1.0)
    _check_range("conditions.satellite_trail_mag", o.satellite_trail_mag, 5.0, 40.0)
    _check_range("conditions.cloud_gradient_mag_per_deg", o.cloud_gradient_mag_per_deg, 0.0, 2.0)
    p = c.psf
    _check_range("psf.beta", p.beta, 1.5, 20.0)
    _check_range("psf.fwhm_radial_variation", p.fwhm_radial_variation, -0.5, 2.0)
    _check_range("psf.ellipticity_visit_sigma", p.ellipticity_visit_sigma, 0.0, 0.3)
    _check_range("psf.ellipticity_radial", p.ellipticity_radial, -0.3, 0.3)
    _check_range("psf.field_radius_deg", p.field_radius_deg, 0.01, 10.0)
    _check_range("psf.oversampling", p.oversampling, 1, 15)
    for section, pop in (("stars", c.stars), ("galaxies", c.galaxies)):
        _check_range(f"{section}.density_per_deg2", pop.density_per_deg2, 0.0, 5e6)
        _check_range(f"{section}.mag_min", pop.mag_min, 5.0, 35.0)
        _check_range(f"{section}.mag_max", pop.mag_max, pop.mag_min, 35.0)
        _check_range(f"{section}.count_slope", pop.count_slope, -1.0, 1.0)
        _check_range(f"{section}.red_fraction", pop.red_fraction, 0.0, 1.0)
        if pop.reference_band not in KNOWN_BANDS:
            _fail(f"{section}.reference_band", f"unknown band {pop.reference_band!r}")
    _check_range("stars.bright_density_per_deg2", c.stars.bright_density_per_deg2, 0.0, 1e5)
    _check_range("stars.bright_mag_min", c.stars.bright_mag_min, 5.0, c.stars.mag_min)
    g = c.galaxies
    if g.model not in ("bulge_disk", "exponential"):
        _fail("galaxies.model", f"must be 'bulge_disk' or 'exponential', got {g.model!r}")
    _check_range("galaxies.hlr_arcsec_at_mag22", g.hlr_arcsec_at_mag22, 0.01, 20.0)
    _check_range("galaxies.hlr_mag_slope", g.hlr_mag_slope, -1.0, 1.0)
    _check_range("galaxies.hlr_scatter_dex", g.hlr_scatter_dex, 0.0, 2.0)
    _check_range("galaxies.hlr_min_arcsec", g.hlr_min_arcsec, 0.01, 20.0)
    _check_range("galaxies.hlr_max_arcsec", g.hlr_max_arcsec, g.hlr_min_arcsec, 30.0)
    _check_range("galaxies.bulge_size_ratio", g.bulge_size_ratio, 0.05, 5.0)
    _check_range("galaxies.bulge_mag_max", g.bulge_mag_max, 0.0, 40.0)
    _check_range("galaxies.ellipticity_sigma", g.ellipticity_sigma, 0.0, 1.0)
    _check_range("galaxies.ellipticity_max", g.ellipticity_max, 0.0, 0.95)
    _check_range("galaxies.max_stamp_pixels", g.max_stamp_pixels, 15, 4097)
    ins = c.instrument
    levels = ins.bias_level_adu if isinstance(ins.bias_level_adu, list) else [ins.bias_level_adu]
    for i, v in enumerate(levels):
        _check_range(f"instrument.bias_level_adu[{i}]", v, 0.0, 60000.0)
    _check_range("instrument.bias_amp_scatter_adu", ins.bias_amp_scatter_adu, 0.0, 5000.0)
    _check_range("instrument.bias_drift_adu", ins.bias_drift_adu, 0.0, 1000.0)
    _check_range("instrument.bias_structure_adu", ins.bias_structure_adu, 0.0, 1000.0)
    _check_range("instrument.vignetting", ins.vignetting, 0.0, 0.9)
    _check_range("instrument.pixel_response_sigma", ins.pixel_response_sigma, 0.0, 0.2)
    _check_range("instrument.flat_band_gradient", ins.flat_band_gradient, 0.0, 0.5)
    _check_range("instrument.dark_current", ins.dark_current, 0.0, 1e4)
    _check_range("instrument.hot_pixel_fraction", ins.hot_pixel_fraction, 0.0, 0.1)
    _check_range("instrument.hot_pixel_rate", ins.hot_pixel_rate, 0.0, 1e5)
    _check_range("instrument.n_bad_columns", ins.n_bad_columns, 0, 10000)
    _check_range("instrument.cosmic_ray_rate", ins.cosmic_ray_rate, 0.0, 100.0)
    _check_range("instrument.sensor_thickness_um", ins.sensor_thickness_um, 1.0, 2000.0)
    _check_range("instrument.n_dust_rings", ins.n_dust_rings, 0, 1000)
    _check_range("instrument.dust_ring_depth", ins.dust_ring_depth, 0.0, 0.5)
    op = c.optics
    _check_range("optics.ghost_mag_max", op.ghost_mag_max, 0.0, 30.0)
    _check_range("optics.ghost_flux_fraction", op.ghost_flux_fraction, 0.0, 0.1)
    _check_range("optics.ghost_radius_arcsec", op.ghost_radius_arcsec, 1.0, 300.0)
    _check_range("optics.ghost_inner_fraction", op.ghost_inner_fraction, 0.0, 0.95)
    _check_range("optics.ghost_radial_shift", op.ghost_radial_shift, -0.5, 0.5)
    bl = c.blind
    _check_range("blind.density_per_deg2", bl.density_per_deg2, 0.0, 1e5)
    _check_range("blind.mag_min", bl.mag_min, 5.0, 35.0)
    _check_range("blind.mag_max", bl.mag_max, bl.mag_min, 35.0)
    _check_range("blind.variable_fraction", bl.variable_fraction, 0.0, 1.0)
    _check_range("blind.transient_fraction", bl.transient_fraction, 0.0, 1.0 - bl.variable_fraction)
    _check_range("blind.amplitude_mag", bl.amplitude_mag, 0.0, 5.0)
    cal = c.calibration
    _check_range("calibration.n_bias", cal.n_bias, 0, 1000)
    _check_range("calibration.n_flat", cal.n_flat, 0, 1000)
    _check_range("calibration.flat_level_electrons", cal.flat_level_electrons, 1.0, 1e6)
    _check_range("calibration.flat_exposure_time", cal.flat_exposure_time, 0.001, 1e4)
    _check_range("calibration.n_dark", cal.n_dark, 0, 1000)
    _check_range("calibration.dark_exposure_time", cal.dark_exposure_time, 0.001, 1e5)
    r = c.refcat
    if r.reference_band not in KNOWN_BANDS:
        _fail("refcat.reference_band", f"unknown band {r.reference_band!r}")
    _check_range("refcat.mag_min", r.mag_min, 0.0, 35.0)
    _check_range("refcat.mag_max", r.mag_max, r.mag_min, 35.0)
    _check_range("refcat.astrometric_error_mas", r.astrometric_error_mas, 0.0, 1e5)
    _check_range("refcat.astrometric_floor_mas", r.astrometric_floor_mas, 0.0, 1e5)
    _check_range("refcat.phot_depth_mag", r.phot_depth_mag, 10.0, 35.0)
    _check_range("refcat.phot_error_floor_mag", r.phot_error_floor_mag, 0.0, 1.0)
    _check_range("refcat.htm_level", r.htm_level, 0, 12)
    _check_range("refcat.gaia_mag_max", r.gaia_mag_max, 5.0, 30.0)
    _check_range("refcat.gaia_error_mas_at_20", r.gaia_error_mas_at_20, 0.0, 1e4)
    _check_range("refcat.ps1_mag_min", r.ps1_mag_min, 0.0, 30.0)
    _check_range("refcat.ps1_mag_max", r.ps1_mag_max, r.ps1_mag_min, 35.0)
    _check_range("refcat.ps1_astrometric_error_mas", r.ps1_astrometric_error_mas, 0.0, 1e4)
    _check_range("refcat.ps1_depth_mag", r.ps1_depth_mag, 10.0, 35.0)


# ---------------------------------------------------------------------- loading and presets


def _presets_dir() -> Path:
    return Path(str(resources.files("opendrp.sim") / "presets"))


def preset_names() -> list[str]:
    """Names of the built-in presets (``tiny``, ``small``, ...)."""
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def preset_yaml(name: str) -> str:
    """The complete, commented YAML of a preset, ready to copy and edit.

    Raises
    ------
    ConfigurationError
        If there is no preset of that name.
    """
    path = _presets_dir() / f"{name}.yaml"
    if not path.exists():
        raise ConfigurationError(
            f"no simulator preset named {name!r}", fix=f"known presets: {', '.join(preset_names())}"
        )
    return path.read_text()


def load_sim_config(source: str | Path | Mapping[str, Any]) -> SimConfig:
    """Load and validate a simulator configuration.

    Parameters
    ----------
    source : `str`, `pathlib.Path` or mapping
        A preset name (see `preset_names`), a path to a YAML file, YAML text (any string containing a
        newline), or an already parsed mapping.

    Returns
    -------
    config : `SimConfig`
        The validated configuration (fields not given take their defaults).

    Raises
    ------
    ConfigurationError
        If the YAML cannot be read or a field is unknown or invalid (the message names the field).
    """
    where = "sim config"
    if isinstance(source, Mapping):
        data: Any = source
    else:
        text: str
        if isinstance(source, str) and "\n" in source:
            text = source
        elif isinstance(source, str) and source in preset_names() and not Path(source).is_file():
            where = f"preset {source}"
            text = preset_yaml(source)
        else:
            path = Path(source)
            where = str(path)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the simulator configuration ({exc.strerror})",
                    where=where,
                    fix=f"give a YAML path or a preset name ({', '.join(preset_names())})",
                ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"invalid YAML ({exc})", where=where) from exc
        if data is None:
            data = {}
    return SimConfig.from_dict(data, where=where).validate()
