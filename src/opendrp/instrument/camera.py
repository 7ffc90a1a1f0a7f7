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
            return _camera_from_dict(data)
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


def _per_amp(value: Any, n: int, name: str) -> list[float]:
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ConfigurationError(f"{name} has {len(value)} values for {n} amplifiers", where="camera")
        return [float(v) for v in value]
    return [float(value)] * n


def _camera_from_dict(data: Mapping[str, Any]) -> Camera:
    data = copy.deepcopy(dict(data))
    ccd = data["ccd"]
    amps = ccd["amplifiers"]
    n_amp = int(amps["count"])
    nx, ny = int(ccd["nx"]), int(ccd["ny"])
    if nx % n_amp:
        raise ConfigurationError(f"ccd.nx={nx} is not a multiple of {n_amp} amplifiers", where="camera")
    filters = tuple(
        FilterSpec(str(f["physical_filter"]), str(f["band"]), float(f.get("wavelength_nm", 0.0)))
        for f in data["filters"]
    )
    detectors: dict[int, DetectorSpec] = {}
    for det in data["detectors"]:
        over = det.get("amplifiers", {})
        gains = _per_amp(over.get("gain", amps["gain"]), n_amp, "gain")
        noises = _per_amp(over.get("read_noise", amps["read_noise"]), n_amp, "read_noise")
        sats = _per_amp(over.get("saturation", amps["saturation"]), n_amp, "saturation")
        flips = amps.get("flip_x", [bool(i % 2) for i in range(n_amp)])
        names = amps.get("names", [chr(ord("A") + i) for i in range(n_amp)])
        amp_specs = tuple(
            AmplifierSpec(
                name=str(names[i]),
                index=i,
                nx=nx // n_amp,
                ny=ny,
                prescan=int(amps["prescan"]),
                overscan=int(amps["overscan"]),
                parallel_overscan=int(amps.get("parallel_overscan", 0)),
                flip_x=bool(flips[i]),
                gain=gains[i],
                read_noise=noises[i],
                saturation=sats[i],
            )
            for i in range(n_amp)
        )
        d = DetectorSpec(
            id=int(det["id"]),
            name=str(det["name"]),
            nx=nx,
            ny=ny,
            x_mm=float(det["x_mm"]),
            y_mm=float(det["y_mm"]),
            rotation_deg=float(det.get("rotation_deg", 0.0)),
            purpose=str(det.get("purpose", "SCIENCE")),
            amplifiers=amp_specs,
        )
        if d.id in detectors:
            raise ConfigurationError(f"detector id {d.id} appears twice", where="camera")
        detectors[d.id] = d
    return Camera(
        name=str(data["name"]),
        pixel_size_mm=float(data["pixel_size_mm"]),
        plate_scale_arcsec_per_mm=float(data["plate_scale_arcsec_per_mm"]),
        distortion=tuple(float(c) for c in data.get("distortion", [])),
        filters=filters,
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
