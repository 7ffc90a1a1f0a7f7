"""Fitting a `PixelPsf` to stars (PSFEx-like, with a pixel basis and polynomial spatial variation).

Each star's stamp is re-centred on its centroid (sub-pixel shift by cubic-spline interpolation), divided by
its flux, and every pixel of the model is fitted as a polynomial in the star position by weighted linear least
squares.  Iterations re-fit the star fluxes with the model, reject discrepant pixels (cosmic rays, neighbours)
and discrepant stars (binaries, galaxies, variable stars).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..image import mask_bit
from .model import PixelPsf, monomial_terms

__all__ = ["PsfFitResult", "fit_psf", "min_stars_for_degree"]


@dataclasses.dataclass
class PsfFitResult:
    """The fitted PSF and the fate of each candidate star."""

    psf: PixelPsf
    used: np.ndarray  # bool per input star: kept in the final fit
    chi2: np.ndarray  # per star: mean squared normalized residual
    flux: np.ndarray  # per star: fitted flux within the model stamp (image units)
    n_used: int


def min_stars_for_degree(degree: int, *, stars_per_term: float = 3.0) -> int:
    """Fewest stars to constrain a spatial polynomial of ``degree`` (``stars_per_term`` per coefficient)."""
    return max(2, int(np.ceil(stars_per_term * len(monomial_terms(degree)))))


def _design(
    x: np.ndarray, y: np.ndarray, degree: int, xr: tuple[float, float], yr: tuple[float, float]
) -> np.ndarray:
    u = 2.0 * (x - xr[0]) / max(xr[1] - xr[0], 1e-9) - 1.0
    v = 2.0 * (y - yr[0]) / max(yr[1] - yr[0], 1e-9) - 1.0
    return np.stack([u**i * v**j for i, j in monomial_terms(degree)], axis=1)


def _extract(
    image: np.ndarray,
    variance: np.ndarray,
    usable: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-centred stamps, variances and validity (``size`` x ``size``) of each star."""
    n = len(x)
    half = size // 2
    pad = 3  # margin for the interpolation kernel
    big = half + pad
    ny, nx = image.shape
    offs = np.arange(-big, big + 1)
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    yy = iy[:, None, None] + offs[None, :, None]
    xx = ix[:, None, None] + offs[None, None, :]
    inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    yc, xc = np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)
    data = np.where(inside, image[yc, xc].astype(np.float64), 0.0)
    var = np.where(inside, variance[yc, xc].astype(np.float64), np.inf)
    ok = inside & usable[yc, xc] & np.isfinite(data) & np.isfinite(var) & (var > 0)
    data = np.where(ok, data, 0.0)
    stamps = np.empty((n, size, size))
    vars_ = np.empty((n, size, size))
    valid = np.empty((n, size, size), bool)
    crop = slice(pad, pad + size)
    for k in range(n):
        dx, dy = ix[k] - x[k], iy[k] - y[k]
        s = ndimage.shift(data[k], (dy, dx), order=3, mode="constant", cval=0.0, prefilter=True)
        v = ndimage.shift(np.where(ok[k], var[k], 0.0), (dy, dx), order=1, mode="constant", cval=0.0)
        # a pixel is valid only if the whole interpolation support was valid
        bad_near = ndimage.binary_dilation(~ok[k], iterations=2)
        g = ndimage.shift((~bad_near).astype(float), (dy, dx), order=1, mode="constant", cval=0.0) > 0.999
        stamps[k], vars_[k], valid[k] = s[crop, crop], v[crop, crop], g[crop, crop]
    valid &= vars_ > 0
    return stamps, np.where(valid, vars_, np.inf), valid


