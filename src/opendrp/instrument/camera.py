"""Camera description loaded from a YAML file.

A camera is data, not code: its detectors, their focal-plane placement, the amplifier read-out layout of the
raw files (prescan, serial and parallel overscan, read-out direction), gains, read noise, saturation, and its
filters.  Adding a camera means adding a YAML file (see ``cameras/hsc.yaml`` and ``docs/raw-format.md``).

Pixel conventions: numpy ``[y, x]`` indexing; "assembled" coordinates are those of the trimmed CCD image
(``nx`` x ``ny`` active pixels); raw coordinates are those of the raw FITS array including pre/overscans.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ConfigurationError

__all__ = [
    "AmplifierSpec",
    "Camera",
    "DetectorSpec",
    "FilterSpec",
    "builtin_camera_path",
    "check_name",
    "load_camera",
]


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """A physical filter and the abstract band it belongs to."""

    physical_filter: str
    band: str
    wavelength_nm: float = 0.0


@dataclasses.dataclass(frozen=True)
class AmplifierSpec:
    """One amplifier's read-out geometry and electronics.

    The amplifiers of a detector sit side by side in x.  In the raw array, amplifier ``index`` occupies the
    column segment ``[index * raw_width, (index + 1) * raw_width)`` laid out, in read-out order, as
    ``prescan | data | serial overscan``; when ``flip_x`` the data columns are mirrored (read from the other
    side).  Rows ``[0, ny)`` hold data, rows ``[ny, ny + parallel_overscan)`` the parallel overscan.
    """

    name: str
    index: int
    nx: int
    ny: int
    prescan: int
    overscan: int
    parallel_overscan: int
    flip_x: bool
    gain: float  # electrons per ADU
    read_noise: float  # electrons
    saturation: float  # ADU, raw level at which the amplifier saturates

    @property
    def raw_width(self) -> int:
        return self.prescan + self.nx + self.overscan

    @property
    def raw_x0(self) -> int:
        return self.index * self.raw_width

    @property
    def assembled_x0(self) -> int:
        return self.index * self.nx

    def raw_data_slice(self) -> tuple[slice, slice]:
        """Slice of the raw array holding this amplifier's data pixels (in read-out order)."""
        x0 = self.raw_x0 + self.prescan
        return slice(0, self.ny), slice(x0, x0 + self.nx)

    def raw_overscan_slice(self) -> tuple[slice, slice]:
        """Slice of the raw array holding the serial overscan (data rows only)."""
        x0 = self.raw_x0 + self.prescan + self.nx
        return slice(0, self.ny), slice(x0, x0 + self.overscan)

    def raw_prescan_slice(self) -> tuple[slice, slice]:
        return slice(0, self.ny), slice(self.raw_x0, self.raw_x0 + self.prescan)

    def assembled_slice(self) -> tuple[slice, slice]:
        """Slice of the assembled CCD image that this amplifier's data fill."""
        return slice(0, self.ny), slice(self.assembled_x0, self.assembled_x0 + self.nx)


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    """A detector: its size, its place on the focal plane and its amplifiers."""

    id: int
    name: str
    nx: int
    ny: int
    x_mm: float  # focal-plane position of the detector centre
    y_mm: float
    rotation_deg: float  # rotation of the pixel grid on the focal plane (0 or 180 for HSC)
    purpose: str
    amplifiers: tuple[AmplifierSpec, ...]

    @property
    def raw_shape(self) -> tuple[int, int]:
        a = self.amplifiers[0]
        return (a.ny + a.parallel_overscan, sum(amp.raw_width for amp in self.amplifiers))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    def pixel_to_focal_plane(self, x: np.ndarray, y: np.ndarray, pixel_size_mm: float) -> np.ndarray:
        """Focal-plane coordinates (mm) of assembled pixel positions; returns an array ``(2, n)``."""
        dx = (np.asarray(x, float) - (self.nx - 1) / 2.0) * pixel_size_mm
        dy = (np.asarray(y, float) - (self.ny - 1) / 2.0) * pixel_size_mm
        c, s = np.cos(np.radians(self.rotation_deg)), np.sin(np.radians(self.rotation_deg))
        return np.array([self.x_mm + c * dx - s * dy, self.y_mm + s * dx + c * dy])

    def focal_plane_to_pixel(self, fx: np.ndarray, fy: np.ndarray, pixel_size_mm: float) -> np.ndarray:
        """Inverse of `pixel_to_focal_plane`; returns an array ``(2, n)`` of assembled pixel positions."""
        dx0 = np.asarray(fx, float) - self.x_mm
        dy0 = np.asarray(fy, float) - self.y_mm
        c, s = np.cos(np.radians(self.rotation_deg)), np.sin(np.radians(self.rotation_deg))
        dx = (c * dx0 + s * dy0) / pixel_size_mm
        dy = (-s * dx0 + c * dy0) / pixel_size_mm
        return np.array([dx + (self.nx - 1) / 2.0, dy + (self.ny - 1) / 2.0])


