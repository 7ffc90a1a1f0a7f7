"""A piecewise PSF for warps and coadds: the weighted mean of the input PSFs that cover each position.

Each input (one CCD of one visit, or one cell of it) contributes its PSF kernel in the output frame, a
weight (the coadd weight of its visit; 1 inside a warp) and its footprint, a convex polygon in the output's
pixel coordinates.  At a position the PSF is ``sum_i w_i K_i / sum_i w_i`` over the inputs whose footprint
contains it, which is the PSF of a weighted-mean coadd there (Rubin's CoaddPsf does the same):
`kernel_image`.

Where an input starts or stops within a star's stamp (a CCD edge, a chip gap, a dither's border), the
coadd's pixels hold different sets of inputs and no single kernel describes the star: a star 5 pixels
inside one of three inputs' edges is a mixture in which that input is present on one side and absent on the
other.  `image_at` (the stamp used for PSF photometry and PSF moments) therefore evaluates the mixture per
*pixel*: ``P(p) = sum_i w_i c_i(p) K_i(p - x) / sum_i w_i c_i(p)`` with ``c_i(p)`` = 1 where pixel ``p``
lies in input ``i``'s footprint and ``K_i`` shifted to the star's sub-pixel position: exactly the image a
point source of unit flux makes in the weighted-mean coadd.  ``P`` is not renormalized (its sum is the
fraction of a unit flux the coadd holds in the stamp); pixels no input covers are 0.  Stamps that no
footprint edge crosses take the fast path (one mixture kernel, then one shift), identical there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.io import fits

from .model import PixelPsf, PsfModel, shift_image

__all__ = ["CoaddPsf", "pad_kernel", "psf_from_hdul"]


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (or crop) a centred odd-sized kernel to ``size`` x ``size``."""
    n = kernel.shape[0]
    if n == size:
        return kernel
    out = np.zeros((size, size), dtype=np.float64)
    if n < size:
        o = (size - n) // 2
        out[o : o + n, o : o + n] = kernel
    else:
        o = (n - size) // 2
        out[:] = kernel[o : o + size, o : o + size]
    return out


def _inside_convex(polygon: np.ndarray, x: float, y: float) -> bool:
    """Whether (x, y) lies inside a convex polygon given as (k, 2) vertices in either orientation."""
    px, py = polygon[:, 0], polygon[:, 1]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    cross = (qx - px) * (y - py) - (qy - py) * (x - px)
    return bool(np.all(cross >= 0) or np.all(cross <= 0))


