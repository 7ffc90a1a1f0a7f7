"""Image-level verification algorithms of DRP-00-30 (visit images) and DRP-00-35 (coadds), on numpy arrays.

Every function here is pure (arrays in, numbers or arrays out) so that it can be tested on synthetic images
with injected, known effects; the case modules (`opendrp.verify.cases.visit_images`, ``.coadds``) read the
data and call them.  Rules and units:

* **Mask fractions** (`mask_plane_fractions`): fraction of the valid pixels of an image (all pixels of a
  calexp; the pixels not ``NO_DATA`` of a coadd) having each named plane set.
* **Saturation** (`raw_saturated`, `fraction_masked`): a pixel is saturated when its raw value (ADU) reaches
  its amplifier's saturation level (``AmplifierSpec.saturation`` of the camera) within 5 read-noise
  standard deviations (a pixel at full well reads the level plus read noise, clipped), mapped to assembled
  pixels through the camera's read-out geometry.  Every such pixel, bleed columns included, must carry
  ``SAT`` in the calexp.
* **Cosmic-ray-like pixels** (`psf_contrast_limits`, `find_sharp_pixels`): a pixel is cosmic-ray-like when
  it is more than ``n_sigma`` (5) standard deviations above the (subtracted) sky and, along at least one of
  the four directions (x, y, the two diagonals), its excess over the largest value the PSF allows given its
  neighbours is also significant: ``I - R_d p_d > n_sigma sqrt(s**2 + R_d**2 s_p**2)``, where ``p_d`` is the
  mean of the two neighbours along ``d``, ``s`` and ``s_p`` the noise of the pixel and of that mean, and
  ``R_d`` the largest contrast the PSF allows: the contrast of the PSF model's kernel centred on a pixel (the
  largest a star can have), raised to ``1 / f**2`` with ``f`` = 0.8 the width tolerance (a Gaussian ``f``
  times narrower has exactly that contrast; it covers PSF-model errors and variation across the CCD).
  Same idea as the pipeline's cosmic-ray finder, independent of it and of its configuration (it uses the
  measured PSF, not a fixed minimum FWHM).  On empty sky with Gaussian noise a pixel must be ~7 sigma to
  pass, so chance hits are ~1e-11 per pixel; on faint sources the excess test keeps the noise of the
  source's pixels from firing it.
* **Annulus background residual** (`source_mask`, `annulus_residuals`): around each bright source the
  pixels between ``r_in`` and ``r_out`` (pixels; the cases convert 5-30 arcsec with the WCS pixel scale),
  excluding pixels of any source (a PSF-smoothed detection mask at ``detect_sigma``, grown) and bad pixels;
  the residual is the mean pixel value of the union of the annuli divided by the sky noise per pixel (the
  square root of the median variance of those pixels): units of sigma per pixel.  The median and the
  fraction of pixels below -3 sigma are reported beside the unclipped mean.  A radial profile (mean per
  ring, same units) is returned for the plots.
* **Single-epoch features** (`leave_one_out_reference`, `single_epoch_features`, `feature_residues`): on a
  stack of warps on one pixel grid (nJy per pixel, NaN where a warp has no usable data), the reference of
  warp ``i`` is the weighted mean of the *other* warps; a pixel of warp ``i`` is part of a single-epoch
  feature when it lies ``n_sigma`` (5) combined standard deviations above that reference, at least
  ``min_inputs`` (3) warps cover it, and the reference is empty sky there (its S/N below ``n_sigma`` and no
  masked pixel (``protect``) within ``protect_radius`` pixels: seeing differences around real sources and
  the edges of saturated cores are not artefacts).  Features are the 8-connected groups of such pixels
  with at least ``min_pixels`` pixels.  The *residue* of a feature in the
  coadd is ``sum(coadd - ref_i) / sum(w_i / W (I_i - ref_i))`` over its pixels, ``W`` the summed weight of
  the warps usable at the pixel: 1 when the coadd is the plain weighted mean (the feature was kept), 0 when
  the feature was rejected.  A feature *shows in the coadd* when its residue exceeds 0.5.
* **Interpolated pixels included** (`included_in_coadd`): a warp pixel contributes to the coadd when the
  coadd is closer to the weighted mean of the usable warps *with* it than without it (DM-9953).
* **Moments** (`adaptive_moments`, `shape_residuals`): adaptive Gaussian-weighted second moments
  (pixels**2, Bernstein & Jarvis 2002), iterated to the weight matching the source; trace radius
  ``sqrt((Ixx + Iyy) / 2)``; distortion ``e1 = (Ixx - Iyy) / T``, ``e2 = 2 Ixy / T``.  The noise of each
  component of a star's distortion is ~ ``2 / nu`` (``nu`` the S/N of the weighted flux), verified by the
  tests; the case subtracts it in quadrature from the rms residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from ..image.mask import mask_bit
from ..instrument.camera import AmplifierSpec

__all__ = [
    "AnnulusResult",
    "Feature",
    "adaptive_moments",
    "annulus_residuals",
    "feature_residues",
    "find_sharp_pixels",
    "fraction_masked",
    "included_in_coadd",
    "inverse_variance_weight",
    "leave_one_out_reference",
    "mask_plane_fractions",
    "pixel_scale_arcsec",
    "psf_contrast_limits",
    "raw_saturated",
    "shape_residuals",
    "single_epoch_features",
    "source_mask",
    "track_deposit",
]

#: The four directions of the sharpness test, (dy, dx).
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))


# --------------------------------------------------------------------------------------------- masks
def mask_plane_fractions(
    mask: np.ndarray, planes: Sequence[str], *, valid: np.ndarray | None = None
) -> dict[str, float]:
    """Fraction of the valid pixels having each mask plane set.

    Parameters
    ----------
    mask : `numpy.ndarray` [int]
        Mask bit planes (`opendrp.image.mask`).
    planes : sequence of `str`
        Plane names.
    valid : `numpy.ndarray` [bool], optional
        Pixels counted (default all).

    Returns
    -------
    fractions : `dict` [`str`, `float`]
        Plane -> fraction (NaN when no pixel is valid).
    """
    m = mask if valid is None else mask[valid]
    n = m.size
    return {p: (float(np.count_nonzero(m & mask_bit(p))) / n if n else float("nan")) for p in planes}


def raw_saturated(
    pixels: np.ndarray,
    amplifiers: Sequence[AmplifierSpec],
    shape: tuple[int, int],
    *,
    noise_margin: float = 5.0,
) -> np.ndarray:
    """Assembled pixels whose raw value reaches their amplifier's saturation level within the read noise.

    A pixel at full well reads the saturation level plus read noise, clipped by the converter, so "at the
    level" means ``raw >= saturation - noise_margin * read_noise / gain`` (ADU).

    Parameters
    ----------
    pixels : `numpy.ndarray`
        The raw array (ADU) including pre- and overscans.
    amplifiers : sequence of `opendrp.instrument.camera.AmplifierSpec`
        The detector's amplifiers (read-out geometry, ``saturation`` in ADU).
    shape : `tuple` [`int`, `int`]
        Assembled ``(ny, nx)``.
    noise_margin : `float`
        Read-noise standard deviations below the level still counted as at the level.

    Returns
    -------
    saturated : `numpy.ndarray` [bool], shape ``shape``
    """
    out = np.zeros(shape, bool)
    for amp in amplifiers:
        data = pixels[amp.raw_data_slice()]
        if amp.flip_x:
            data = data[:, ::-1]
        level = amp.saturation - noise_margin * amp.read_noise / amp.gain
        out[amp.assembled_slice()] = data >= level
    return out


def track_deposit(tracks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Charge of straight tracks on an image, as the simulator deposits it (docs/simulator.md).

    Parameters
    ----------
    tracks : `numpy.ndarray`, shape ``(n, 5)``
        ``x0, y0, x1, y1, electrons`` per track (pixels; total charge landing on the image).
    shape : `tuple` [`int`, `int`]

    Returns
    -------
    charge : `numpy.ndarray` [float64]
        Electrons per pixel: points every half pixel along the track, shared bilinearly.
    """
    out = np.zeros(shape)
    ny, nx = shape
    for x0, y0, x1, y1, electrons in np.asarray(tracks, float).reshape(-1, 5):
        length = float(np.hypot(x1 - x0, y1 - y0))
        n_step = max(1, int(np.ceil(length * 2.0)))
        s = (np.arange(n_step) + 0.5) / n_step
        xs, ys = x0 + s * (x1 - x0), y0 + s * (y1 - y0)
        inside = (xs > -0.5) & (xs < nx - 0.5) & (ys > -0.5) & (ys < ny - 0.5)
        if not inside.any():
            continue
        w = electrons / np.count_nonzero(inside)
        ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
        fx, fy = xs - ix, ys - iy
        for dx, dy, wt in (
            (0, 0, (1 - fx) * (1 - fy)),
            (1, 0, fx * (1 - fy)),
            (0, 1, (1 - fx) * fy),
            (1, 1, fx * fy),
        ):
            px, py = ix + dx, iy + dy
            ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            np.add.at(out, (py[ok], px[ok]), w * wt[ok])
    return out


