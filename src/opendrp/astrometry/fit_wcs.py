"""Least-squares fit of a TAN-SIP WCS to matched pixel and sky positions."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.wcs import WCS, FITSFixedWarning, Sip

from ..psf.model import monomial_terms
from .tangent import sky_to_tangent, tangent_to_sky

__all__ = ["fit_tan_sip", "wcs_residuals_mas"]


def _design(u: np.ndarray, v: np.ndarray, order: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    terms = monomial_terms(order)
    return np.stack([u**i * v**j for i, j in terms], axis=1), terms


def fit_tan_sip(
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    *,
    order: int = 3,
    crpix: tuple[float, float] | None = None,
    weights: np.ndarray | None = None,
) -> WCS:
    """Fit a TAN WCS with SIP distortion of polynomial ``order`` (1 = plain TAN) to matched positions.

    Parameters
    ----------
    x, y : `numpy.ndarray`
        0-based pixel positions.
    ra, dec : `numpy.ndarray`
        Sky positions, degrees.
    order : `int`
        Total polynomial order of the pixel -> tangent-plane mapping (SIP order when >= 2).
    crpix : `tuple`, optional
        0-based reference pixel (default: the centre of the points' bounding box).
    weights : `numpy.ndarray`, optional
        Least-squares weights (1 / sigma**2).

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        ``CTYPE = RA---TAN-SIP`` (or ``RA---TAN`` for order 1); ``wcs.wcs_pix2world``-ready with origin 0.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    n_terms = len(monomial_terms(order))
    if x.size < n_terms + 2:
        raise ValueError(f"{x.size} points are too few for an order-{order} fit ({n_terms} terms per axis)")
    if crpix is None:
        crpix = (0.5 * (x.min() + x.max()), 0.5 * (y.min() + y.max()))
    u, v = x - crpix[0], y - crpix[1]
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    sw = np.sqrt(w)
    # tangent point: start from the sky position nearest to crpix, then move it onto the fit's constant term
    i0 = int(np.argmin(u * u + v * v))
    ra0, dec0 = float(ra[i0]), float(dec[i0])
    design, terms = _design(u, v, order)
    for _ in range(3):
        xi, eta = sky_to_tangent(ra, dec, ra0, dec0)
        coef_xi, *_ = np.linalg.lstsq(design * sw[:, None], xi * sw, rcond=None)
        coef_eta, *_ = np.linalg.lstsq(design * sw[:, None], eta * sw, rcond=None)
        ra0_new, dec0_new = tangent_to_sky(coef_xi[0], coef_eta[0], ra0, dec0)
        ra0, dec0 = float(ra0_new), float(dec0_new)
    xi, eta = sky_to_tangent(ra, dec, ra0, dec0)
    coef_xi, *_ = np.linalg.lstsq(design * sw[:, None], xi * sw, rcond=None)
    coef_eta, *_ = np.linalg.lstsq(design * sw[:, None], eta * sw, rcond=None)
    idx = {t: k for k, t in enumerate(terms)}
    cd = np.array(
        [[coef_xi[idx[(1, 0)]], coef_xi[idx[(0, 1)]]], [coef_eta[idx[(1, 0)]], coef_eta[idx[(0, 1)]]]]
    )
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]  # FITS is 1-based
    wcs.wcs.crval = [ra0 % 360.0, dec0]
    wcs.wcs.cd = cd
    if order >= 2:
        cd_inv = np.linalg.inv(cd)
        a = np.zeros((order + 1, order + 1))
        b = np.zeros((order + 1, order + 1))
        for (i, j), k in idx.items():
            if i + j < 2:
                continue
            f, g = cd_inv @ np.array([coef_xi[k], coef_eta[k]])
            a[i, j], b[i, j] = f, g
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    else:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs.wcs.set()
    return wcs


def wcs_residuals_mas(wcs: WCS, x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """On-sky residuals (milliarcsec) of pixel positions mapped through ``wcs`` against (ra, dec)."""
    from .tangent import angular_separation

    r, d = wcs.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
    return angular_separation(r, d, ra, dec) * 3.6e6
