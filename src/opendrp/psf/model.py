"""A spatially varying, pixel-sampled PSF model (PSFEx-like).

The PSF at pixel position (x, y) is ``sum_k c_k(x, y) * basis[k]`` where the ``c_k`` are the monomials
``u**i * v**j`` (``i + j <= degree``) of the position normalized to [-1, 1] over the CCD.  Each basis image is
sampled at the native pixel scale and centred on its central pixel; the model is normalized to unit sum.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from scipy import ndimage

__all__ = ["PixelPsf", "PsfModel", "monomial_terms", "shift_image"]


def monomial_terms(degree: int) -> list[tuple[int, int]]:
    """Exponents ``(i, j)`` of ``u**i * v**j`` with ``i + j <= degree``, in a fixed order."""
    return [(i, t - i) for t in range(degree + 1) for i in range(t, -1, -1)]


def shift_image(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift an image by a sub-pixel offset (cubic spline interpolation, zero outside)."""
    if dx == 0.0 and dy == 0.0:
        return image.copy()
    return ndimage.shift(image, (dy, dx), order=3, mode="constant", cval=0.0, prefilter=True)


class PsfModel:
    """What every PSF model offers: a unit-sum kernel image at a position, and what follows from it."""

    def kernel_image(self, x: float, y: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def image_at(self, x: float, y: float) -> tuple[np.ndarray, int, int]:
        """The PSF at (x, y) shifted to the sub-pixel position, as a stamp.

        Returns
        -------
        stamp : `numpy.ndarray`
            PSF image (unit sum) whose centroid falls at ``(x - x0, y - y0)`` in stamp pixels.
        x0, y0 : `int`
            Pixel coordinates of the stamp's lower-left pixel in the parent image.
        """
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        stamp = shift_image(self.kernel_image(x, y), x - ix, y - iy)
        half = self.size // 2
        return stamp, ix - half, iy - half

    def moments(self, x: float, y: float) -> tuple[float, float, float]:
        """Unweighted second moments ``(Ixx, Iyy, Ixy)`` in pixels**2 of the kernel at (x, y)."""
        img = self.kernel_image(x, y)
        half = self.size // 2
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
        w = np.exp(-0.5 * (xx**2 + yy**2) / (0.4 * half) ** 2)  # tame the noisy wings
        f = img * w
        s = f.sum()
        cx, cy = (f * xx).sum() / s, (f * yy).sum() / s
        ixx = (f * (xx - cx) ** 2).sum() / s
        iyy = (f * (yy - cy) ** 2).sum() / s
        ixy = (f * (xx - cx) * (yy - cy)).sum() / s
        return float(ixx), float(iyy), float(ixy)

    def fwhm_pixels(self, x: float, y: float) -> float:
        """FWHM (pixels) from the half-maximum area of the kernel at (x, y)."""
        img = self.kernel_image(x, y)
        peak = img.max()
        # area above half maximum, refined by a linear ramp of partially covered pixels
        area = float(np.count_nonzero(img >= 0.5 * peak))
        return float(2.0 * np.sqrt(area / np.pi))

    def to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:  # pragma: no cover - abstract
        raise NotImplementedError


class PixelPsf(PsfModel):
    """Pixel-basis PSF with polynomial spatial variation.

    Parameters
    ----------
    basis : `numpy.ndarray`, shape ``(n_terms, size, size)``
        Basis images, ``size`` odd, centred on pixel ``size // 2``.
    degree : `int`
        Degree of the spatial polynomial; ``n_terms == (degree + 1) * (degree + 2) // 2``.
    x_range, y_range : `tuple` [`float`, `float`]
        Pixel range mapped onto [-1, 1] (the CCD or patch extent).
    """

    def __init__(
        self,
        basis: np.ndarray,
        *,
        degree: int,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
    ) -> None:
        basis = np.asarray(basis, dtype=np.float64)
        if basis.ndim == 2:
            basis = basis[np.newaxis]
        n_terms = len(monomial_terms(degree))
        if basis.shape[0] != n_terms:
            raise ValueError(f"degree {degree} needs {n_terms} basis images, got {basis.shape[0]}")
        if basis.shape[1] != basis.shape[2] or basis.shape[1] % 2 == 0:
            raise ValueError(f"basis images must be square with odd size, got {basis.shape[1:]}")
        self.basis = basis
        self.degree = int(degree)
        self.x_range = (float(x_range[0]), float(x_range[1]))
        self.y_range = (float(y_range[0]), float(y_range[1]))

    # ------------------------------------------------------------------ construction
    @classmethod
    def gaussian(cls, sigma: float, *, size: int = 25, x_range=(0.0, 1.0), y_range=(0.0, 1.0)) -> PixelPsf:
        """A constant circular Gaussian PSF (pixel-integrated)."""
        half = size // 2
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
        img = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
        return cls(img / img.sum(), degree=0, x_range=x_range, y_range=y_range)

    # ------------------------------------------------------------------ evaluation
    @property
    def size(self) -> int:
        return int(self.basis.shape[1])

    def _coefficients(self, x: float, y: float) -> np.ndarray:
        u = 2.0 * (x - self.x_range[0]) / max(self.x_range[1] - self.x_range[0], 1e-9) - 1.0
        v = 2.0 * (y - self.y_range[0]) / max(self.y_range[1] - self.y_range[0], 1e-9) - 1.0
        return np.array([u**i * v**j for i, j in monomial_terms(self.degree)])

    def kernel_image(self, x: float, y: float) -> np.ndarray:
        """The PSF at (x, y), centred on the central pixel, normalized to unit sum."""
        img = np.tensordot(self._coefficients(x, y), self.basis, axes=1)
        total = img.sum()
        if total <= 0:
            raise ValueError(f"PSF model is not positive at ({x:.1f}, {y:.1f})")
        return img / total

    # ------------------------------------------------------------------ persistence
    def to_hdu(self, name: str = "PSF") -> fits.ImageHDU:
        hdu = fits.ImageHDU(self.basis.astype(np.float64), name=name)
        hdu.header["PSFTYPE"] = ("PixelPsf", "openDRP pixel-basis PSF")
        hdu.header["PSFDEG"] = (self.degree, "degree of the spatial polynomial")
        hdu.header["PSFX0"], hdu.header["PSFX1"] = self.x_range
        hdu.header["PSFY0"], hdu.header["PSFY1"] = self.y_range
        return hdu

    def to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        return [self.to_hdu("PSF")]

    @classmethod
    def from_hdu(cls, hdu: fits.ImageHDU) -> PixelPsf:
        h = hdu.header
        return cls(
            np.asarray(hdu.data, dtype=np.float64),
            degree=int(h["PSFDEG"]),
            x_range=(float(h["PSFX0"]), float(h["PSFX1"])),
            y_range=(float(h["PSFY0"]), float(h["PSFY1"])),
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PixelPsf)
            and self.degree == other.degree
            and self.x_range == other.x_range
            and self.y_range == other.y_range
            and np.array_equal(self.basis, other.basis)
        )

    def __repr__(self) -> str:
        return f"PixelPsf(size={self.size}, degree={self.degree})"
