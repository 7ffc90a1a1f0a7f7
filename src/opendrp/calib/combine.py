"""Master calibration products: sigma-clipped combinations of bias, dark and flat exposures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..image import Exposure, mask_bit
from ..instrument.camera import DetectorSpec
from ..isr.assemble import assemble_ccd
from ..isr.isr import raw_metadata, read_noise_image
from ..raw.format import RawImage

__all__ = ["clipped_mean", "combine_bias", "combine_dark", "combine_flat", "find_flat_defects"]

_BAD = mask_bit("BAD")
_SAT = mask_bit("SAT")


def clipped_mean(
    stack: np.ndarray,
    *,
    noise_var: np.ndarray | None = None,
    n_sigma: float = 3.0,
    n_iter: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel sigma-clipped mean of a stack of images.

    The noise of each pixel of each frame is ``scale * sqrt(noise_var)``, where ``scale`` is measured
    robustly from the residuals about the per-pixel median (so ``noise_var`` need only be right up to a
    constant; uniform when not given).  With two frames, a pixel whose values disagree by more than
    ``n_sigma`` takes the lower one (cosmic rays and other artifacts are positive).

    Parameters
    ----------
    stack : `numpy.ndarray`, shape ``(n, ny, nx)``
        Images to combine.
    noise_var : `numpy.ndarray`, optional
        Expected relative noise variance, broadcastable to ``stack``.
    n_sigma : `float`
        Rejection threshold (standard deviations).
    n_iter : `int`
        Rejection iterations after the median-based first pass.

    Returns
    -------
    mean : `numpy.ndarray` [float32], shape ``(ny, nx)``
        Combined image.
    n_used : `numpy.ndarray` [int], shape ``(ny, nx)``
        Number of frames kept per pixel.
    variance : `numpy.ndarray` [float32], shape ``(ny, nx)``
        Variance of the combined image (stack units squared).
    """
    stack = np.asarray(stack, dtype=np.float32)
    n = stack.shape[0]
    nv = (
        np.ones((1,) + stack.shape[1:], np.float32)
        if noise_var is None
        else np.asarray(noise_var, np.float32)
    )
    nv = np.broadcast_to(np.maximum(nv, 1e-12), stack.shape)
    if n == 1:
        return stack[0].copy(), np.ones(stack.shape[1:], int), nv[0].astype(np.float32)
    center = np.median(stack, axis=0) if n > 2 else stack.mean(axis=0)
    sd = np.sqrt(nv)
    z = (stack - center) / sd
    # noise scale from differences of consecutive frames (robust to artifacts, unbiased for any n)
    scales = []
    for i in range(min(n - 1, 4)):
        d = (stack[i + 1] - stack[i]) / np.sqrt(nv[i] + nv[i + 1])
        scales.append(1.4826 * float(np.median(np.abs(d - np.median(d)))))
    scale = float(np.median(scales))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    if n == 2:
        diff = np.abs(stack[0] - stack[1]) / np.sqrt(nv[0] + nv[1])
        discrepant = diff > n_sigma * scale
        mean = np.where(discrepant, stack.min(axis=0), center)
        n_used = np.where(discrepant, 1, 2)
        var = scale**2 * np.where(discrepant, nv[0], 0.25 * (nv[0] + nv[1]))
        return mean.astype(np.float32), n_used, var.astype(np.float32)
    keep = np.abs(z) <= n_sigma * scale
    for _ in range(n_iter):
        n_used = keep.sum(axis=0)
        total = np.where(keep, stack, 0.0).sum(axis=0)
        center = np.where(n_used > 0, total / np.maximum(n_used, 1), center)
        keep = np.abs(stack - center) <= n_sigma * scale * sd
    n_used = keep.sum(axis=0)
    w = keep / nv
    wsum = w.sum(axis=0)
    mean = np.where(n_used > 0, (w * stack).sum(axis=0) / np.maximum(wsum, 1e-30), np.median(stack, axis=0))
    var = np.where(wsum > 0, scale**2 / np.maximum(wsum, 1e-30), scale**2 * nv.mean(axis=0))
    return mean.astype(np.float32), n_used, var.astype(np.float32)


