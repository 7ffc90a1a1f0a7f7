"""Photometric zero point: the scale from instrumental fluxes to reference fluxes (nJy)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import AlgorithmError
from ..image import PhotoCalib, njy_to_mag

__all__ = ["ZeroPointResult", "fit_zero_point"]


@dataclasses.dataclass
class ZeroPointResult:
    """Fitted calibration and its statistics."""

    photo_calib: PhotoCalib  # nJy per instrumental unit
    zero_point: float  # AB magnitude of one instrumental unit (e.g. one electron)
    zero_point_err: float  # mag
    scatter_mag: float  # robust scatter of the star-by-star zero points (mag)
    used: np.ndarray  # bool per input pair
    n_used: int
    colour_slope: float = float("nan")  # d(zero point)/d(colour) of the used stars (mag/mag), a diagnostic
    colour_slope_err: float = float("nan")


def fit_zero_point(
    inst_flux: np.ndarray,
    inst_flux_err: np.ndarray,
    ref_flux: np.ndarray,
    ref_flux_err: np.ndarray | None = None,
    *,
    min_snr: float = 20.0,
    clip_sigma: float = 3.0,
    n_iter: int = 5,
    floor_mag: float = 0.005,
    min_stars: int = 3,
    colour: np.ndarray | None = None,
) -> ZeroPointResult:
    """Robust weighted mean of ``ref_flux / inst_flux`` over matched stars, in magnitudes.

    Each star gives ``zp_i = 2.5 log10(ref_i / inst_i)`` with variance from both flux errors plus
    ``floor_mag**2``; the weighted mean is iterated with ``clip_sigma`` clipping about the median, with the
    intrinsic scatter added to the weights when the errors underestimate it.

    Parameters
    ----------
    inst_flux, inst_flux_err : `numpy.ndarray`
        Instrumental fluxes (e.g. PSF fluxes in electrons) and errors.
    ref_flux, ref_flux_err : `numpy.ndarray`
        Reference fluxes (nJy) and errors.
    min_snr : `float`
        Minimum S/N of both fluxes.
    clip_sigma : `float`
        Rejection threshold.
    min_stars : `int`
        Fewest stars for a solution.
    colour : `numpy.ndarray`, optional
        Reference colour (mag) of each star: the residual zero point's slope against it is reported
        (``colour_slope``): a non-zero slope means a colour term is missing or wrong.

    Raises
    ------
    AlgorithmError
        With fewer than ``min_stars`` usable stars.
    """
    fi = np.asarray(inst_flux, float)
    ei = np.asarray(inst_flux_err, float)
    fr = np.asarray(ref_flux, float)
    er = np.zeros_like(fr) if ref_flux_err is None else np.asarray(ref_flux_err, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = (
            np.isfinite(fi)
            & np.isfinite(fr)
            & (fi > 0)
            & (fr > 0)
            & (fi / ei > min_snr)
            & (np.where(er > 0, fr / er, np.inf) > min_snr)
        )
        zp = 2.5 * np.log10(fr / fi)
        sig2 = (
            (1.0857 * ei / fi) ** 2 + (1.0857 * np.where(np.isfinite(er), er, 0.0) / fr) ** 2 + floor_mag**2
        )
    if good.sum() < min_stars:
        raise AlgorithmError(f"only {int(good.sum())} stars usable for the zero point (need {min_stars})")
    used = good.copy()
    mean, extra2 = float(np.median(zp[good])), 0.0
    scatter = 0.0
    for _ in range(n_iter):
        w = np.where(used, 1.0 / (sig2 + extra2), 0.0)
        mean = float(np.sum(w * np.where(used, zp, 0.0)) / np.sum(w))
        resid = zp[used] - mean
        scatter = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        # intrinsic scatter beyond the errors (e.g. colour terms, variability)
        chi2 = float(np.median(resid**2 / sig2[used]))
        extra2 = max(0.0, scatter**2 - float(np.median(sig2[used]))) if chi2 > 1.0 else 0.0
        new = good & (np.abs(zp - mean) < clip_sigma * np.sqrt(np.maximum(scatter**2, sig2 + extra2)))
        if new.sum() < min_stars or np.array_equal(new, used):
            break
        used = new
    w = np.where(used, 1.0 / (sig2 + extra2), 0.0)
    zp_err = float(1.0 / np.sqrt(np.sum(w)))
    calib = float(10 ** (0.4 * mean))  # ref / inst
    calib_err = calib * zp_err / 1.0857
    pc = PhotoCalib(calib, calib_err)
    slope, slope_err = float("nan"), float("nan")
    if colour is not None:
        c = np.asarray(colour, float)
        sel = used & np.isfinite(c)
        if sel.sum() >= 3 and np.ptp(c[sel]) > 0:
            ws = 1.0 / (sig2[sel] + extra2)
            cm = float(np.sum(ws * c[sel]) / np.sum(ws))
            sxx = float(np.sum(ws * (c[sel] - cm) ** 2))
            slope = float(np.sum(ws * (c[sel] - cm) * (zp[sel] - mean)) / sxx)
            slope_err = float(1.0 / np.sqrt(sxx))
    return ZeroPointResult(
        photo_calib=pc,
        zero_point=float(njy_to_mag(calib)),
        zero_point_err=zp_err,
        scatter_mag=scatter,
        used=used,
        n_used=int(used.sum()),
        colour_slope=slope,
        colour_slope_err=slope_err,
    )
