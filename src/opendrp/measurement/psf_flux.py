"""PSF photometry: linear least-squares amplitude of the PSF model at fixed positions."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..psf.model import PsfModel
from .stamps import gather_stamps

__all__ = ["PsfFluxResult", "psf_flux", "psf_stamps"]


def psf_stamps(psf: PsfModel, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PSF model at each position, shifted to the sub-pixel position.

    Returns
    -------
    stamps : `numpy.ndarray`, shape ``(n, size, size)``
        Unit-sum PSF images.
    ix, iy : `numpy.ndarray` [int]
        Parent-image pixel of each stamp's central pixel.
    """
    n, size = len(x), psf.size
    out = np.empty((n, size, size))
    ix = np.empty(n, np.int64)
    iy = np.empty(n, np.int64)
    half = size // 2
    for k in range(n):
        stamp, x0, y0 = psf.image_at(float(x[k]), float(y[k]))
        out[k] = stamp
        ix[k], iy[k] = x0 + half, y0 + half
    return out, ix, iy


@dataclasses.dataclass
class PsfFluxResult:
    """PSF fluxes (image units), errors, masked/outside PSF fraction, reduced chi2, per source."""

    flux: np.ndarray
    flux_err: np.ndarray
    masked_fraction: np.ndarray  # PSF weight on unusable or off-image pixels
    chi2: np.ndarray  # reduced chi2 of the fit
    flag: np.ndarray


def psf_flux(
    image: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    stamps: np.ndarray,
    ix: np.ndarray,
    iy: np.ndarray,
    *,
    max_masked_fraction: float = 0.3,
    segmentation: np.ndarray | None = None,
    segment_ids: np.ndarray | None = None,
) -> PsfFluxResult:
    """PSF flux of each source: the amplitude of its PSF stamp fitted to the image (unweighted least squares).

    ``flux = sum(P D) / sum(P**2)`` over usable pixels, error ``sqrt(sum(P**2 V)) / sum(P**2)`` (as Rubin's
    ``base_PsfFlux``: unweighted so that bright sources are not biased by data-dependent weights).

    Parameters
    ----------
    image, variance : `numpy.ndarray`
        Background-subtracted image and its variance.
    bad : `numpy.ndarray` [bool]
        Unusable pixels (saturated, bad, no data, cosmic rays).
    stamps : `numpy.ndarray`, shape ``(n, size, size)``
        Unit-sum PSF images at the source positions, from `psf_stamps`.
    ix, iy : `numpy.ndarray` [int]
        Central pixel of each stamp in the image.
    max_masked_fraction : `float`
        Flag a source when more PSF weight than this falls on unusable or off-image pixels.
    segmentation, segment_ids : `numpy.ndarray` [int], optional
        Segmentation map and each source's segment: pixels of other segments are not used.
    """
    half = stamps.shape[1] // 2
    data, inside = gather_stamps(image, ix, iy, half, fill=0.0)
    var, _ = gather_stamps(variance, ix, iy, half, fill=0.0)
    badst, _ = gather_stamps(bad, ix, iy, half, fill=True)
    use = inside & ~badst & np.isfinite(data) & np.isfinite(var)
    if segmentation is not None and segment_ids is not None:
        sst, _ = gather_stamps(segmentation, ix, iy, half, fill=0)
        use &= (sst == 0) | (sst == np.asarray(segment_ids)[:, None, None])
    p = np.where(use, stamps, 0.0)
    d = np.where(use, data, 0.0)
    spp = (p * p).sum(axis=(1, 2))
    ok = spp > 0
    spp_safe = np.where(ok, spp, 1.0)
    flux = np.where(ok, (p * d).sum(axis=(1, 2)) / spp_safe, np.nan)
    flux_err = np.where(ok, np.sqrt((p * p * np.where(use, var, 0.0)).sum(axis=(1, 2))) / spp_safe, np.nan)
    total = stamps.sum(axis=(1, 2))
    masked = 1.0 - p.sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)
    resid = np.where(use, d - flux[:, None, None] * p, 0.0)
    vsafe = np.where(use & (var > 0), var, np.inf)
    n_use = use.sum(axis=(1, 2))
    chi2 = (resid**2 / vsafe).sum(axis=(1, 2)) / np.maximum(n_use - 1, 1)
    flag = ~ok | (masked > max_masked_fraction) | ~np.isfinite(flux) | ~np.isfinite(flux_err)
    return PsfFluxResult(flux, flux_err, masked, chi2, flag)
