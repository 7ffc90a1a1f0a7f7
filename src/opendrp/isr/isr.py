"""Instrument signature removal: raw ADU read-out to an Exposure in electrons with mask and variance."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OpenDRPError
from ..image import Exposure, mask_bit
from ..instrument.camera import DetectorSpec
from ..raw.format import RawImage
from .assemble import assemble_ccd
from .interpolate import interpolate_rows_many

__all__ = ["raw_metadata", "read_noise_image", "run_isr"]

_BAD = mask_bit("BAD")
_SAT = mask_bit("SAT")
_INTRP = mask_bit("INTRP")
_SUSPECT = mask_bit("SUSPECT")


def read_noise_image(detector: DetectorSpec) -> np.ndarray:
    """Read-noise variance (electrons**2) of each assembled pixel, from its amplifier."""
    out = np.empty(detector.shape, dtype=np.float32)
    for amp in detector.amplifiers:
        out[amp.assembled_slice()] = amp.read_noise**2
    return out


def _check_calib(calib: Exposure | None, detector: DetectorSpec, name: str) -> None:
    if calib is not None and calib.shape != detector.shape:
        raise ValueError(f"{name} shape {calib.shape} != detector shape {detector.shape}")


def raw_metadata(raw: RawImage) -> dict[str, Any]:
    """FITS-compatible metadata of a raw read-out, with ``EXPTIME`` guaranteed (0 when absent)."""
    meta = {k: v for k, v in raw.metadata.items() if not str(k).startswith(("DATASEC", "BIASSEC"))}
    try:
        meta["EXPTIME"] = float(raw.header.exposure_time)
    except (OpenDRPError, KeyError, TypeError, ValueError):
        meta["EXPTIME"] = float(meta.get("EXPTIME", 0.0) or 0.0)
    return meta


_BLOCK_ROWS = 128


def _flat_variance(flat: Exposure, rows: slice) -> np.ndarray | None:
    """The master flat's variance rows, or `None` when it has none (a broadcast or all-zero plane)."""
    var = np.asarray(flat.variance)
    if var.shape != flat.shape or var.strides == (0, 0):
        return None
    return var[rows]


def _isr_block(
    image: np.ndarray,
    mask: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    saturated: np.ndarray,
    suspect: np.ndarray | None,
    read_var: np.ndarray,
    *,
    bias: tuple[np.ndarray, np.ndarray] | None,
    dark: tuple[np.ndarray, np.ndarray] | None,
    exptime: np.float32,
    flat: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
    defects: np.ndarray | None,
    min_flat: float,
) -> None:
    """Bias, dark, variance, flat and masks of a block of rows, in place (``image`` in electrons)."""
    np.multiply(saturated, np.int32(_SAT), out=mask, casting="unsafe")
    if suspect is not None:
        suspect &= ~saturated
        np.bitwise_or(mask, np.int32(_SUSPECT), out=mask, where=suspect)
    if bias is not None:
        image -= bias[0].astype(np.float32, copy=False)
        mask |= bias[1] & _BAD
    tmp = np.empty(image.shape, np.float32)
    if dark is not None:
        np.multiply(dark[0].astype(np.float32, copy=False), exptime, out=tmp)
        image -= tmp
        mask |= dark[1] & _BAD
    np.maximum(image, np.float32(0.0), out=variance)
    variance += read_var
    if flat is not None:
        f = tmp
        f[...] = flat[0]
        bad_flat = ~(f > min_flat)
        bad_flat |= (flat[1] & _BAD) != 0
        np.copyto(f, np.float32(1.0), where=bad_flat)
        image /= f
        variance /= f
        variance /= f
        # the master flat's own noise (a few flats of ~20000 e- each: ~0.3%) adds image**2 var(flat)/flat**2
        if flat[2] is not None:
            rel = np.divide(flat[2], f, dtype=np.float32)
            rel /= f
            np.copyto(rel, np.float32(0.0), where=bad_flat)
            rel *= image
            rel *= image
            variance += rel
        np.bitwise_or(mask, np.int32(_BAD), out=mask, where=bad_flat)
    if defects is not None:
        np.bitwise_or(mask, np.int32(_BAD), out=mask, where=defects)
    np.not_equal(mask & _BAD, 0, out=bad)


