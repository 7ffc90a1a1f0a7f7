"""A whole-sky map of tracts and patches, tessellated in declination rings (like Rubin's RingsSkyMap).

The sky is cut into ``num_rings`` declination rings between two polar caps; each ring is cut into tracts of
(roughly) equal RA width.  A tract's *inner region* is its ring cell; its pixel grid is a TAN projection
centred on the cell centre that covers the cell plus ``tract_overlap_deg`` on every side, cut into patches of
``patch_inner_pixels`` with an extra ``patch_border_pixels`` of overlap on each side.  Tract ids run from the
south cap (0) northwards, ring by ring, in RA order; patch ids are ``cell_y * n_patches_x + cell_x``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import yaml
from astropy.wcs import WCS

from ..astrometry.tangent import sky_to_tangent, tangent_to_sky
from ..errors import ConfigurationError

__all__ = ["PatchInfo", "RingsSkyMap", "SkyMapConfig", "TractInfo"]


@dataclasses.dataclass(frozen=True)
class SkyMapConfig:
    """Parameters of a rings sky map."""

    name: str = "hsc_rings_v1"
    num_rings: int = 120  #: declination rings between the polar caps
    tract_overlap_deg: float = 1.0 / 60.0  #: sky added around each ring cell
    patch_inner_pixels: int = 4000  #: inner patch size (pixels)
    patch_border_pixels: int = 100  #: overlap added on each side of a patch (pixels)
    pixel_scale_arcsec: float = 0.168  #: tract pixel scale
    ra_start_deg: float = 0.0  #: RA of the first tract edge in every ring

    def validate(self) -> None:
        if self.num_rings < 1:
            raise ConfigurationError("must be >= 1", where="skymap.num_rings")
        if self.patch_inner_pixels < 16:
            raise ConfigurationError("must be >= 16", where="skymap.patch_inner_pixels")
        if not 0 <= self.patch_border_pixels < self.patch_inner_pixels:
            raise ConfigurationError("must be in [0, patch_inner_pixels)", where="skymap.patch_border_pixels")
        if not 0.001 < self.pixel_scale_arcsec < 100:
            raise ConfigurationError("must be in (0.001, 100) arcsec", where="skymap.pixel_scale_arcsec")
        if not 0 <= self.tract_overlap_deg < 5:
            raise ConfigurationError("must be in [0, 5) deg", where="skymap.tract_overlap_deg")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SkyMapConfig:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown field(s) {unknown}", where="skymap", fix=f"known fields: {sorted(known)}"
            )
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        conv = {"str": str, "int": int, "float": float}
        cfg = cls(**{k: conv[str(types[k])](v) for k, v in data.items()})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> bytes:
        return hashlib.sha1(yaml.safe_dump(self.to_dict(), sort_keys=True).encode()).digest()


@dataclasses.dataclass(frozen=True)
class PatchInfo:
    """A patch: its place in the tract grid, its inner and outer boxes (tract pixels) and its WCS."""

    tract: int
    id: int
    cell_x: int
    cell_y: int
    inner_bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in tract pixels
    outer_bbox: tuple[int, int, int, int]
    wcs: WCS  # patch-local pixels (0-based from the outer box's corner)

    @property
    def shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.outer_bbox
        return (y1 - y0, x1 - x0)

    def contains_inner(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether patch-local pixel positions fall inside the inner region."""
        ox, oy = self.outer_bbox[0], self.outer_bbox[1]
        x0, y0, x1, y1 = self.inner_bbox
        tx, ty = np.asarray(x) + ox, np.asarray(y) + oy
        return (tx >= x0 - 0.5) & (tx < x1 - 0.5) & (ty >= y0 - 0.5) & (ty < y1 - 0.5)