class CoaddPsf(PsfModel):
    """Weighted mean of input PSF kernels over the inputs covering a position.

    Parameters
    ----------
    kernels : `numpy.ndarray`, shape ``(n, size, size)``
        Unit-sum kernels of the inputs, in the output pixel frame, centred.
    weights : `numpy.ndarray`, shape ``(n,)``
        Weights of the inputs.
    polygons : sequence of ``(k, 2)`` arrays
        Footprint of each input in output pixel coordinates (x, y), convex.
    """

    def __init__(self, kernels: np.ndarray, weights: np.ndarray, polygons: Sequence[np.ndarray]) -> None:
        kernels = np.asarray(kernels, dtype=np.float64)
        if kernels.ndim != 3 or kernels.shape[0] == 0:
            raise ValueError("CoaddPsf needs at least one kernel, shape (n, size, size)")
        self.kernels = kernels / kernels.sum(axis=(1, 2), keepdims=True)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
        if not (len(self.weights) == len(self.polygons) == kernels.shape[0]):
            raise ValueError("kernels, weights and polygons must have the same length")
        self._boxes = np.array(
            [[p[:, 0].min(), p[:, 0].max(), p[:, 1].min(), p[:, 1].max()] for p in self.polygons]
        ).reshape(-1, 4)

    @classmethod
    def combine(cls, parts: Sequence[tuple[PsfModel, float]]) -> CoaddPsf:
        """Combine piecewise PSFs (e.g. the warps of a coadd), each scaled by a weight."""
        kernels: list[np.ndarray] = []
        weights: list[float] = []
        polygons: list[np.ndarray] = []
        for psf, w in parts:
            if isinstance(psf, CoaddPsf):
                kernels.extend(psf.kernels)
                weights.extend(psf.weights * w)
                polygons.extend(psf.polygons)
            else:
                raise TypeError(f"cannot combine a {type(psf).__name__}; build a CoaddPsf per input first")
        size = max(k.shape[0] for k in kernels)
        return cls(np.array([pad_kernel(k, size) for k in kernels]), np.array(weights), polygons)

    @property
    def size(self) -> int:
        return int(self.kernels.shape[1])

    def covering(self, x: float, y: float) -> np.ndarray:
        """Indices of the inputs whose footprint contains (x, y)."""
        return np.array([i for i, p in enumerate(self.polygons) if _inside_convex(p, x, y)], dtype=int)

    def _inside_grid(self, i: int, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        """Boolean grid: which of the points (gx, gy) lie inside input ``i``'s footprint."""
        p = self.polygons[i]
        px, py = p[:, 0], p[:, 1]
        qx, qy = np.roll(px, -1), np.roll(py, -1)
        cross = (qx - px)[:, None, None] * (gy[None] - py[:, None, None]) - (qy - py)[:, None, None] * (
            gx[None] - px[:, None, None]
        )
        return np.all(cross >= 0, axis=0) | np.all(cross <= 0, axis=0)

    def image_at(self, x: float, y: float) -> tuple[np.ndarray, int, int]:
        """The PSF stamp of a point source at (x, y), per pixel where footprints cross it (module notes)."""
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        half = self.size // 2
        x0, y0 = ix - half, iy - half
        offs = np.arange(self.size, dtype=np.float64)
        gx, gy = np.meshgrid(x0 + offs, y0 + offs)
        masks: list[tuple[int, np.ndarray]] = []
        crossed = False
        lo_x, hi_x, lo_y, hi_y = x0, x0 + self.size - 1, y0, y0 + self.size - 1
        cx = np.array([[lo_x, hi_x], [lo_x, hi_x]], np.float64)
        cy = np.array([[lo_y, lo_y], [hi_y, hi_y]], np.float64)
        for i in range(len(self.weights)):
            if self.weights[i] <= 0:
                continue
            box = self._boxes[i]
            if box[0] > hi_x or box[1] < lo_x or box[2] > hi_y or box[3] < lo_y:
                continue  # the footprint's bounding box misses the stamp
            if self._inside_grid(i, cx, cy).all():  # convex: the 4 corners inside, all of it inside
                masks.append((i, np.ones(gx.shape, bool)))
                continue
            inside = self._inside_grid(i, gx, gy)
            if inside.any():
                masks.append((i, inside))
                crossed |= not inside.all()
        if not crossed:
            return super().image_at(x, y)
        num = np.zeros((self.size, self.size))
        den = np.zeros((self.size, self.size))
        for i, inside in masks:
            shifted = shift_image(self.kernels[i], x - ix, y - iy)
            w = self.weights[i] * inside
            num += w * shifted
            den += w
        stamp = np.zeros_like(num)
        np.divide(num, den, out=stamp, where=den > 0)
        return stamp, x0, y0

    def kernel_image(self, x: float, y: float) -> np.ndarray:
        idx = self.covering(x, y)
        if idx.size == 0:  # off every input (e.g. a patch corner): fall back to all inputs
            idx = np.arange(len(self.weights))
        w = self.weights[idx]
        if w.sum() <= 0:
            w = np.ones_like(w)
        img = np.tensordot(w, self.kernels[idx], axes=1)
        return img / img.sum()

    def to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        kern = fits.ImageHDU(self.kernels, name="PSF")
        kern.header["PSFTYPE"] = ("CoaddPsf", "openDRP piecewise coadd PSF")
        nv = max(len(p) for p in self.polygons)
        verts = np.full((len(self.polygons), nv, 2), np.nan)
        for i, p in enumerate(self.polygons):
            verts[i, : len(p)] = p
        cols = [
            fits.Column(name="weight", format="D", array=self.weights),
            fits.Column(name="polygon", format=f"{2 * nv}D", dim=f"(2,{nv})", array=verts),
        ]
        return [kern, fits.BinTableHDU.from_columns(cols, name="PSF_INPUTS")]

    @classmethod
    def from_hdul(cls, hdul: fits.HDUList) -> CoaddPsf:
        data = hdul["PSF_INPUTS"].data
        polys = []
        for v in np.asarray(data["polygon"], dtype=np.float64):
            v = v.reshape(-1, 2)
            polys.append(v[np.isfinite(v[:, 0])])
        return cls(np.asarray(hdul["PSF"].data, dtype=np.float64), np.asarray(data["weight"]), polys)

    def __repr__(self) -> str:
        return f"CoaddPsf(n_inputs={len(self.weights)}, size={self.size})"


def psf_from_hdul(hdul: fits.HDUList) -> PsfModel | None:
    """Read whichever PSF model a FITS file holds (None when it has none)."""
    if "PSF" not in hdul:
        return None
    kind = hdul["PSF"].header.get("PSFTYPE", "PixelPsf")
    if kind == "CoaddPsf":
        return CoaddPsf.from_hdul(hdul)
    return PixelPsf.from_hdu(hdul["PSF"])
