"""Overscan correction, gain and amplifier assembly: raw ADU segments to one CCD image in electrons."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..instrument.camera import DetectorSpec
from ..raw.format import RawImage

__all__ = ["assemble_ccd", "grow_mask", "overscan_levels"]


def overscan_levels(overscan: np.ndarray, *, n_sigma: float = 3.0, smooth_rows: int = 1) -> np.ndarray:
    """Per-row level of a serial overscan region (ADU), robust to cosmic rays and bleed trails.

    Each row's level is the mean of its overscan pixels after rejecting those more than ``n_sigma`` robust
    standard deviations from the row median (the noise is estimated over the whole region).

    Parameters
    ----------
    overscan : `numpy.ndarray`, shape ``(ny, n_overscan)``
        Overscan pixels (ADU).
    n_sigma : `float`
        Rejection threshold in standard deviations.
    smooth_rows : `int`
        If > 1, the per-row levels are median-filtered over this many rows (reduces the noise added by the
        correction when the overscan has no row-to-row structure).

    Returns
    -------
    levels : `numpy.ndarray`, shape ``(ny,)``
        Overscan level per row, ADU.
    """
    over = np.asarray(overscan, dtype=np.float64)
    if over.shape[1] == 0:
        raise ValueError("the amplifier has no overscan columns")
    med = np.median(over, axis=1)
    resid = over - med[:, None]
    sigma = 1.4826 * float(np.median(np.abs(resid)))
    if sigma > 0:
        keep = np.abs(resid) <= n_sigma * sigma
        n = keep.sum(axis=1)
        levels = np.where(n > 0, (over * keep).sum(axis=1) / np.maximum(n, 1), med)
    else:
        levels = med
    if smooth_rows > 1:
        levels = ndimage.median_filter(levels, size=int(smooth_rows), mode="nearest")
    return levels


def assemble_ccd(
    raw: RawImage,
    detector: DetectorSpec,
    *,
    do_overscan: bool = True,
    overscan_smooth_rows: int = 1,
    saturation_grow: int = 1,
    saturation_margin: float = 5.0,
    suspect_fraction: float | None = None,
    suspect_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Overscan-correct, gain-correct and assemble the amplifiers of a raw CCD read-out.

    Parameters
    ----------
    raw : `opendrp.raw.RawImage`
        The raw read-out (ADU), laid out as ``detector.raw_shape``.
    detector : `opendrp.instrument.DetectorSpec`
        Read-out geometry, gains (e-/ADU) and saturation levels (ADU).
    do_overscan : `bool`
        Subtract the per-row serial overscan level of each amplifier (ADU) before applying the gain.
    overscan_smooth_rows : `int`
        Median-filter length (rows) of the overscan levels; 1 keeps per-row levels.
    saturation_grow : `int`
        Saturated pixels are grown by this many pixels.
    saturation_margin : `float`
        A pixel is saturated when its raw value is within this many read-noise standard deviations of the
        amplifier's saturation level (ADU): a pixel at full well reads the saturation level plus read noise,
        so half of them would otherwise fall just below it.
    suspect_fraction : `float`, optional
        With ``suspect_out``: unsaturated pixels whose raw value reaches this fraction of the saturation level
        (beyond the linear range) are set in ``suspect_out``.
    suspect_out : `numpy.ndarray` [bool], shape ``detector.shape``, optional
        Receives the suspect pixels.

    Returns
    -------
    image : `numpy.ndarray` [float32], shape ``detector.shape``
        Assembled image in electrons, amplifiers un-flipped.
    saturated : `numpy.ndarray` [bool], shape ``detector.shape``
        Saturated pixels.
    """
    pixels = np.asarray(raw.pixels)
    if tuple(pixels.shape) != tuple(detector.raw_shape):
        raise ValueError(f"raw array shape {pixels.shape} != detector raw shape {detector.raw_shape}")
    image = np.empty(detector.shape, dtype=np.float32)
    saturated = np.zeros(detector.shape, dtype=bool)
    for amp in detector.amplifiers:
        raw_amp = pixels[amp.raw_data_slice()]
        sl = amp.assembled_slice()
        # written straight into the assembled image (through a mirrored view when flipped): no temporaries
        dst = image[sl][:, ::-1] if amp.flip_x else image[sl]
        if do_overscan:
            levels = overscan_levels(pixels[amp.raw_overscan_slice()], smooth_rows=overscan_smooth_rows)
            np.subtract(raw_amp, levels.astype(np.float32)[:, None], out=dst, casting="unsafe")
        else:
            dst[...] = raw_amp
        dst *= np.float32(amp.gain)
        sat_dst = saturated[sl][:, ::-1] if amp.flip_x else saturated[sl]
        np.greater_equal(raw_amp, amp.saturation - saturation_margin * amp.read_noise / amp.gain, out=sat_dst)
        if suspect_out is not None and suspect_fraction is not None:
            sus_dst = suspect_out[sl][:, ::-1] if amp.flip_x else suspect_out[sl]
            np.greater_equal(raw_amp, suspect_fraction * amp.saturation, out=sus_dst)
            sus_dst &= ~sat_dst
    if saturation_grow > 0 and saturated.any():
        saturated = grow_mask(saturated, int(saturation_grow))
    return image, saturated


def grow_mask(mask: np.ndarray, n: int) -> np.ndarray:
    """Grow a boolean mask by ``n`` pixels (4-connected steps; array slicing, no per-pixel loops)."""
    out = np.asarray(mask, dtype=bool).copy()
    for _ in range(n):
        src = out.copy()
        out[1:, :] |= src[:-1, :]
        out[:-1, :] |= src[1:, :]
        out[:, 1:] |= src[:, :-1]
        out[:, :-1] |= src[:, 1:]
    return out
