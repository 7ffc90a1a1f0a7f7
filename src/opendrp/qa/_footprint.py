"""Surveyed footprint as an occupancy grid of the primary objects.

The footprint is the set of square cells (``cell_arcsec`` on a side, on the gnomonic tangent plane centred on
the mean position of the objects) that contain at least one primary object. A grid, unlike a convex hull,
follows non-convex footprints (missing patches, gaps between tracts, masked bright stars larger than a cell).
Cells cut by the edge of the survey count as fully surveyed, so completeness is slightly underestimated
within one cell of the edge. Cells must be large enough to hold several objects at the survey's depth,
otherwise empty cells (holes) drop undetected truth sources and bias completeness high. By default the cell
size is chosen so that a cell holds ``objects_per_cell`` (10) objects on average (density estimated over the
bounding box of the objects, which underestimates it for irregular footprints, the safe side):
P(hole) ~ exp(-10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..astrometry.tangent import sky_to_tangent, tangent_to_sky
from ._match import radec_to_unit_vectors

__all__ = ["OccupancyFootprint", "PolygonFootprint"]


@dataclass(frozen=True)
class OccupancyFootprint:
    """Cells of a tangent-plane grid occupied by at least one object.

    Parameters
    ----------
    center : `numpy.ndarray`, shape (3,)
        Unit vector of the tangent point.
    cell_arcsec : `float`
        Cell size (arcsec).
    keys : `numpy.ndarray`
        Sorted unique integer keys of the occupied cells.
    """

    center: NDArray[np.float64]
    cell_arcsec: float
    keys: NDArray[np.int64]

    @classmethod
    def from_positions(
        cls,
        ra: ArrayLike,
        dec: ArrayLike,
        *,
        cell_arcsec: float | None = None,
        objects_per_cell: float = 10.0,
        min_cell_arcsec: float = 20.0,
        max_cell_arcsec: float = 900.0,
    ) -> OccupancyFootprint:
        """Build the footprint from object positions (deg); non-finite positions are ignored.

        Parameters
        ----------
        ra, dec : array_like
            Positions of the (primary) objects (deg).
        cell_arcsec : `float`, optional
            Cell size (arcsec); by default chosen for ``objects_per_cell`` objects per cell on average,
            within [``min_cell_arcsec``, ``max_cell_arcsec``].
        """
        xyz = radec_to_unit_vectors(ra, dec)
        xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
        if xyz.shape[0] == 0:
            return cls(
                np.array([1.0, 0.0, 0.0]), float(cell_arcsec or max_cell_arcsec), np.zeros(0, np.int64)
            )
        mean = xyz.mean(axis=0)
        norm = np.linalg.norm(mean)
        center = mean / norm if norm > 0 else xyz[0]
        if cell_arcsec is None:
            # Density over the bounding box on the tangent plane, in 1-arcsec "cells".
            unit = cls(center, 1.0, np.zeros(0, np.int64))
            x, y = unit._project(xyz)
            fin = np.isfinite(x) & np.isfinite(y)
            area = max(float(np.ptp(x[fin]) * np.ptp(y[fin])), 1.0) if fin.any() else 1.0
            cell_arcsec = float(
                np.clip(np.sqrt(objects_per_cell * area / xyz.shape[0]), min_cell_arcsec, max_cell_arcsec)
            )
        fp = cls(center, float(cell_arcsec), np.zeros(0, np.int64))
        keys = fp._cell_keys(xyz)
        return cls(center, float(cell_arcsec), np.unique(keys[keys >= 0]))

    @property
    def area_deg2(self) -> float:
        """Area of the occupied cells (deg^2)."""
        return float(self.keys.size * (self.cell_arcsec / 3600.0) ** 2)

    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray[np.bool_]:
        """Whether each position (deg) falls in an occupied cell."""
        xyz = radec_to_unit_vectors(ra, dec)
        keys = self._cell_keys(xyz)
        return (keys >= 0) & np.isin(keys, self.keys)

    def _project(self, xyz: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Gnomonic projection onto the plane tangent at `center`, in cell units; NaN on the far side."""
        c = self.center
        east = np.cross([0.0, 0.0, 1.0], c)
        if np.linalg.norm(east) < 1e-12:  # tangent point at a pole
            east = np.array([0.0, 1.0, 0.0])
        east /= np.linalg.norm(east)
        north = np.cross(c, east)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = xyz @ c
            x = np.degrees((xyz @ east) / w) * 3600.0 / self.cell_arcsec
            y = np.degrees((xyz @ north) / w) * 3600.0 / self.cell_arcsec
        far = ~(w > 0.1)
        x[far] = np.nan
        y[far] = np.nan
        return x, y

    def _cell_keys(self, xyz: NDArray[np.float64]) -> NDArray[np.int64]:
        # Key -1 for the far hemisphere / NaN.
        x, y = self._project(xyz)
        ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < 2**30) & (np.abs(y) < 2**30)
        keys = np.full(xyz.shape[0], -1, np.int64)
        ix = np.floor(x[ok]).astype(np.int64) + 2**30
        iy = np.floor(y[ok]).astype(np.int64) + 2**30
        keys[ok] = ix * 2**31 + iy
        return keys