@dataclasses.dataclass(frozen=True)
class Camera:
    """A camera: detectors, filters, plate scale and optical distortion.

    The optical model maps focal-plane millimetres to tangent-plane angles about the boresight:
    ``r_sky = plate_scale * r_fp * (1 + sum_k distortion[k] * r_fp ** (2 * (k + 1)))`` (arcsec, mm).
    """

    name: str
    pixel_size_mm: float
    plate_scale_arcsec_per_mm: float
    distortion: tuple[float, ...]
    filters: tuple[FilterSpec, ...]
    detectors: Mapping[int, DetectorSpec]
    source: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ lookups
    @property
    def pixel_scale_arcsec(self) -> float:
        return self.pixel_size_mm * self.plate_scale_arcsec_per_mm

    def detector(self, detector_id: int) -> DetectorSpec:
        try:
            return self.detectors[int(detector_id)]
        except KeyError:
            raise ConfigurationError(
                f"unknown detector {detector_id}",
                where=f"camera {self.name}",
                fix=f"known detectors: {sorted(self.detectors)[:10]}...",
            ) from None

    def filter(self, physical_filter: str) -> FilterSpec:
        for f in self.filters:
            if f.physical_filter == physical_filter:
                return f
        raise ConfigurationError(
            f"unknown filter {physical_filter!r}",
            where=f"camera {self.name}",
            fix=f"known filters: {[f.physical_filter for f in self.filters]}",
        )

    def filter_for_band(self, band: str) -> FilterSpec:
        for f in self.filters:
            if f.band == band:
                return f
        raise ConfigurationError(f"no filter for band {band!r}", where=f"camera {self.name}")

    @property
    def bands(self) -> list[str]:
        return [f.band for f in self.filters]

    def hash(self) -> bytes:
        return hashlib.sha1(yaml.safe_dump(self.to_dict(), sort_keys=True).encode()).digest()

    # ------------------------------------------------------------------ optics
    def focal_plane_to_sky_offset(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        """Tangent-plane offsets (arcsec, x towards +fx) of focal-plane positions (mm); shape ``(2, n)``."""
        fx = np.asarray(fx, float)
        fy = np.asarray(fy, float)
        r2 = fx * fx + fy * fy
        factor = np.ones_like(r2)
        for k, c in enumerate(self.distortion):
            factor = factor + c * r2 ** (k + 1)
        return self.plate_scale_arcsec_per_mm * factor * np.array([fx, fy])

    def sky_offset_to_focal_plane(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Inverse of `focal_plane_to_sky_offset` (Newton's method on the radius).

        Where the radial mapping is not invertible (far outside the field for a distortion that shrinks the
        outer pixels' sky area), the linear plate scale is used, which keeps such positions far off the
        detectors.
        """
        u = np.asarray(u, float)
        v = np.asarray(v, float)
        rho = np.hypot(u, v) / self.plate_scale_arcsec_per_mm  # undistorted radius (mm)
        r = rho.copy()
        for _ in range(30):
            f = r.copy()
            df = np.ones_like(r)
            for k, c in enumerate(self.distortion):
                f = f + c * r ** (2 * k + 3)
                df = df + (2 * k + 3) * c * r ** (2 * k + 2)
            step = (f - rho) / np.where(np.abs(df) > 1e-3, df, 1e-3)
            r = r - step
        bad = ~np.isfinite(r) | (r < 0) | (np.abs(step) > 1e-9 * np.maximum(rho, 1.0))
        r = np.where(bad, rho, r)
        scale = np.where(rho > 0, r / np.where(rho > 0, rho, 1.0), 1.0)
        return np.array([u * scale, v * scale]) / self.plate_scale_arcsec_per_mm

    # ------------------------------------------------------------------ (de)serialization
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "camera") -> Camera:
        try:
            return _camera_from_dict(data, where)
        except ConfigurationError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"invalid camera description ({type(exc).__name__}: {exc})",
                where=where,
                fix="see docs/raw-format.md and src/opendrp/instrument/cameras/hsc.yaml for the schema",
            ) from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> Camera:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read camera YAML ({exc})", where=str(path)) from exc
        return cls.from_dict(data, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.source)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def subset(
        self,
        detector_ids: Iterable[int] | None = None,
        *,
        nx: int | None = None,
        ny: int | None = None,
    ) -> Camera:
        """A camera with only some detectors and, optionally, smaller CCDs (for fast simulations).

        Shrinking a CCD keeps the number of amplifiers; ``nx`` must be a multiple of it.  The focal-plane
        centres are kept, so shrunken CCDs leave wider gaps.
        """
        data = self.to_dict()
        if detector_ids is not None:
            wanted = [int(i) for i in detector_ids]
            by_id = {int(d["id"]): d for d in data["detectors"]}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                raise ConfigurationError(f"unknown detectors {missing}", where=f"camera {self.name}")
            data["detectors"] = [by_id[i] for i in wanted]
        if nx is not None:
            data["ccd"]["nx"] = int(nx)
        if ny is not None:
            data["ccd"]["ny"] = int(ny)
        return Camera.from_dict(data, where=f"subset of camera {self.name}")


#: names that end up in file paths of the repository (camera, filters, bands, detectors, amplifiers):
#: a letter or digit, then letters, digits and ``_ . + -``; never ``/`` nor a name starting with ``.``
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
#: physical filter name reserved for exposures without a filter (bias, dark)
RESERVED_FILTER = "NONE"
MAX_DETECTOR_ID = 99_999
MAX_CCD_SIZE = 100_000
MAX_SATURATION_ADU = 1.0e7


def check_name(value: Any, *, where: str) -> str:
    """A name that is used in repository paths (`NAME_PATTERN`)."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConfigurationError(
            f"{value!r} is not a valid name",
            where=where,
            fix="use 1-64 letters, digits, '_', '.', '+', '-', starting with a letter or digit (no '/')",
        )
    return value


def _integer(value: Any, *, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{value!r} is not an integer", where=where)
    if not low <= value <= high:
        raise ConfigurationError(f"{value} is not in [{low}, {high}]", where=where)
    return int(value)


def _number(value: Any, *, where: str, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{value!r} is not a number", where=where)
    v = float(value)
    if not np.isfinite(v) or v < low or v > high or (low_open and v == low):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ConfigurationError(f"{value!r} is not in {interval}", where=where)
    return v


def _mapping(value: Any, *, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"expected a mapping, got {type(value).__name__}", where=where)
    return value


def _list(value: Any, *, where: str, n: int | None = None, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"expected a list, got {type(value).__name__}", where=where)
    if n is not None and len(value) != n:
        raise ConfigurationError(f"has {len(value)} values for {n} amplifiers", where=where)
    if non_empty and not value:
        raise ConfigurationError("is empty", where=where, fix="give at least one")
    return list(value)


def _per_amp(
    value: Any, n: int, *, where: str, low: float, high: float, low_open: bool = False
) -> list[float]:
    """A per-amplifier value: a scalar or a list of ``n``, each range-checked."""
    if isinstance(value, list | tuple):
        _list(value, where=where, n=n)
        return [
            _number(v, where=f"{where}[{i}]", low=low, high=high, low_open=low_open)
            for i, v in enumerate(value)
        ]
    return [_number(value, where=where, low=low, high=high, low_open=low_open)] * n


#: (field, lowest, highest, lowest excluded) of the amplifier electronics
_ELECTRONICS = (
    ("gain", 0.0, 1000.0, True),  # electrons per ADU
    ("read_noise", 0.0, 1000.0, False),  # electrons
    ("saturation", 0.0, MAX_SATURATION_ADU, True),  # ADU
)


def _camera_from_dict(data: Mapping[str, Any], where: str = "camera") -> Camera:
    """Build a camera from its YAML mapping, checking every field (names, sizes, ranges, uniqueness)."""
    data = copy.deepcopy(dict(_mapping(data, where=where)))
    for key in ("name", "pixel_size_mm", "plate_scale_arcsec_per_mm", "ccd", "filters", "detectors"):
        if key not in data:
            raise ConfigurationError(f"missing field {key!r}", where=where, fix="see docs/raw-format.md")
    name = check_name(data["name"], where=f"{where}: name")
    pixel_size = _number(data["pixel_size_mm"], where=f"{where}: pixel_size_mm", low=0, high=1, low_open=True)
    plate_scale = _number(
        data["plate_scale_arcsec_per_mm"], where=f"{where}: plate_scale_arcsec_per_mm", low=0, high=1e5,
        low_open=True,
    )  # fmt: skip
    distortion = tuple(
        _number(c, where=f"{where}: distortion[{i}]", low=-1e3, high=1e3)
        for i, c in enumerate(_list(data.get("distortion", []), where=f"{where}: distortion"))
    )
    ccd = _mapping(data["ccd"], where=f"{where}: ccd")
    amps = _mapping(ccd.get("amplifiers"), where=f"{where}: ccd.amplifiers")
    w = f"{where}: ccd.amplifiers"
    n_amp = _integer(amps.get("count"), where=f"{w}.count", low=1, high=64)
    nx = _integer(ccd.get("nx"), where=f"{where}: ccd.nx", low=1, high=MAX_CCD_SIZE)
    ny = _integer(ccd.get("ny"), where=f"{where}: ccd.ny", low=1, high=MAX_CCD_SIZE)
    if nx % n_amp:
        raise ConfigurationError(f"{nx} is not a multiple of {n_amp} amplifiers", where=f"{where}: ccd.nx")
    prescan = _integer(amps.get("prescan"), where=f"{w}.prescan", low=0, high=MAX_CCD_SIZE)
    overscan = _integer(amps.get("overscan"), where=f"{w}.overscan", low=0, high=MAX_CCD_SIZE)
    par_over = _integer(
        amps.get("parallel_overscan", 0), where=f"{w}.parallel_overscan", low=0, high=MAX_CCD_SIZE
    )
    flips = _list(amps.get("flip_x", [bool(i % 2) for i in range(n_amp)]), where=f"{w}.flip_x", n=n_amp)
    if not all(isinstance(f, bool) for f in flips):
        raise ConfigurationError(f"{flips} are not all true/false", where=f"{w}.flip_x")
    names = _list(amps.get("names", [chr(ord("A") + i) for i in range(n_amp)]), where=f"{w}.names", n=n_amp)
    for i, amp_name in enumerate(names):
        check_name(amp_name, where=f"{w}.names[{i}]")
    if len(set(names)) != n_amp:
        raise ConfigurationError(
            f"{names} has duplicates", where=f"{w}.names", fix="name each amplifier once"
        )
    defaults = {
        key: _per_amp(amps.get(key), n_amp, where=f"{w}.{key}", low=lo, high=hi, low_open=lo_open)
        for key, lo, hi, lo_open in _ELECTRONICS
    }
    filters: list[FilterSpec] = []
    for i, f in enumerate(_list(data["filters"], where=f"{where}: filters", non_empty=True)):
        f = _mapping(f, where=f"{where}: filters[{i}]")
        physical = check_name(f.get("physical_filter"), where=f"{where}: filters[{i}].physical_filter")
        band = check_name(f.get("band"), where=f"{where}: filters[{i}].band")
        if physical == RESERVED_FILTER:
            raise ConfigurationError(
                f"{physical!r} is reserved for exposures without a filter",
                where=f"{where}: filters[{i}].physical_filter",
            )
        if any(g.physical_filter == physical for g in filters):
            raise ConfigurationError(
                f"physical filter {physical!r} appears twice", where=f"{where}: filters[{i}].physical_filter"
            )
        wavelength = _number(f.get("wavelength_nm", 0.0), where=f"{where}: filters[{i}].wavelength_nm", low=0,
                             high=1e6)  # fmt: skip
        filters.append(FilterSpec(physical, band, wavelength))
    detectors: dict[int, DetectorSpec] = {}
    det_names: set[str] = set()
    for k, det in enumerate(_list(data["detectors"], where=f"{where}: detectors", non_empty=True)):
        wd = f"{where}: detectors[{k}]"
        det = _mapping(det, where=wd)
        det_id = _integer(det.get("id"), where=f"{wd}.id", low=0, high=MAX_DETECTOR_ID)
        det_name = check_name(str(det.get("name")) if isinstance(det.get("name"), int) else det.get("name"),
                              where=f"{wd}.name")  # fmt: skip
        if det_id in detectors:
            raise ConfigurationError(f"detector id {det_id} appears twice", where=f"{wd}.id")
        if det_name in det_names:
            raise ConfigurationError(f"detector name {det_name!r} appears twice", where=f"{wd}.name")
        det_names.add(det_name)
        over = _mapping(det.get("amplifiers", {}), where=f"{wd}.amplifiers")
        values = {
            key: (
                _per_amp(over[key], n_amp, where=f"{wd}.amplifiers.{key}", low=lo, high=hi, low_open=lo_open)
                if key in over
                else defaults[key]
            )
            for key, lo, hi, lo_open in _ELECTRONICS
        }
        amp_specs = tuple(
            AmplifierSpec(
                name=str(names[i]),
                index=i,
                nx=nx // n_amp,
                ny=ny,
                prescan=prescan,
                overscan=overscan,
                parallel_overscan=par_over,
                flip_x=bool(flips[i]),
                gain=values["gain"][i],
                read_noise=values["read_noise"][i],
                saturation=values["saturation"][i],
            )
            for i in range(n_amp)
        )
        detectors[det_id] = DetectorSpec(
            id=det_id,
            name=det_name,
            nx=nx,
            ny=ny,
            x_mm=_number(det.get("x_mm"), where=f"{wd}.x_mm", low=-1e4, high=1e4),
            y_mm=_number(det.get("y_mm"), where=f"{wd}.y_mm", low=-1e4, high=1e4),
            rotation_deg=_number(
                det.get("rotation_deg", 0.0), where=f"{wd}.rotation_deg", low=-360, high=360
            ),
            purpose=str(det.get("purpose", "SCIENCE")),
            amplifiers=amp_specs,
        )
    return Camera(
        name=name,
        pixel_size_mm=pixel_size,
        plate_scale_arcsec_per_mm=plate_scale,
        distortion=distortion,
        filters=tuple(filters),
        detectors=detectors,
        source=dict(data),
    )


def builtin_camera_path(name: str) -> Path:
    """Path of a camera YAML shipped with openDRP (``hsc``)."""
    path = Path(str(resources.files("opendrp.instrument") / "cameras" / f"{name.lower()}.yaml"))
    if not path.exists():
        raise ConfigurationError(f"no built-in camera named {name!r}", fix="give a path to a camera YAML")
    return path


def load_camera(name_or_path: str | Path) -> Camera:
    """Load a camera from a YAML path or a built-in camera name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return Camera.from_yaml(p)
    return Camera.from_yaml(builtin_camera_path(str(name_or_path)))