def fraction_masked(selected: np.ndarray, mask: np.ndarray, planes: Sequence[str]) -> tuple[float, int]:
    """Fraction of the selected pixels having any of ``planes`` set, and their number (NaN, 0 if none)."""
    n = int(np.count_nonzero(selected))
    if n == 0:
        return float("nan"), 0
    hit = np.count_nonzero(mask[selected] & mask_bit(*planes))
    return float(hit) / n, n


# --------------------------------------------------------------------------------------------- sharpness
def psf_contrast_limits(kernels: Sequence[np.ndarray], *, width_tolerance: float = 0.8) -> np.ndarray:
    """Largest contrast a star can have along each of the four `DIRECTIONS`.

    Parameters
    ----------
    kernels : sequence of `numpy.ndarray`
        PSF kernel images (odd size, centred on the central pixel), e.g. at the centre and corners of a CCD.
    width_tolerance : `float`
        The PSF may be this factor narrower than the model (model errors, variation between the positions
        sampled): the contrast is raised to ``1 / width_tolerance**2``.

    Returns
    -------
    limits : `numpy.ndarray`, shape ``(4,)``
        ``max over kernels of K(0) / mean(K(+d), K(-d))`` per direction, with the tolerance applied.
    """
    out = np.ones(len(DIRECTIONS))
    for k in kernels:
        c = k.shape[0] // 2
        peak = float(k[c, c])
        for i, (dy, dx) in enumerate(DIRECTIONS):
            pair = 0.5 * (float(k[c + dy, c + dx]) + float(k[c - dy, c - dx]))
            contrast = peak / pair if pair > 0 else np.inf
            out[i] = max(out[i], contrast)
    return np.asarray(out ** (1.0 / width_tolerance**2))


