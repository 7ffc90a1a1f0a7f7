"""Photometric zero point: the scale from instrumental fluxes to reference fluxes (nJy).

The zero point may vary linearly across the CCD: thin clouds change the transparency across the field (by
~1% over a CCD for a gradient of 0.05 mag/deg), which a single number per CCD leaves in every calibrated flux.
With the stars' positions, a plane ``zp(x, y) = zp0 + gx (x - x0) + gy (y - y0)`` is fitted (``x0, y0`` the
stars' weighted mean position) and carried by `opendrp.image.PhotoCalib`, whose flux errors then include the
plane's uncertainty at each position.
"""

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
    gradient_mag_per_pixel: tuple[float, float] = (0.0, 0.0)  # d(zero point)/dx, d/dy (mag per pixel)


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
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    gradient_min_stars: int = 30,
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
    x, y : `numpy.ndarray`, optional
        Pixel positions of the stars: with at least ``gradient_min_stars`` usable stars spread over more than
        a quarter of the CCD's extent in both axes (``ptp``), the zero point is fitted as a plane.
    gradient_min_stars : `int`
        Fewest stars for a plane.

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
    has_xy = x is not None and y is not None
    px = np.asarray(x, float) if has_xy else np.zeros_like(zp)
    py = np.asarray(y, float) if has_xy else np.zeros_like(zp)
    used = good.copy()
    mean, extra2 = float(np.median(zp[good])), 0.0
    coef = np.array([mean, 0.0, 0.0])
    ref_xy = (0.0, 0.0)
    scatter = 0.0
    for _ in range(n_iter):
        w = np.where(used, 1.0 / (sig2 + extra2), 0.0)
        plane = has_xy and _plane_ok(px[used], py[used], gradient_min_stars)
        coef, cov, ref_xy = _weighted_fit(zp, px, py, w, used, plane)
        model = _evaluate(coef, px, py, ref_xy)
        resid = zp[used] - model[used]
        scatter = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        # intrinsic scatter beyond the errors (e.g. colour terms, variability)
        chi2 = float(np.median(resid**2 / sig2[used]))
        extra2 = max(0.0, scatter**2 - float(np.median(sig2[used]))) if chi2 > 1.0 else 0.0
        new = good & (np.abs(zp - model) < clip_sigma * np.sqrt(np.maximum(scatter**2, sig2 + extra2)))
        if new.sum() < min_stars or np.array_equal(new, used):
            break
        used = new
    w = np.where(used, 1.0 / (sig2 + extra2), 0.0)
    plane = has_xy and _plane_ok(px[used], py[used], gradient_min_stars)
    coef, cov, ref_xy = _weighted_fit(zp, px, py, w, used, plane)
    mean = float(coef[0])
    zp_err = float(np.sqrt(cov[0, 0]))
    calib = float(10 ** (0.4 * mean))  # ref / inst
    calib_err = calib * zp_err / 1.0857
    k = 0.4 * np.log(10.0)  # d ln(calibration) / d zp
    pc = PhotoCalib(
        calib,
        calib_err,
        gradient_x=float(k * coef[1]),
        gradient_y=float(k * coef[2]),
        gradient_x_err=float(k * np.sqrt(cov[1, 1])),
        gradient_y_err=float(k * np.sqrt(cov[2, 2])),
        x_ref=ref_xy[0],
        y_ref=ref_xy[1],
    )
    model = _evaluate(coef, px, py, ref_xy)
    slope, slope_err = float("nan"), float("nan")
    if colour is not None:
        c = np.asarray(colour, float)
        sel = used & np.isfinite(c)
        if sel.sum() >= 3 and np.ptp(c[sel]) > 0:
            ws = 1.0 / (sig2[sel] + extra2)
            cm = float(np.sum(ws * c[sel]) / np.sum(ws))
            sxx = float(np.sum(ws * (c[sel] - cm) ** 2))
            slope = float(np.sum(ws * (c[sel] - cm) * (zp[sel] - model[sel])) / sxx)
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
        gradient_mag_per_pixel=(float(coef[1]), float(coef[2])),
    )


def _plane_ok(x: np.ndarray, y: np.ndarray, min_stars: int) -> bool:
    """Enough stars, spread over both axes, for a plane."""
    if x.size < max(min_stars, 3):
        return False
    span_x, span_y = float(np.ptp(x)), float(np.ptp(y))
    return bool(span_x > 0 and span_y > 0 and min(span_x, span_y) > 0.25 * max(span_x, span_y))


def _weighted_fit(
    zp: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray, used: np.ndarray, plane: bool
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Weighted mean (or plane about the weighted mean position) of the used stars' zero points.

    Returns the coefficients ``(zp0, gx, gy)`` (zero gradients without ``plane``), their covariance and the
    reference position.
    """
    ww = w[used]
    sw = float(np.sum(ww))
    if not plane:
        mean = float(np.sum(ww * zp[used]) / sw)
        cov = np.zeros((3, 3))
        cov[0, 0] = 1.0 / sw
        return np.array([mean, 0.0, 0.0]), cov, (0.0, 0.0)
    x0 = float(np.sum(ww * x[used]) / sw)
    y0 = float(np.sum(ww * y[used]) / sw)
    a = np.column_stack([np.ones(ww.size), x[used] - x0, y[used] - y0])
    ata = a.T @ (a * ww[:, None])
    cov = np.linalg.inv(ata)
    coef = cov @ (a.T @ (ww * zp[used]))
    return coef, cov, (x0, y0)


def _evaluate(coef: np.ndarray, x: np.ndarray, y: np.ndarray, ref_xy: tuple[float, float]) -> np.ndarray:
    return coef[0] + coef[1] * (x - ref_xy[0]) + coef[2] * (y - ref_xy[1])