def run_isr(
    raw: RawImage,
    detector: DetectorSpec,
    *,
    bias: Exposure | None = None,
    dark: Exposure | None = None,
    flat: Exposure | None = None,
    defects: np.ndarray | None = None,
    do_overscan: bool = True,
    do_interpolate: bool = True,
    overscan_smooth_rows: int = 1,
    saturation_grow: int = 1,
    saturation_margin: float = 5.0,
    suspect_fraction: float | None = 0.9,
    min_flat: float = 0.05,
) -> Exposure:
    """Remove the instrument signature of one CCD read-out.

    Steps: per-row overscan subtraction (ADU), gain (to electrons), assembly of the amplifiers, saturation
    mask, bias subtraction, dark subtraction, variance (Poisson + read noise, electrons**2), flat-field
    division (variance divided by flat**2), and interpolation over defects (``BAD`` pixels of the
    calibration products, marked ``INTRP``).

    Parameters
    ----------
    raw : `opendrp.raw.RawImage`
        The raw read-out (ADU).
    detector : `opendrp.instrument.DetectorSpec`
        Read-out geometry and electronics of the CCD.
    bias : `opendrp.image.Exposure`, optional
        Master bias in electrons (after overscan and gain), from `opendrp.calib.combine_bias`.
    dark : `opendrp.image.Exposure`, optional
        Master dark in electrons per second, from `opendrp.calib.combine_dark`; scaled by ``EXPTIME``.
    flat : `opendrp.image.Exposure`, optional
        Master flat normalized to mean 1, from `opendrp.calib.combine_flat`; its variance plane (the noise of
        the combined flats), when given, is propagated into the variance.
    defects : `numpy.ndarray` [bool], optional
        Known defective pixels (e.g. `opendrp.calib.defects_to_mask` of the certified defects): masked
        ``BAD`` and interpolated.
    do_overscan : `bool`
        Subtract the serial overscan (turn off only when the bias carries the full offset).
    do_interpolate : `bool`
        Interpolate over ``BAD`` pixels along rows (they stay masked ``BAD``, and are marked ``INTRP``).
    overscan_smooth_rows : `int`
        Median-filter length (rows) of the per-row overscan levels.
    saturation_grow : `int`
        Growth (pixels) of the saturation mask.
    saturation_margin : `float`
        Raw values within this many read-noise sigmas of the saturation level are saturated (``SAT``).
    suspect_fraction : `float` or `None`
        Unsaturated raw values at or above this fraction of the saturation level are ``SUSPECT`` (beyond the
        linear range); `None` for no suspect mask.
    min_flat : `float`
        Flat values below this are treated as defects (``BAD``).

    Returns
    -------
    exposure : `opendrp.image.Exposure`
        Image in electrons, mask (``SAT``, ``SUSPECT``, ``BAD``, ``INTRP``), variance in electrons**2;
        metadata copied from the raw header (including ``EXPTIME`` in s) with ``BUNIT = "electron"``.
    """
    for calib, name in ((bias, "bias"), (dark, "dark"), (flat, "flat")):
        _check_calib(calib, detector, name)
    if defects is not None and defects.shape != detector.shape:
        raise ValueError(f"defects shape {defects.shape} != detector shape {detector.shape}")
    suspect = np.zeros(detector.shape, bool) if suspect_fraction is not None else None
    image, saturated = assemble_ccd(
        raw,
        detector,
        do_overscan=do_overscan,
        overscan_smooth_rows=overscan_smooth_rows,
        saturation_grow=saturation_grow,
        saturation_margin=saturation_margin,
        suspect_fraction=suspect_fraction,
        suspect_out=suspect,
    )
    meta = raw_metadata(raw)
    ny, nx = detector.shape
    # per-column read-noise variance (the amplifiers sit side by side, each spanning all rows)
    read_var = np.empty(nx, np.float32)
    for amp in detector.amplifiers:
        read_var[amp.assembled_slice()[1]] = amp.read_noise**2
    mask = np.empty(detector.shape, np.int32)
    variance = np.empty(detector.shape, np.float32)
    bad = np.empty(detector.shape, bool)
    exptime = np.float32(meta["EXPTIME"])
    # blocks of rows: every step below is a pass over the same few MB (in the cache), not over the CCD
    for y0 in range(0, ny, _BLOCK_ROWS):
        rows = slice(y0, min(y0 + _BLOCK_ROWS, ny))
        _isr_block(
            image[rows],
            mask[rows],
            variance[rows],
            bad[rows],
            saturated[rows],
            None if suspect is None else suspect[rows],
            read_var,
            bias=None if bias is None else (bias.image[rows], bias.mask[rows]),
            dark=None if dark is None else (dark.image[rows], dark.mask[rows]),
            exptime=exptime,
            flat=None if flat is None else (flat.image[rows], flat.mask[rows], _flat_variance(flat, rows)),
            defects=None if defects is None else defects[rows],
            min_flat=min_flat,
        )
    del suspect, saturated
    if do_interpolate and bad.any():
        interpolate_rows_many((image, variance), bad)
        np.bitwise_or(mask, np.int32(_INTRP), out=mask, where=bad)
    meta.update(
        {
            "BUNIT": "electron",
            "ISR_OVSC": bool(do_overscan),
            "ISR_BIAS": bias is not None,
            "ISR_DARK": dark is not None,
            "ISR_FLAT": flat is not None,
            "ISR_DEFC": defects is not None,
        }
    )
    return Exposure(image=image, mask=mask, variance=variance, metadata=meta)
