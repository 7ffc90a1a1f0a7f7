"""Surveyed footprint as an occupancy grid of the primary objects.

The footprint is the set of square cells (``cell_arcsec`` on a side, on the gnomonic tangent plane centred on
the mean position of the objects) that contain at least one primary object. A grid, unlike a convex hull,
follows non-convex footprints (missing patches, gaps between tracts, masked bright stars larger than a cell).
Cells cut by the edge of the survey count as fully surveyed, so completeness is slightly underestimated within
one cell of the edge; cells must be large enough to hold several objects at the survey's depth
(60 arcsec holds ~100 objects at HSC-Wide depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._match import radec_to_unit_vectors

__all__ = ["OccupancyFootprint"]


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
    def from_positions(cls, ra: ArrayLike, dec: ArrayLike, *, cell_arcsec: float) -> OccupancyFootprint:
        """Build the footprint from object positions (deg); non-finite positions are ignored."""
        xyz = radec_to_unit_vectors(ra, dec)
        xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
        if xyz.shape[0] == 0:
            return cls(np.array([1.0, 0.0, 0.0]), cell_arcsec, np.zeros(0, np.int64))
        mean = xyz.mean(axis=0)
        norm = np.linalg.norm(mean)
        center = mean / norm if norm > 0 else xyz[0]
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

    def _cell_keys(self, xyz: NDArray[np.float64]) -> NDArray[np.int64]:
        # Gnomonic projection onto the plane tangent at `center`; key -1 for the far hemisphere / NaN.
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
        ok = np.isfinite(x) & np.isfinite(y) & (w > 0.1) & (np.abs(x) < 2**30) & (np.abs(y) < 2**30)
        keys = np.full(xyz.shape[0], -1, np.int64)
        ix = np.floor(x[ok]).astype(np.int64) + 2**30
        iy = np.floor(y[ok]).astype(np.int64) + 2**30
        keys[ok] = ix * 2**31 + iy
        return keys
