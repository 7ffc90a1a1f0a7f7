"""Background model: a mesh of sigma-clipped sky levels, interpolated with a bicubic spline.

Stored separately from the image (dataset ``calexpBackground``) so that it can be added back.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from scipy import interpolate

__all__ = ["BackgroundModel", "estimate_background"]


class BackgroundModel:
    """Background on a regular mesh of ``bin_size`` x ``bin_size`` pixel cells.

    Parameters
    ----------
    mesh : `numpy.ndarray`
        Sky level per cell, shape ``(ny_cells, nx_cells)``.
    bin_size : `int`
        Cell size in pixels.
    shape : `tuple` [`int`, `int`]
        Shape ``(ny, nx)`` of the image the model covers.
    """

    def __init__(self, mesh: np.ndarray, *, bin_size: int, shape: tuple[int, int]) -> None:
        self.mesh = np.asarray(mesh, dtype=np.float64)
        self.bin_size = int(bin_size)
        self.shape = (int(shape[0]), int(shape[1]))

    def _centres(self, n_cells: int, n_pix: int) -> np.ndarray:
        edges = np.linspace(0, n_pix, n_cells + 1)
        return 0.5 * (edges[:-1] + edges[1:]) - 0.5

    def evaluate(self) -> np.ndarray:
        """The background image, float32, of ``shape``."""
        ny_c, nx_c = self.mesh.shape
        yc = self._centres(ny_c, self.shape[0])
        xc = self._centres(nx_c, self.shape[1])
        if ny_c == 1 and nx_c == 1:
            return np.full(self.shape, self.mesh[0, 0], dtype=np.float32)
        ky, kx = min(3, ny_c - 1), min(3, nx_c - 1)
        if ky == 0 or kx == 0:  # a single row or column of cells: interpolate along the other axis
            line = self.mesh.ravel()
            centres = xc if ky == 0 else yc
            n = self.shape[1] if ky == 0 else self.shape[0]
            prof = np.interp(np.arange(n), centres, line)
            out = np.broadcast_to(prof[np.newaxis, :] if ky == 0 else prof[:, np.newaxis], self.shape)
            return np.ascontiguousarray(out, dtype=np.float32)
        spline = interpolate.RectBivariateSpline(yc, xc, self.mesh, kx=ky, ky=kx)  # kx: first axis (y)
        y = np.arange(self.shape[0], dtype=float)
        x = np.arange(self.shape[1], dtype=float)
        return spline(y, x).astype(np.float32)

    def to_hdu(self, name: str = "BACKGROUND") -> fits.ImageHDU:
        hdu = fits.ImageHDU(self.mesh, name=name)
        hdu.header["BKGBIN"] = (self.bin_size, "cell size (pixels)")
        hdu.header["BKGNY"], hdu.header["BKGNX"] = self.shape
        return hdu

    @classmethod
    def from_hdu(cls, hdu: fits.ImageHDU) -> BackgroundModel:
        h = hdu.header
        return cls(np.asarray(hdu.data), bin_size=int(h["BKGBIN"]), shape=(int(h["BKGNY"]), int(h["BKGNX"])))

    def __add__(self, other: BackgroundModel) -> BackgroundModel:
        if self.mesh.shape != other.mesh.shape or self.shape != other.shape:
            raise ValueError("background models with different meshes cannot be added")
        return BackgroundModel(self.mesh + other.mesh, bin_size=self.bin_size, shape=self.shape)


def estimate_background(
    image: np.ndarray,
    *,
    bad: np.ndarray | None = None,
    bin_size: int = 128,
    n_sigma: float = 3.0,
    n_iter: int = 3,
    subsample: int = 1,
) -> BackgroundModel:
    """Estimate a smooth background: per-cell sigma-clipped mode estimate (2.5 median - 1.5 mean).

    Parameters
    ----------
    image : `numpy.ndarray`
        The image (counts).
    bad : `numpy.ndarray` [`bool`], optional
        Pixels to ignore (detected sources, saturated, bad).
    bin_size : `int`
        Cell size in pixels; the last cells absorb the remainder of the image.
    subsample : `int`
        Use every ``subsample``-th pixel in x and y of each cell (2 is 4x faster; a 128-pixel cell still
        has 4096 samples, so the sky level's statistical error grows only from 0.8% to 1.6% of the noise).
    """
    step = max(1, int(subsample))
    ny, nx = image.shape
    ny_c = max(1, int(round(ny / bin_size)))
    nx_c = max(1, int(round(nx / bin_size)))
    ye = np.linspace(0, ny, ny_c + 1).astype(int)
    xe = np.linspace(0, nx, nx_c + 1).astype(int)
    mesh = np.full((ny_c, nx_c), np.nan)
    for j in range(ny_c):
        for i in range(nx_c):
            cell = image[ye[j] : ye[j + 1] : step, xe[i] : xe[i + 1] : step]
            if bad is not None:
                vals = cell[~bad[ye[j] : ye[j + 1] : step, xe[i] : xe[i + 1] : step]]
            else:
                vals = cell.ravel()
            vals = vals[np.isfinite(vals)]
            if vals.size < 20:
                continue
            for _ in range(n_iter):
                med = np.median(vals)
                sig = 1.4826 * np.median(np.abs(vals - med))
                keep = np.abs(vals - med) < n_sigma * max(sig, 1e-12)
                if keep.all():
                    break
                vals = vals[keep]
            med, mean = np.median(vals), np.mean(vals)
            # SExtractor's mode estimate, falling back to the median for skewed cells
            sig = np.std(vals)
            mesh[j, i] = 2.5 * med - 1.5 * mean if abs(mean - med) < 0.3 * sig else med
    if np.all(np.isnan(mesh)):
        mesh[:] = float(np.nanmedian(image))
    elif np.any(np.isnan(mesh)):
        mesh[np.isnan(mesh)] = float(np.nanmedian(mesh))
    return BackgroundModel(mesh, bin_size=bin_size, shape=(ny, nx))
