"""Source detection: thresholding of the (matched-filtered) image with sep, with deblending."""

from __future__ import annotations

import numpy as np
import sep
from astropy.table import Table
from scipy import ndimage

from ..image import mask_bit

__all__ = ["DEFAULT_DETECTION_MASK_PLANES", "detect_sources", "gaussian_kernel", "significance_mask"]

#: Pixels ignored by detection.  Saturated pixels are NOT ignored, so that a saturated star is one detection.
DEFAULT_DETECTION_MASK_PLANES = ("BAD", "NO_DATA")

_SEP_FLAG_MERGED = 1  # sep OBJ_MERGED: the object was split from a blend by the deblender


def gaussian_kernel(fwhm: float, *, size: int | None = None) -> np.ndarray:
    """A normalized circular Gaussian filter kernel of the given FWHM (pixels), odd size ~ 2 FWHM + 1."""
    sigma = max(float(fwhm), 0.5) / 2.3548
    half = max(1, int(np.ceil(2.5 * sigma))) if size is None else int(size) // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    k = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    return k / k.sum()


def detect_sources(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    threshold: float = 5.0,
    min_area: int = 5,
    kernel_fwhm: float | None = 2.0,
    mask_planes: tuple[str, ...] = DEFAULT_DETECTION_MASK_PLANES,
    deblend_nthresh: int = 32,
    deblend_cont: float = 0.005,
    return_segmentation: bool = False,
) -> Table | tuple[Table, np.ndarray]:
    """Detect sources above ``threshold`` standard deviations in a background-subtracted image.

    The image is correlated with a Gaussian kernel (a matched filter, so that the threshold is a significance
    of the filtered image given the variance plane), thresholded, and the connected regions of at least
    ``min_area`` pixels deblended (sep/SExtractor multi-threshold deblending).

    Parameters
    ----------
    image : `numpy.ndarray`
        Background-subtracted image (electrons for visits, nJy per pixel for coadds).
    variance : `numpy.ndarray`
        Per-pixel variance in image units squared.
    mask : `numpy.ndarray` [int], optional
        Mask bit planes; pixels with ``mask_planes`` set are ignored.
    threshold : `float`
        Detection threshold, in standard deviations of the filtered image.
    min_area : `int`
        Minimum number of connected pixels above the threshold.
    kernel_fwhm : `float` or `None`
        FWHM (pixels) of the Gaussian detection kernel (ideally the PSF's); `None` for no filtering.
    mask_planes : `tuple` [`str`]
        Mask planes ignored by detection.
    deblend_nthresh, deblend_cont : `int`, `float`
        sep deblending parameters (number of sub-thresholds, minimum contrast).
    return_segmentation : `bool`
        Also return the segmentation map (int32, 0 = sky, ``i + 1`` = row ``i``).

    Returns
    -------
    sources : `astropy.table.Table`
        One row per detection: ``x``, ``y`` (isophotal barycentre, pixels), ``peak`` (peak value, image
        units), ``x_peak``, ``y_peak`` (int, pixels), ``footprint_area`` (pixels), ``iso_flux`` (image units),
        ``a``, ``b`` (pixels), ``theta`` (radians), ``xmin``, ``xmax``, ``ymin``, ``ymax``, ``deblended``
        (bool: split from a blend), ``truncated`` (bool: touches a masked pixel or the image edge).
    segmentation : `numpy.ndarray`, only if ``return_segmentation``
    """
    # few full-size temporaries (memory, time): one copy each of the image and variance, one bool mask
    var_in = np.asarray(variance)
    ignore = ~(var_in > 0) | np.isinf(var_in)  # NaN, zero, negative or infinite variance
    ignore |= ~np.isfinite(image)
    if mask is not None and mask_planes:
        ignore |= (np.asarray(mask) & mask_bit(*mask_planes)) != 0
    data = np.array(image, dtype=np.float32, copy=True)
    var = np.array(var_in, dtype=np.float32, copy=True)
    if ignore.any():
        data[ignore] = 0.0
        var[ignore] = np.float32(1e30)
    kernel = gaussian_kernel(kernel_fwhm) if kernel_fwhm else None
    # With a normalized kernel k, the filtered noise is sqrt(sum k**2) times the pixel noise where the
    # variance is locally uniform: thresholding the filtered image at that scaled level is the
    # matched-filter test
    # (and several times faster than sep's per-pixel "matched" filtering).
    thresh = float(threshold) * (float(np.sqrt(np.sum(kernel**2))) if kernel is not None else 1.0)
    sep.set_extract_pixstack(max(300_000, data.size // 4))
    sep.set_sub_object_limit(4096)
    objects, segmap = sep.extract(
        data,
        thresh,
        var=var,
        mask=ignore,
        minarea=int(min_area),
        filter_kernel=kernel,
        filter_type="conv",
        deblend_nthresh=int(deblend_nthresh),
        deblend_cont=float(deblend_cont),
        clean=True,
        segmentation_map=True,
    )
    table = Table()
    table["x"] = objects["x"].astype(np.float64)
    table["y"] = objects["y"].astype(np.float64)
    table["peak"] = objects["peak"].astype(np.float64)
    table["x_peak"] = objects["xpeak"].astype(np.int32)
    table["y_peak"] = objects["ypeak"].astype(np.int32)
    table["footprint_area"] = objects["npix"].astype(np.int32)
    table["iso_flux"] = objects["flux"].astype(np.float64)
    table["a"] = objects["a"].astype(np.float64)
    table["b"] = objects["b"].astype(np.float64)
    table["theta"] = objects["theta"].astype(np.float64)
    for key in ("xmin", "xmax", "ymin", "ymax"):
        table[key] = objects[key].astype(np.int32)
    table["deblended"] = (objects["flag"] & _SEP_FLAG_MERGED) != 0
    ny, nx = data.shape
    table["truncated"] = (
        ((objects["flag"] & 2) != 0)
        | (objects["xmin"] == 0)
        | (objects["ymin"] == 0)
        | (objects["xmax"] == nx - 1)
        | (objects["ymax"] == ny - 1)
    )
    if return_segmentation:
        return table, np.asarray(segmap, dtype=np.int32)
    return table


def significance_mask(
    image: np.ndarray,
    variance: np.ndarray,
    *,
    threshold: float = 5.0,
    kernel_fwhm: float = 3.0,
) -> np.ndarray:
    """Pixels where the Gaussian-filtered image exceeds ``threshold`` standard deviations.

    The same test as `detect_sources` without labelling or deblending (a separable filter: fast); used to mask
    sources before estimating the background.

    Parameters
    ----------
    image, variance : `numpy.ndarray`
        Background-subtracted image and its variance.
    threshold : `float`
        Threshold in standard deviations of the filtered image.
    kernel_fwhm : `float`
        FWHM (pixels) of the Gaussian filter.

    Returns
    -------
    mask : `numpy.ndarray` [bool]
    """
    sigma = max(float(kernel_fwhm), 0.5) / 2.3548
    half = max(1, int(np.ceil(2.5 * sigma)))
    k1 = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k1 /= k1.sum()
    data = np.asarray(image, dtype=np.float32)
    if not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    # along rows with scipy (contiguous: fast), then along columns as weighted sums of shifted rows, block by
    # block (scipy's column pass strides through memory: ~6x slower), fused with the threshold test
    filt = ndimage.correlate1d(data, k1, axis=1, mode="constant")
    del data
    var = np.asarray(variance)
    ny, nx = filt.shape
    out = np.empty((ny, nx), bool)
    c2 = np.float32((threshold * float(np.sum(k1**2))) ** 2)
    weights = [np.float32(w) for w in k1]
    block = 128
    acc = np.empty((block, nx), np.float32)
    tmp = np.empty((block, nx), np.float32)
    noise2 = np.empty((block, nx), np.float32)
    for y0 in range(0, ny, block):
        y1 = min(y0 + block, ny)
        a, t, n2 = acc[: y1 - y0], tmp[: y1 - y0], noise2[: y1 - y0]
        a.fill(0.0)
        for j, w in enumerate(weights):  # row y of the result sums w_j * filt[y + j - half] (0 outside)
            s0, s1 = max(y0 + j - half, 0), min(y1 + j - half, ny)
            if s1 <= s0:
                continue
            d0 = s0 - (j - half) - y0
            np.multiply(filt[s0:s1], w, out=t[: s1 - s0])
            a[d0 : d0 + s1 - s0] += t[: s1 - s0]
        # a > threshold * noise without a square root: a > 0 and a**2 > threshold**2 * noise**2
        o = out[y0:y1]
        np.greater(a, 0.0, out=o)
        np.square(a, out=a)
        np.multiply(var[y0:y1], c2, out=n2, casting="unsafe")
        o &= a > n2
        o &= n2 > 0  # NaN, zero or negative variance: never significant
        o &= np.isfinite(n2)
    return out
