"""Instrument signature removal: raw ADU read-out to an Exposure in electrons with mask and variance."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OpenDRPError
from ..image import Exposure, mask_bit
from ..instrument.camera import DetectorSpec
from ..raw.format import RawImage
from .assemble import assemble_ccd
from .interpolate import interpolate_rows

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
    mask = np.where(saturated, np.int32(_SAT), np.int32(0))
    if suspect is not None:
        mask[suspect & ~saturated] |= np.int32(_SUSPECT)
    del suspect
    if bias is not None:
        image -= bias.image.astype(np.float32, copy=False)
        mask |= bias.mask & _BAD
    if dark is not None:
        image -= np.float32(meta["EXPTIME"]) * dark.image.astype(np.float32, copy=False)
        mask |= dark.mask & _BAD
    variance = np.maximum(image, np.float32(0.0))
    for amp in detector.amplifiers:
        variance[amp.assembled_slice()] += np.float32(amp.read_noise**2)
    if flat is not None:
        f = flat.image.astype(np.float32, copy=True)
        bad_flat = ~(f > min_flat) | ((flat.mask & _BAD) != 0)
        f[bad_flat] = 1.0
        image /= f
        variance /= f
        variance /= f
        # the master flat's own noise (a few flats of ~20000 e- each: ~0.3%) adds image**2 var(flat)/flat**2
        flat_var = np.asarray(flat.variance)
        if flat_var.shape == f.shape and flat_var.strides != (0, 0) and np.any(flat_var):
            rel = np.divide(flat_var, f, dtype=np.float32)
            rel /= f
            rel[bad_flat] = 0.0
            rel *= image
            rel *= image
            variance += rel
            del rel
        mask[bad_flat] |= np.int32(_BAD)
    if defects is not None:
        if defects.shape != detector.shape:
            raise ValueError(f"defects shape {defects.shape} != detector shape {detector.shape}")
        mask[defects] |= np.int32(_BAD)
    bad = (mask & _BAD) != 0
    if do_interpolate and bad.any():
        image = interpolate_rows(image, bad, inplace=True)
        variance = interpolate_rows(variance, bad, inplace=True)
        mask[bad] |= _INTRP
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