def _calib_metadata(raws: Sequence[RawImage], calib_type: str) -> dict[str, Any]:
    first = raw_metadata(raws[0])
    keep = ("INSTRUME", "DET-ID", "DETNAME", "FILTER01", "TELESCOP")
    meta: dict[str, Any] = {k: first[k] for k in keep if k in first}
    meta["CALIBTYP"] = calib_type
    meta["NCOMBINE"] = len(raws)
    meta["BUNIT"] = {"bias": "electron", "dark": "electron/s", "flat": ""}[calib_type]
    ids = [str(r.metadata.get("EXPID", "")) for r in raws]
    meta["INPUTS"] = ",".join(ids)[:60]
    return meta


def _check_inputs(raws: Sequence[RawImage], what: str) -> None:
    if len(raws) == 0:
        raise ValueError(f"no {what} exposures to combine")


def combine_bias(
    raws: Sequence[RawImage],
    detector: DetectorSpec,
    *,
    n_sigma: float = 3.0,
) -> Exposure:
    """Master bias: overscan-corrected, gain-corrected bias frames combined with sigma clipping.

    Parameters
    ----------
    raws : sequence of `opendrp.raw.RawImage`
        Bias read-outs of one detector (1 or more).
    detector : `opendrp.instrument.DetectorSpec`
        The detector.
    n_sigma : `float`
        Rejection threshold (standard deviations).

    Returns
    -------
    bias : `opendrp.image.Exposure`
        Residual bias structure in electrons; variance (electrons**2) of the combination.
    """
    _check_inputs(raws, "bias")
    stack = np.stack([assemble_ccd(r, detector, saturation_grow=0)[0] for r in raws])
    rn2 = read_noise_image(detector)[None]
    mean, _, var = clipped_mean(stack, noise_var=rn2, n_sigma=n_sigma)
    mask = np.where(np.isfinite(mean), 0, _BAD).astype(np.int32)
    mean = np.nan_to_num(mean)
    return Exposure(mean, mask, var, metadata=_calib_metadata(raws, "bias"))


def combine_dark(
    raws: Sequence[RawImage],
    detector: DetectorSpec,
    *,
    bias: Exposure | None = None,
    n_sigma: float = 3.0,
) -> Exposure:
    """Master dark: bias-subtracted dark frames, scaled to one second, combined with sigma clipping.

    Returns
    -------
    dark : `opendrp.image.Exposure`
        Dark current in electrons per second; variance in (electrons/s)**2.
    """
    _check_inputs(raws, "dark")
    frames, noise = [], []
    rn2 = read_noise_image(detector)
    for r in raws:
        img = assemble_ccd(r, detector, saturation_grow=0)[0]
        if bias is not None:
            img -= bias.image
        t = float(raw_metadata(r)["EXPTIME"])
        if t <= 0:
            raise ValueError("dark exposure with EXPTIME <= 0")
        frames.append(img / t)
        noise.append((np.maximum(img, 0) + rn2) / t**2)
    mean, _, var = clipped_mean(np.stack(frames), noise_var=np.stack(noise), n_sigma=n_sigma)
    mask = np.zeros(mean.shape, np.int32)
    if bias is not None:
        mask |= bias.mask & _BAD
    meta = _calib_metadata(raws, "dark")
    meta["EXPTIME"] = 1.0
    return Exposure(mean, mask, var, metadata=meta)