def find_sharp_pixels(
    image: np.ndarray,
    variance: np.ndarray,
    contrast_limits: np.ndarray,
    *,
    n_sigma: float = 5.0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Cosmic-ray-like pixels: significant and sharper than the PSF allows (rule in the module docstring).

    Parameters
    ----------
    image : `numpy.ndarray`
        Background-subtracted image (any flux unit).
    variance : `numpy.ndarray`
        Its variance (unit**2).
    contrast_limits : `numpy.ndarray`, shape ``(4,)``
        From `psf_contrast_limits`.
    n_sigma : `float`
        Significance (sigma) of the pixel above the sky and of its excess over what the PSF allows.
    exclude : `numpy.ndarray` [bool], optional
        Pixels never reported (masked ones).

    Returns
    -------
    sharp : `numpy.ndarray` [bool]
    """
    ny, nx = image.shape
    var = np.where(np.isfinite(variance) & (variance > 0), variance, np.inf)
    yy, xx = np.nonzero(image > n_sigma * np.sqrt(var))
    if exclude is not None and yy.size:
        keep = ~exclude[yy, xx]
        yy, xx = yy[keep], xx[keep]
    var0 = np.where(np.isfinite(var), var, 0.0)
    hit = np.zeros(yy.size, bool)
    value, var_c = image[yy, xx], var0[yy, xx]
    for limit, (dy, dx) in zip(contrast_limits, DIRECTIONS, strict=True):
        ya, xa, yb, xb = yy + dy, xx + dx, yy - dy, xx - dx
        inside = (ya >= 0) & (ya < ny) & (xa >= 0) & (xa < nx) & (yb >= 0) & (yb < ny) & (xb >= 0) & (xb < nx)
        ya, xa, yb, xb = (np.clip(a, 0, n - 1) for a, n in ((ya, ny), (xa, nx), (yb, ny), (xb, nx)))
        pair = 0.5 * (image[ya, xa] + image[yb, xb])
        var_pair = 0.25 * (var0[ya, xa] + var0[yb, xb])
        excess = value - limit * pair
        hit |= inside & (excess > n_sigma * np.sqrt(var_c + limit * limit * var_pair))
    out = np.zeros(image.shape, bool)
    out[yy[hit], xx[hit]] = True
    return out


# --------------------------------------------------------------------------------------------- background
def pixel_scale_arcsec(wcs: WCS) -> float:
    """Mean pixel scale (arcsec per pixel) of a celestial WCS at its reference pixel."""
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)


@dataclass(frozen=True)
class AnnulusResult:
    """Residual sky in annuli around bright sources (units: sky sigma per pixel).

    Attributes
    ----------
    mean : `float`
        Unclipped mean of the union of the annuli.
    median : `float`
        Median of the same pixels.
    low_tail : `float`
        Fraction of those pixels below -3 sigma (0.00135 for Gaussian noise).
    n_pixels : `int`
        Pixels used.
    n_sources : `int`
        Sources whose annulus had usable pixels.
    radii : `numpy.ndarray`
        Ring centres (pixels) of the profile.
    profile : `numpy.ndarray`
        Mean per ring (sigma), NaN where a ring is empty.
    profile_n : `numpy.ndarray` [int]
        Pixels per ring (a pixel in several annuli counts in each).
    """

    mean: float
    median: float
    low_tail: float
    n_pixels: int
    n_sources: int
    radii: np.ndarray
    profile: np.ndarray
    profile_n: np.ndarray


def source_mask(
    image: np.ndarray,
    variance: np.ndarray,
    *,
    psf_sigma: float,
    detect_sigma: float = 3.0,
    grow: float = 2.0,
) -> np.ndarray:
    """Pixels of sources: the image smoothed by a Gaussian of the PSF's sigma above ``detect_sigma`` times
    its noise, grown by ``grow * psf_sigma`` pixels (non-finite pixels are included).

    Parameters
    ----------
    psf_sigma : `float`
        Gaussian sigma of the PSF (pixels).
    detect_sigma : `float`
        Threshold (sigma of the smoothed image, whose noise is
        ``sqrt(median variance) / (2 sqrt(pi) psf_sigma)``).
    grow : `float`
        Growth radius in units of ``psf_sigma``.
    """
    finite = np.isfinite(image) & np.isfinite(variance)
    img = np.where(finite, image, 0.0).astype(np.float32)
    smooth = ndimage.gaussian_filter(img, psf_sigma, mode="constant")
    sky_sigma = float(np.sqrt(np.median(variance[finite]))) if finite.any() else np.inf
    noise = sky_sigma / (2.0 * np.sqrt(np.pi) * psf_sigma)
    hit = smooth > detect_sigma * noise
    radius = int(np.ceil(grow * psf_sigma))
    if radius > 0 and hit.any():
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        hit = ndimage.binary_dilation(hit, structure=(xx * xx + yy * yy) <= radius * radius)
    return np.asarray(hit | ~finite)


def annulus_residuals(
    image: np.ndarray,
    variance: np.ndarray,
    centres: np.ndarray,
    *,
    r_in: float,
    r_out: float,
    exclude: np.ndarray,
    n_rings: int = 10,
) -> AnnulusResult:
    """Mean residual sky in annuli ``r_in <= r < r_out`` (pixels) around ``centres`` (``(n, 2)`` x, y).

    ``exclude`` marks pixels not used (sources, bad pixels).  Units of the results in `AnnulusResult`.
    """
    ny, nx = image.shape
    union = np.zeros(image.shape, bool)
    edges = np.linspace(r_in, r_out, n_rings + 1)
    sums = np.zeros(n_rings)
    counts = np.zeros(n_rings, np.int64)
    n_sources = 0
    ro = int(np.ceil(r_out))
    for x, y in np.asarray(centres, float).reshape(-1, 2):
        ix, iy = int(round(x)), int(round(y))
        y0, y1, x0, x1 = max(iy - ro, 0), min(iy + ro + 1, ny), max(ix - ro, 0), min(ix + ro + 1, nx)
        if y0 >= y1 or x0 >= x1:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1]
        r = np.hypot(gx - x, gy - y)
        sel = (r >= r_in) & (r < r_out) & ~exclude[y0:y1, x0:x1]
        if not sel.any():
            continue
        n_sources += 1
        union[y0:y1, x0:x1] |= sel
        ring = np.clip(np.searchsorted(edges, r[sel], side="right") - 1, 0, n_rings - 1)
        sums += np.bincount(ring, weights=image[y0:y1, x0:x1][sel], minlength=n_rings)
        counts += np.bincount(ring, minlength=n_rings)
    radii = 0.5 * (edges[:-1] + edges[1:])
    values = image[union].astype(np.float64)
    if values.size == 0:
        nan = float("nan")
        return AnnulusResult(nan, nan, nan, 0, n_sources, radii, np.full(n_rings, np.nan), counts)
    sigma = float(np.sqrt(np.median(variance[union])))
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, sums / np.maximum(counts, 1) / sigma, np.nan)
    z = values / sigma
    return AnnulusResult(
        float(z.mean()),
        float(np.median(z)),
        float(np.mean(z < -3.0)),
        int(z.size),
        n_sources,
        radii,
        profile,
        counts,
    )


# --------------------------------------------------------------------------------------------- coadds
@dataclass(frozen=True)
class Feature:
    """A single-epoch feature: warp index, pixels, summed excess over the other warps' mean (image unit),
    peak significance (sigma) and centroid (pixels)."""

    warp: int
    ys: np.ndarray
    xs: np.ndarray
    excess: float
    peak_sigma: float
    x: float
    y: float

    @property
    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ys, self.xs


def inverse_variance_weight(variance: np.ndarray, usable: np.ndarray) -> float:
    """``1 / <variance>`` (unit**-2) with the mean 3-sigma clipped (3 iterations), usable pixels only.

    The weight rule of the coadd assembly (`opendrp.coadd.assemble`), on every other pixel of each axis.
    """
    values = variance[::2, ::2][usable[::2, ::2]].astype(np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 0.0
    for _ in range(3):
        mean, std = values.mean(), values.std()
        keep = np.abs(values - mean) <= 3.0 * std
        if keep.all() or keep.sum() < 10:
            break
        values = values[keep]
    return float(1.0 / values.mean())


def leave_one_out_reference(
    images: np.ndarray, variances: np.ndarray, weights: np.ndarray, index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean of every warp but ``index`` (NaN pixels skipped), its variance and the input count.

    Parameters
    ----------
    images, variances : `numpy.ndarray`, shape ``(n, ny, nx)``
        Warps on one grid (NaN where a warp is not usable).
    weights : `numpy.ndarray`, shape ``(n,)``
        Per-warp weights.

    Returns
    -------
    ref, ref_var : `numpy.ndarray`
        NaN where no other warp is usable.
    n_other : `numpy.ndarray` [int]
        Usable other warps per pixel.
    """
    others = [j for j in range(images.shape[0]) if j != index]
    ok = np.isfinite(images[others]) & np.isfinite(variances[others])
    w = np.where(ok, weights[others, None, None], 0.0)
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(ok, images[others], 0.0)
        ref = (w * ref).sum(axis=0) / wsum
        ref_var = (w * w * np.where(ok, variances[others], 0.0)).sum(axis=0) / wsum**2
    return ref, ref_var, ok.sum(axis=0)


def single_epoch_features(
    images: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    *,
    n_sigma: float = 5.0,
    min_inputs: int = 3,
    min_pixels: int = 2,
    protect_radius: float = 5.0,
    protect: np.ndarray | None = None,
) -> list[Feature]:
    """Features present in one warp only (rule in the module docstring).

    Parameters
    ----------
    images, variances : `numpy.ndarray`, shape ``(n, ny, nx)``
        Warps on one grid (nJy per pixel; NaN where a warp is not usable).
    weights : `numpy.ndarray`, shape ``(n,)``
    n_sigma : `float`
        Excess over the other warps' mean (combined sigma).
    min_inputs : `int`
        Warps (the one with the feature included) that must cover a pixel.
    min_pixels : `int`
        Smallest feature (pixels).
    protect_radius : `float`
        Pixels closer than this to a >= ``n_sigma`` pixel of the reference (real sources), to a pixel where no
        other warp is usable, or to a ``protect`` pixel are not used.
    protect : `numpy.ndarray` [bool], optional
        Pixels to keep away from (e.g. where any warp is masked SAT or BAD: saturated cores, bleed trails).

    Returns
    -------
    features : `list` [`dict`]
        ``warp`` (index), ``pixels`` (``(ys, xs)``), ``excess`` (summed nJy over the reference),
        ``peak_sigma``, ``x``, ``y`` (centroid pixel).
    """
    out: list[Feature] = []
    r = int(np.ceil(protect_radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (xx * xx + yy * yy) <= protect_radius**2
    for i in range(images.shape[0]):
        ref, ref_var, n_other = leave_one_out_reference(images, variances, weights, i)
        with np.errstate(invalid="ignore"):
            noise = np.sqrt(variances[i] + ref_var)
            z = (images[i] - ref) / noise
            source = ~(np.abs(ref) <= n_sigma * np.sqrt(ref_var))  # bright, or NaN: masked in the others
        if protect is not None:
            source |= protect
        source = ndimage.binary_dilation(source, structure=disc) if r > 0 else source
        cand = np.nan_to_num(z, nan=0.0) > n_sigma
        cand &= (n_other + 1 >= min_inputs) & ~source
        labels, n = ndimage.label(cand, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            ys, xs = np.nonzero(labels[sl] == k)
            if ys.size < min_pixels:
                continue
            ys, xs = ys + sl[0].start, xs + sl[1].start
            excess = float(np.sum(images[i][ys, xs] - ref[ys, xs]))
            out.append(
                Feature(i, ys, xs, excess, float(np.max(z[ys, xs])), float(xs.mean()), float(ys.mean()))
            )
    return out


def feature_residues(
    features: Sequence[Feature],
    images: np.ndarray,
    weights: np.ndarray,
    coadd: np.ndarray,
    variances: np.ndarray,
) -> np.ndarray:
    """Residue of each feature in the coadd: 1 when kept as by a plain weighted mean, 0 when rejected.

    Parameters
    ----------
    features : sequence of `dict`
        From `single_epoch_features`.
    images, variances : `numpy.ndarray`, shape ``(n, ny, nx)``
        The warps the features were found in.
    weights : `numpy.ndarray`, shape ``(n,)``
    coadd : `numpy.ndarray`, shape ``(ny, nx)``
        The coadd image (same unit and grid).
    """
    ok = np.isfinite(images) & np.isfinite(variances)
    out = np.full(len(features), np.nan)
    for k, f in enumerate(features):
        i, ys, xs = f.warp, f.ys, f.xs
        ref, _, _ = leave_one_out_reference(
            images[:, ys, xs][:, None, :], variances[:, ys, xs][:, None, :], weights, i
        )
        ref = ref[0]
        w_all = np.where(ok[:, ys, xs], weights[:, None], 0.0).sum(axis=0)
        expected = float(np.sum(weights[i] / w_all * (images[i, ys, xs] - ref)))
        actual = float(np.sum(coadd[ys, xs] - ref))
        out[k] = actual / expected if expected > 0 else np.nan
    return out


def included_in_coadd(
    images: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    coadd: np.ndarray,
    index: int,
    pixels: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Whether warp ``index`` contributes to the coadd at ``pixels`` (``(ys, xs)``); rule in the module
    docstring.

    Returns
    -------
    included : `numpy.ndarray` [float]
        1.0 (contributes), 0.0 (does not), NaN (the two predictions agree to 1e-6 of the value: undecided).
    """
    ys, xs = pixels
    im, va = images[:, ys, xs], variances[:, ys, xs]
    ok = np.isfinite(im) & np.isfinite(va)
    w = np.where(ok, weights[:, None], 0.0)
    vals = np.where(ok, im, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        incl = (w * vals).sum(axis=0) / w.sum(axis=0)
        w_ex = w.copy()
        w_ex[index] = 0.0
        excl = (w_ex * vals).sum(axis=0) / w_ex.sum(axis=0)
    c = coadd[ys, xs]
    d_in, d_ex = np.abs(c - incl), np.abs(c - excl)
    scale = 1e-6 * np.maximum(np.abs(incl), np.abs(excl)) + 1e-12
    out = np.where(d_in < d_ex, 1.0, 0.0)
    out[~(np.abs(incl - excl) > scale) | ~np.isfinite(excl)] = np.nan
    return out


# --------------------------------------------------------------------------------------------- moments
def adaptive_moments(
    stamp: np.ndarray, *, sigma_guess: float, max_iter: int = 30, tol: float = 1e-5
) -> tuple[float, float, float, float, float] | None:
    """Adaptive Gaussian-weighted moments of a background-subtracted stamp centred near its middle pixel.

    Returns
    -------
    moments : `tuple` or `None`
        ``(ixx, iyy, ixy, x, y)``: second moments (pixels**2) and centroid (stamp pixels) of the weight that
        matches the source (the moments of a Gaussian source equal its own); None when it does not converge.
    """
    ny, nx = stamp.shape
    gy, gx = np.mgrid[0:ny, 0:nx].astype(float)
    img = np.nan_to_num(stamp.astype(float))
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    a = np.array([[sigma_guess**2, 0.0], [0.0, sigma_guess**2]])
    for _ in range(max_iter):
        det = a[0, 0] * a[1, 1] - a[0, 1] ** 2
        if not det > 0:
            return None
        dx, dy = gx - cx, gy - cy
        q = (a[1, 1] * dx * dx - 2 * a[0, 1] * dx * dy + a[0, 0] * dy * dy) / det
        w = img * np.exp(-0.5 * q)
        s = w.sum()
        if not s > 0:
            return None
        cx, cy = (w * gx).sum() / s, (w * gy).sum() / s
        dx, dy = gx - cx, gy - cy
        m = np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()], [0.0, (w * dy * dy).sum()]]) / s
        m[1, 0] = m[0, 1]
        new = 2.0 * m  # the weighted moments of a Gaussian are half its own when the weight matches it
        if not (new[0, 0] > 0 and new[1, 1] > 0) or np.max(np.abs(new - a)) < tol * np.trace(a):
            a = new
            break
        a = new
    if not (a[0, 0] > 0 and a[1, 1] > 0 and a[0, 0] * a[1, 1] > a[0, 1] ** 2):
        return None
    return float(a[0, 0]), float(a[1, 1]), float(a[0, 1]), float(cx), float(cy)


def shape_residuals(star: np.ndarray, psf: np.ndarray) -> dict[str, np.ndarray]:
    """Fractional trace-radius and distortion residuals star - PSF from moments ``(n, 3)`` (Ixx, Iyy, Ixy).

    Returns
    -------
    residuals : `dict`
        ``size`` (``sqrt(T_star / T_psf) - 1``), ``e1``, ``e2`` (star minus PSF).
    """
    ts, tp = star[:, 0] + star[:, 1], psf[:, 0] + psf[:, 1]
    return {
        "size": np.sqrt(ts / tp) - 1.0,
        "e1": (star[:, 0] - star[:, 1]) / ts - (psf[:, 0] - psf[:, 1]) / tp,
        "e2": 2.0 * star[:, 2] / ts - 2.0 * psf[:, 2] / tp,
    }
