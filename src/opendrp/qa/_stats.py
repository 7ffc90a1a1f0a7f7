"""Small robust statistics and unit helpers used by the QA metrics."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AB_ZEROPOINT_NJY",
    "flux_to_mag",
    "robust_scatter",
    "sky_offsets_mas",
]

#: AB magnitude of a flux of 1 nJy: m = 31.4 - 2.5 log10(f / nJy).
AB_ZEROPOINT_NJY = 31.4

_MAD_TO_SIGMA = 1.4826


def flux_to_mag(flux_njy: ArrayLike) -> NDArray[np.float64]:
    """AB magnitude of a flux; NaN where the flux is not positive.

    Parameters
    ----------
    flux_njy : array_like
        Flux (nJy).

    Returns
    -------
    mag : `numpy.ndarray`
        AB magnitude (mag).
    """
    f = np.asarray(flux_njy, dtype=np.float64)
    out = np.full(f.shape, np.nan)
    pos = f > 0
    out[pos] = AB_ZEROPOINT_NJY - 2.5 * np.log10(f[pos])
    return out


def robust_scatter(x: ArrayLike) -> float:
    """Robust standard deviation, 1.4826 times the median absolute deviation.

    Parameters
    ----------
    x : array_like
        Values; non-finite values are ignored.

    Returns
    -------
    sigma : `float`
        Robust scatter in the units of ``x``; NaN if there are no finite values.
    """
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan")
    return float(_MAD_TO_SIGMA * np.median(np.abs(a - np.median(a))))


def sky_offsets_mas(
    ra: ArrayLike, dec: ArrayLike, ra_ref: ArrayLike, dec_ref: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Offsets of positions from reference positions, in RA cos(Dec) and Dec.

    Parameters
    ----------
    ra, dec : array_like
        Measured positions (deg).
    ra_ref, dec_ref : array_like
        Reference positions (deg).

    Returns
    -------
    dra_cos_dec, ddec : `numpy.ndarray`
        ``(ra - ra_ref) * cos(dec_ref)`` (RA difference wrapped to [-180, 180) deg) and
        ``dec - dec_ref`` (mas). Accurate to < 1e-6 relative for offsets below an arcsecond.
    """
    ra_a = np.asarray(ra, dtype=np.float64)
    ra_r = np.asarray(ra_ref, dtype=np.float64)
    dra = (ra_a - ra_r + 180.0) % 360.0 - 180.0
    dec_r = np.asarray(dec_ref, dtype=np.float64)
    dra_cos = dra * np.cos(np.radians(dec_r)) * 3.6e6
    ddec = (np.asarray(dec, dtype=np.float64) - dec_r) * 3.6e6
    return dra_cos, ddec