def _solve(design: np.ndarray, data: np.ndarray, weight: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """Per-pixel weighted least squares: returns basis ``(n_terms, size, size)``."""
    n, size, _ = data.shape
    d = data.reshape(n, -1)
    w = weight.reshape(n, -1)
    ata = np.einsum("sp,sk,sl->pkl", w, design, design)
    atb = np.einsum("sp,sk->pk", w * d, design)
    scale = np.trace(ata, axis1=1, axis2=2) / design.shape[1]
    ata = ata + (ridge * np.maximum(scale, 1e-30))[:, None, None] * np.eye(design.shape[1])[None]
    coef = np.linalg.solve(ata, atb[..., None])[..., 0]
    return coef.T.reshape(design.shape[1], size, size)


def fit_psf(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    size: int = 25,
    degree: int = 2,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    n_iter: int = 4,
    pixel_clip: float = 5.0,
    star_clip: float = 4.0,
    model_error: float = 0.03,
    bad_mask_planes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "CR"),
    segmentation: np.ndarray | None = None,
    segment_ids: np.ndarray | None = None,
) -> PsfFitResult:
    """Fit a spatially varying pixel-basis PSF to stars.

    Parameters
    ----------
    image, variance : `numpy.ndarray`
        Background-subtracted image and its variance.
    mask : `numpy.ndarray` [int]
        Mask planes; ``bad_mask_planes`` pixels are not used.
    x, y : `numpy.ndarray`
        Star centroids (pixels); the model is centred on them.
    size : `int`
        Model stamp size (pixels, odd).
    degree : `int`
        Degree of the spatial polynomial (lowered automatically when stars are too few for it).
    x_range, y_range : `tuple`, optional
        Pixel ranges mapped onto [-1, 1] (default: the image extent).
    n_iter : `int`
        Fit / re-flux / reject iterations.
    pixel_clip : `float`
        Reject pixels whose residual exceeds this many sigma (noise plus ``model_error`` x model).
    star_clip : `float`
        Reject stars whose chi2 exceeds the median by this many robust standard deviations.
    model_error : `float`
        Fractional model uncertainty added to the noise when clipping.
    segmentation, segment_ids : `numpy.ndarray`, optional
        Detection segmentation map and the stars' segment ids: other segments' pixels are not used.

    Returns
    -------
    `PsfFitResult`

    Raises
    ------
    ValueError
        With fewer than two usable stars.
    """
    if size % 2 == 0:
        raise ValueError(f"PSF size must be odd, got {size}")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ny, nx = image.shape
    xr = x_range if x_range is not None else (0.0, float(nx - 1))
    yr = y_range if y_range is not None else (0.0, float(ny - 1))
    usable = (np.asarray(mask) & mask_bit(*bad_mask_planes)) == 0
    stamps, var, valid = _extract(np.asarray(image), np.asarray(variance), usable, x, y, size)
    if segmentation is not None and segment_ids is not None:
        from ..measurement.stamps import gather_stamps

        sst, _ = gather_stamps(segmentation, np.rint(x).astype(int), np.rint(y).astype(int), size // 2)
        valid &= (sst == 0) | (sst == np.asarray(segment_ids)[:, None, None])
    n = len(x)
    candidate = valid.sum(axis=(1, 2)) > 0.5 * size * size
    flux = np.where(valid, stamps, 0.0).sum(axis=(1, 2))
    candidate &= flux > 0
    # robust start: the median normalized star (a constant model) to clip gross outliers (cosmic rays,
    # trails, neighbours) before the first polynomial fit
    pix_ok = valid.copy()
    if candidate.sum() >= 3:
        norm0 = np.where(valid, stamps, np.nan) / np.where(candidate, flux, 1.0)[:, None, None]
        med = np.nanmedian(norm0[candidate], axis=0)
        med = np.where(np.isfinite(med), np.maximum(med, 0.0), 0.0)
        med /= max(med.sum(), 1e-12)
        wv = np.where(valid, 1.0 / var, 0.0)
        f0 = (wv * stamps * med).sum(axis=(1, 2)) / np.maximum((wv * med * med).sum(axis=(1, 2)), 1e-300)
        chi0 = (stamps - f0[:, None, None] * med) / np.sqrt(var + (0.3 * f0[:, None, None] * med) ** 2)
        pix_ok = valid & (np.abs(chi0) < 2 * pixel_clip)
        flux = np.where(candidate & (f0 > 0), f0, flux)
    used = candidate.copy()
    while degree > 0 and used.sum() < min_stars_for_degree(degree):
        degree -= 1
    if used.sum() < 2:
        raise ValueError(f"{int(used.sum())} usable PSF stars; at least 2 are needed")
    design = _design(x, y, degree, xr, yr)
    chi2 = np.zeros(n)
    basis = np.zeros((design.shape[1], size, size))
    for it in range(n_iter + 1):
        f = np.where(used, flux, 1.0)
        norm = stamps / f[:, None, None]
        w = np.where(pix_ok & used[:, None, None], f[:, None, None] ** 2 / var, 0.0)
        basis = _solve(design[used], norm[used], w[used])
        model = np.einsum("sk,kpq->spq", design, basis)
        model /= np.maximum(model.sum(axis=(1, 2)), 1e-12)[:, None, None]
        # re-fit fluxes with the model (inverse-variance weights) and clip
        wv = np.where(pix_ok, 1.0 / var, 0.0)
        num = (wv * stamps * model).sum(axis=(1, 2))
        den = (wv * model * model).sum(axis=(1, 2))
        flux = np.where(den > 0, num / np.maximum(den, 1e-300), flux)
        resid = stamps - flux[:, None, None] * model
        sig2 = var + (model_error * flux[:, None, None] * model) ** 2
        chi = resid / np.sqrt(sig2)
        n_pix = np.maximum(pix_ok.sum(axis=(1, 2)), 1)
        chi2 = np.where(pix_ok, chi * chi, 0.0).sum(axis=(1, 2)) / n_pix
        if it == n_iter:
            break
        pix_ok = valid & (np.abs(chi) < pixel_clip)
        c_med = float(np.median(chi2[used]))
        c_mad = 1.4826 * float(np.median(np.abs(chi2[used] - c_med)))
        reject = (chi2 > c_med + star_clip * max(c_mad, 1e-3 * c_med)) & (chi2 > 1.5 * c_med)
        new_used = candidate & ~reject & (flux > 0)
        if new_used.sum() >= max(2, min_stars_for_degree(degree) // 2):
            used = new_used
    psf = PixelPsf(basis, degree=degree, x_range=xr, y_range=yr)
    return PsfFitResult(psf=psf, used=used, chi2=chi2, flux=flux, n_used=int(used.sum()))