def _block_median_model(image: np.ndarray, good: np.ndarray, block: int) -> np.ndarray:
    """Smooth large-scale version of an image: medians of ``block``-pixel cells, bilinearly interpolated."""
    ny, nx = image.shape
    nby, nbx = max(1, ny // block), max(1, nx // block)
    cy, cx = ny // nby, nx // nbx
    sub = np.where(good, image, np.nan)[: nby * cy, : nbx * cx]
    cells = sub.reshape(nby, cy, nbx, cx).transpose(0, 2, 1, 3).reshape(nby, nbx, cy * cx)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(cells, axis=2)
    if np.all(np.isnan(med)):
        return np.ones_like(image)
    med = np.where(np.isnan(med), np.nanmedian(med), med)
    if nby < 2 or nbx < 2:
        return np.full_like(image, float(np.median(med)))
    yc = (np.arange(nby) + 0.5) * cy - 0.5
    xc = (np.arange(nbx) + 0.5) * cx - 0.5
    from scipy import interpolate  # here, not at import (slow to import)

    spline = interpolate.RectBivariateSpline(yc, xc, med, kx=1, ky=1)
    return spline(np.arange(ny, dtype=float), np.arange(nx, dtype=float)).astype(np.float32)


def find_flat_defects(flat: np.ndarray, *, threshold: float = 0.2, block: int = 32) -> np.ndarray:
    """Pixels whose flat-field response departs from the local large-scale response by more than
    ``threshold`` (fractional): dead or hot pixels and columns.

    Parameters
    ----------
    flat : `numpy.ndarray`
        Normalized flat.
    threshold : `float`
        Fractional departure from the smooth flat beyond which a pixel is a defect.
    block : `int`
        Cell size (pixels) of the smooth model; defects must be much smaller than this.

    Returns
    -------
    bad : `numpy.ndarray` [bool]
    """
    finite = np.isfinite(flat)
    smooth = _block_median_model(flat, finite, block)
    with np.errstate(all="ignore"):
        ratio = flat / smooth
    return ~finite | ~(np.abs(ratio - 1.0) <= threshold)


def combine_flat(
    raws: Sequence[RawImage],
    detector: DetectorSpec,
    *,
    bias: Exposure | None = None,
    dark: Exposure | None = None,
    n_sigma: float = 3.0,
    defect_threshold: float = 0.2,
) -> Exposure:
    """Master flat: bias-subtracted flats, each normalized, combined with sigma clipping, normalized to 1.

    Parameters
    ----------
    raws : sequence of `opendrp.raw.RawImage`
        Flat read-outs of one detector and one filter (1 or more).
    detector : `opendrp.instrument.DetectorSpec`
        The detector.
    bias : `opendrp.image.Exposure`, optional
        Master bias (electrons).
    dark : `opendrp.image.Exposure`, optional
        Master dark (electrons per second).
    n_sigma : `float`
        Rejection threshold (standard deviations).
    defect_threshold : `float`
        Pixels departing from the local smooth flat by more than this fraction are masked ``BAD``.

    Returns
    -------
    flat : `opendrp.image.Exposure`
        Relative response, mean 1 over good pixels; variance of the combination; ``BAD`` defects.
    """
    _check_inputs(raws, "flat")
    rn2 = read_noise_image(detector)
    frames, noise = [], []
    sat_any = np.zeros(detector.shape, bool)
    for r in raws:
        img, sat = assemble_ccd(r, detector, saturation_grow=0)
        sat_any |= sat
        if bias is not None:
            img -= bias.image
        if dark is not None:
            img -= float(raw_metadata(r)["EXPTIME"]) * dark.image
        level = float(np.median(img[~sat])) if (~sat).any() else 0.0
        if not level > 0:
            raise ValueError(
                f"flat exposure {r.metadata.get('EXPID', '?')} has no signal (median {level:.3g} e-)"
            )
        frames.append(img / level)
        noise.append((np.maximum(img, 0) + rn2) / level**2)
    mean, _, var = clipped_mean(np.stack(frames), noise_var=np.stack(noise), n_sigma=n_sigma)
    bad = sat_any | find_flat_defects(mean, threshold=defect_threshold)
    if bias is not None:
        bad |= (bias.mask & _BAD) != 0
    good = ~bad
    norm = float(np.mean(mean[good])) if good.any() else 1.0
    mean = np.where(np.isfinite(mean), mean / norm, 0.0).astype(np.float32)
    var = (var / norm**2).astype(np.float32)
    mask = np.where(bad, _BAD, 0).astype(np.int32)
    return Exposure(mean, mask, var, metadata=_calib_metadata(raws, "flat"))