@dataclass(frozen=True)
class PolygonFootprint:
    """The surveyed footprint as a union of convex sky polygons (e.g. the outlines of the processed CCDs).

    Parameters
    ----------
    polygons : sequence of ``(ra, dec)`` array pairs
        Vertices (deg) of each convex polygon, in order around it.
    """

    polygons: tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]

    #: not a grid: no cell size
    cell_arcsec = float("nan")

    @classmethod
    def from_polygons(cls, polygons: list[tuple[ArrayLike, ArrayLike]]) -> PolygonFootprint:
        return cls(tuple((np.asarray(r, float), np.asarray(d, float)) for r, d in polygons))

    @staticmethod
    def _centre(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> tuple[float, float]:
        v = radec_to_unit_vectors(ra, dec).mean(axis=0)
        v /= np.linalg.norm(v)
        return float(np.degrees(np.arctan2(v[1], v[0]))), float(np.degrees(np.arcsin(v[2])))

    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray[np.bool_]:
        """Whether each position (deg) lies inside at least one polygon."""
        ra_a, dec_a = np.asarray(ra, float), np.asarray(dec, float)
        inside = np.zeros(ra_a.shape, bool)
        for pra, pdec in self.polygons:
            ra0, dec0 = self._centre(pra, pdec)
            px, py = sky_to_tangent(pra, pdec, ra0, dec0)
            # only points within 10 deg of the polygon: the gnomonic projection folds the far side onto it
            centre = radec_to_unit_vectors(np.array([ra0]), np.array([dec0]))[0]
            near = radec_to_unit_vectors(ra_a, dec_a) @ centre > np.cos(np.radians(10.0))
            with np.errstate(invalid="ignore", divide="ignore"):
                x, y = sky_to_tangent(ra_a, dec_a, ra0, dec0)
            qx, qy = np.roll(px, -1), np.roll(py, -1)
            cross = (qx - px)[:, None] * (y - py[:, None]) - (qy - py)[:, None] * (x - px[:, None])
            inside |= near & (np.all(cross >= 0, axis=0) | np.all(cross <= 0, axis=0))
        return inside

    @property
    def area_deg2(self) -> float:
        """Area of the union (deg^2), by Monte Carlo over the polygons' bounding box (~0.5% precision)."""
        if not self.polygons:
            return 0.0
        ra = np.concatenate([p[0] for p in self.polygons])
        dec = np.concatenate([p[1] for p in self.polygons])
        ra0, dec0 = self._centre(ra, dec)
        x, y = sky_to_tangent(ra, dec, ra0, dec0)
        rng = np.random.default_rng(0)
        sx = rng.uniform(x.min(), x.max(), 40000)
        sy = rng.uniform(y.min(), y.max(), 40000)
        s_ra, s_dec = tangent_to_sky(sx, sy, ra0, dec0)
        frac = float(np.mean(self.contains(s_ra, s_dec)))
        return frac * float((x.max() - x.min()) * (y.max() - y.min()))