@dataclasses.dataclass(frozen=True)
class TractInfo:
    """A tract: its ring cell (inner region), its TAN pixel grid and its patch layout."""

    id: int
    ring: int  # -1 south cap, num_rings north cap
    ra_range: tuple[float, float]  # deg, inner region (may wrap through 360)
    dec_range: tuple[float, float]  # deg
    ctr_ra: float
    ctr_dec: float
    wcs: WCS  # tract pixels, 0-based
    n_patches: tuple[int, int]  # (nx, ny)
    patch_inner_pixels: int
    patch_border_pixels: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_patches[1] * self.patch_inner_pixels, self.n_patches[0] * self.patch_inner_pixels)

    def contains_inner(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Whether sky positions (deg) lie in this tract's inner region (its ring cell)."""
        ra = np.asarray(ra, float) % 360.0
        dec = np.asarray(dec, float)
        in_dec = (dec >= self.dec_range[0]) & (dec < self.dec_range[1])
        lo, hi = self.ra_range
        if hi - lo >= 360.0:
            return in_dec
        return in_dec & (((ra - lo) % 360.0) < (hi - lo))

    def sky_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.wcs.wcs_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
        return x, y

    def patch(self, patch_id: int) -> PatchInfo:
        nx, ny = self.n_patches
        if not 0 <= patch_id < nx * ny:
            raise ConfigurationError(f"patch {patch_id} is not in tract {self.id} ({nx} x {ny} patches)")
        cx, cy = patch_id % nx, patch_id // nx
        n, b = self.patch_inner_pixels, self.patch_border_pixels
        inner = (cx * n, cy * n, (cx + 1) * n, (cy + 1) * n)
        outer = (inner[0] - b, inner[1] - b, inner[2] + b, inner[3] + b)
        wcs = self.wcs.deepcopy()
        wcs.wcs.crpix = [self.wcs.wcs.crpix[0] - outer[0], self.wcs.wcs.crpix[1] - outer[1]]
        wcs.wcs.set()
        return PatchInfo(self.id, patch_id, cx, cy, inner, outer, wcs)

    def patches_overlapping(self, ra: np.ndarray, dec: np.ndarray) -> list[int]:
        """Ids of patches whose outer box overlaps the bounding box of the given sky points (deg)."""
        x, y = self.sky_to_pixel(ra, dec)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            return []
        n, b = self.patch_inner_pixels, self.patch_border_pixels
        nx, ny = self.n_patches
        ix0 = max(0, int(math.floor((x[ok].min() - b) / n)))
        ix1 = min(nx - 1, int(math.floor((x[ok].max() + b) / n)))
        iy0 = max(0, int(math.floor((y[ok].min() - b) / n)))
        iy1 = min(ny - 1, int(math.floor((y[ok].max() + b) / n)))
        return [cy * nx + cx for cy in range(iy0, iy1 + 1) for cx in range(ix0, ix1 + 1)]

    def outer_corners_sky(self, patch_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sky corners (deg) of a patch's outer box, or of the whole tract grid."""
        if patch_id is None:
            ny, nx = self.shape
            x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
            y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        else:
            x0, y0, x1, y1 = self.patch(patch_id).outer_bbox
            x = np.array([x0 - 0.5, x1 - 0.5, x1 - 0.5, x0 - 0.5])
            y = np.array([y0 - 0.5, y0 - 0.5, y1 - 0.5, y1 - 0.5])
        ra, dec = self.wcs.wcs_pix2world(x, y, 0)
        return np.asarray(ra), np.asarray(dec)


class RingsSkyMap:
    """The rings sky map: tract geometry computed on demand from the configuration."""

    def __init__(self, config: SkyMapConfig | None = None) -> None:
        self.config = config or SkyMapConfig()
        self.config.validate()
        c = self.config
        self._ring_size = 180.0 / (c.num_rings + 1)  # deg
        self._n_in_ring: list[int] = []
        for ring in range(c.num_rings):
            dec_lo, dec_hi = self._ring_dec_range(ring)
            dec_eq = 0.0 if dec_lo <= 0.0 <= dec_hi else min(abs(dec_lo), abs(dec_hi))
            n = max(1, int(math.ceil(360.0 * math.cos(math.radians(dec_eq)) / self._ring_size)))
            self._n_in_ring.append(n)
        self._first_id = np.concatenate([[1], 1 + np.cumsum(self._n_in_ring)]).astype(int)
        self.n_tracts = int(self._first_id[-1]) + 1

    @property
    def name(self) -> str:
        return self.config.name

    def _ring_dec_range(self, ring: int) -> tuple[float, float]:
        lo = -90.0 + self._ring_size * (ring + 0.5)
        return lo, lo + self._ring_size

    def _tract_cell(self, tract_id: int) -> tuple[int, tuple[float, float], tuple[float, float]]:
        c = self.config
        if tract_id == 0:
            return -1, (0.0, 360.0), (-90.0, -90.0 + 0.5 * self._ring_size)
        if tract_id == self.n_tracts - 1:
            return c.num_rings, (0.0, 360.0), (90.0 - 0.5 * self._ring_size, 90.0 + 1e-9)
        if not 0 < tract_id < self.n_tracts - 1:
            raise ConfigurationError(f"tract {tract_id} does not exist (0..{self.n_tracts - 1})")
        ring = int(np.searchsorted(self._first_id, tract_id, side="right") - 1)
        k = tract_id - int(self._first_id[ring])
        width = 360.0 / self._n_in_ring[ring]
        ra0 = (c.ra_start_deg + k * width) % 360.0
        return ring, (ra0, ra0 + width), self._ring_dec_range(ring)

    @functools.lru_cache(maxsize=256)  # noqa: B019  (the sky map lives as long as the process)
    def tract(self, tract_id: int) -> TractInfo:
        c = self.config
        ring, ra_range, dec_range = self._tract_cell(int(tract_id))
        if ring < 0 or ring >= c.num_rings:
            ctr_ra, ctr_dec = 0.0, (-90.0 if ring < 0 else 90.0)
        else:
            ctr_ra, ctr_dec = (
                (ra_range[0] + 0.5 * (ra_range[1] - ra_range[0])) % 360.0,
                float(np.mean(dec_range)),
            )
        # extent of the overlap-grown cell in the tangent plane, from points along its boundary
        ov = c.tract_overlap_deg
        d0, d1 = max(dec_range[0] - ov, -89.999), min(dec_range[1] + ov, 89.999)
        if ring < 0 or ring >= c.num_rings:
            ras = np.linspace(0, 360, 73)
            decs = np.full_like(ras, d1 if ring < 0 else d0)
        else:
            cosd = max(math.cos(math.radians(max(abs(d0), abs(d1)))), 1e-6)
            r0, r1 = ra_range[0] - ov / cosd, ra_range[1] + ov / cosd
            t = np.linspace(0, 1, 33)
            ras = np.concatenate([r0 + (r1 - r0) * t, np.full(33, r1), r1 - (r1 - r0) * t, np.full(33, r0)])
            decs = np.concatenate([np.full(33, d0), d0 + (d1 - d0) * t, np.full(33, d1), d1 - (d1 - d0) * t])
        xi, eta = sky_to_tangent(ras, decs, ctr_ra, ctr_dec)
        scale = c.pixel_scale_arcsec / 3600.0
        half_x = float(np.max(np.abs(xi))) / scale
        half_y = float(np.max(np.abs(eta))) / scale
        n = c.patch_inner_pixels
        npx = max(1, int(math.ceil(2.0 * half_x / n)))
        npy = max(1, int(math.ceil(2.0 * half_y / n)))
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [ctr_ra, ctr_dec]
        wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
        # FITS 1-based: the tangent point sits at the centre of the patch grid
        wcs.wcs.crpix = [0.5 * npx * n + 0.5, 0.5 * npy * n + 0.5]
        wcs.wcs.set()
        return TractInfo(
            id=int(tract_id),
            ring=ring,
            ra_range=ra_range,
            dec_range=dec_range,
            ctr_ra=ctr_ra,
            ctr_dec=ctr_dec,
            wcs=wcs,
            n_patches=(npx, npy),
            patch_inner_pixels=n,
            patch_border_pixels=c.patch_border_pixels,
        )

    def find_tract(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Id of the tract whose inner region contains each sky position (deg)."""
        ra = np.atleast_1d(np.asarray(ra, float)) % 360.0
        dec = np.atleast_1d(np.asarray(dec, float))
        ring = np.floor((dec + 90.0) / self._ring_size - 0.5).astype(int)
        out = np.empty(ra.shape, dtype=int)
        south = ring < 0
        north = ring >= self.config.num_rings
        out[south] = 0
        out[north] = self.n_tracts - 1
        mid = ~(south | north)
        if mid.any():
            r = ring[mid]
            n = np.asarray(self._n_in_ring)[r]
            k = np.floor(((ra[mid] - self.config.ra_start_deg) % 360.0) / (360.0 / n)).astype(int) % n
            out[mid] = self._first_id[r] + k
        return out

    def tracts_overlapping(self, ra: Iterable[float], dec: Iterable[float]) -> list[int]:
        """Tracts whose (overlap-grown) grid may cover a small region given by its corner points (deg)."""
        ra_a, dec_a = np.asarray(list(ra), float), np.asarray(list(dec), float)
        ctr_ra, ctr_dec = _mean_position(ra_a, dec_a)
        # sample the region densely enough, then add every tract near a sample (overlap margin)
        xi, eta = sky_to_tangent(ra_a, dec_a, ctr_ra, ctr_dec)
        ov = self.config.tract_overlap_deg
        candidates: set[int] = set()
        for fx in np.linspace(xi.min() - ov, xi.max() + ov, 7):
            for fy in np.linspace(eta.min() - ov, eta.max() + ov, 7):
                r, d = tangent_to_sky(np.array([fx]), np.array([fy]), ctr_ra, ctr_dec)
                candidates.update(int(t) for t in self.find_tract(r, d))
        result = []
        for t in sorted(candidates):
            info = self.tract(t)
            x, y = info.sky_to_pixel(ra_a, dec_a)
            ny, nx = info.shape
            b = info.patch_border_pixels
            if x.max() >= -b and x.min() <= nx + b and y.max() >= -b and y.min() <= ny + b:
                result.append(t)
        return result

    def max_patches(self) -> tuple[int, int]:
        """Largest patch grid of any tract (one tract per ring suffices: a ring's tracts are alike)."""
        ids = [0, self.n_tracts - 1, *[int(i) for i in self._first_id[:-1]]]
        shapes = [self.tract(i).n_patches for i in ids]
        return max(s[0] for s in shapes), max(s[1] for s in shapes)


def _mean_position(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    v = np.stack(
        [
            np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
            np.cos(np.radians(dec)) * np.sin(np.radians(ra)),
            np.sin(np.radians(dec)),
        ],
        axis=-1,
    ).mean(axis=0)
    v /= np.linalg.norm(v)
    return float(np.degrees(np.arctan2(v[1], v[0])) % 360.0), float(np.degrees(np.arcsin(v[2])))
