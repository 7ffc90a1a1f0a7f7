"""Centroids of coadd detections: the positions at which every band's forced photometry is made.

Detection gives isophotal barycentres (sep's ``x``, ``y``): the mean of the pixels above the threshold,
which is pulled by noise at the footprint's edge, by neighbours inside the footprint and by any asymmetry of
the PSF.  Forced PSF photometry at a position off by ``d`` loses a fraction ``~ d**2 / (4 sigma**2)`` of a
Gaussian star's flux (0.7 % for ``d`` = 0.3 pixel and ``sigma`` = 1.8 pixels) and the Object table's
astrometry inherits the error.  Rules (``method``):

* ``"none"``: keep the detection positions.
* ``"windowed"``: the Gaussian-windowed centroid with a PSF-sized circular window (SExtractor's ``XWIN``,
  `opendrp.measurement.measure_sources` with ``centroid=True``); blended sources are fitted with the PSF,
  their neighbours' models subtracted (`opendrp.measurement.psf_fit_centroids`).
* ``"psf"`` (default): as ``"windowed"``, then every source is fitted with the coadd's PSF model at its
  position, position and flux (and a constant), neighbours subtracted (``psf_fit_centroids(...,
  refit_all=True)``): the position that maximizes the PSF flux's likelihood, the one forced photometry with
  that model needs.  Sources with a saturated core keep their windowed position; failed fits keep theirs.
  The fit may move up to ``max_shift`` (default 4) pixels from the windowed centroid: the barycentre of a
  star cut by the coverage's edge (its centre in NO_DATA) is ~0.8 FWHM (3-4 pixels) inside the data, and
  only the PSF fit to the part that is there finds the centre (single-frame fits allow 2 pixels).

Pixels with ``bad_mask_planes`` (default BAD, SAT, NO_DATA, CR) are not used.
"""

from __future__ import annotations

import numpy as np

from ..image import mask_bit
from ..measurement import measure_sources
from ..measurement.centroid import psf_fit_centroids
from ..psf.model import PsfModel

__all__ = ["CENTROID_METHODS", "coadd_centroids"]

#: Centroid methods of `coadd_centroids`.
CENTROID_METHODS: tuple[str, ...] = ("none", "windowed", "psf")


def coadd_centroids(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    psf: PsfModel | None,
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "psf",
    bad_mask_planes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "CR"),
    max_shift: float = 4.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Re-centre detections on a coadd (see the module notes for the rules).

    Parameters
    ----------
    image, variance : `numpy.ndarray`
        Coadd image (nJy per pixel) and variance (nJy**2).
    mask : `numpy.ndarray` [int]
        Coadd mask planes.
    psf : `opendrp.psf.PsfModel` or `None`
        The coadd's PSF (`opendrp.psf.CoaddPsf`); without one only ``"none"`` and a windowed centroid with
        a 2-pixel window are possible.
    x, y : `numpy.ndarray`
        Detection positions (pixels, 0-based).
    method : `str`
        ``"none"``, ``"windowed"`` or ``"psf"``.
    bad_mask_planes : `tuple` [`str`]
        Mask planes of unusable pixels.
    max_shift : `float`
        Largest move (pixels) of the PSF fit from the windowed centroid; a fit moving further fails.

    Returns
    -------
    x, y, x_err, y_err : `numpy.ndarray`
        Positions and their 1-sigma errors (pixels; NaN when not measured).
    flag : `numpy.ndarray` [bool]
        The centroid failed and the detection position (or the windowed one) was kept.
    """
    if method not in CENTROID_METHODS:
        raise ValueError(f"unknown centroid method {method!r}; expected one of {CENTROID_METHODS}")
    x = np.atleast_1d(np.asarray(x, np.float64)).copy()
    y = np.atleast_1d(np.asarray(y, np.float64)).copy()
    n = len(x)
    nan = np.full(n, np.nan)
    if method == "none" or n == 0:
        return x, y, nan, nan.copy(), np.zeros(n, bool)
    m = measure_sources(
        image, variance, mask, psf, x, y, centroid=True, petrosian=False, bad_mask_planes=bad_mask_planes
    )
    xw, yw = np.asarray(m["x"], float), np.asarray(m["y"], float)
    xe, ye = np.asarray(m["xErr"], float), np.asarray(m["yErr"], float)
    flag = np.asarray(m["centroid_flag"], bool)
    bad_w = flag | ~np.isfinite(xw) | ~np.isfinite(yw)
    xw, yw = np.where(bad_w, x, xw), np.where(bad_w, y, yw)
    if method == "windowed" or psf is None:
        return xw, yw, xe, ye, bad_w
    var = np.where(np.isfinite(variance), variance, 0.0)
    bad = (np.asarray(mask) & mask_bit(*bad_mask_planes)) != 0
    bad |= ~np.isfinite(image)
    data = np.where(bad, 0.0, image)
    sat = np.asarray(m["pixelFlags_saturatedCenter"], bool)
    fit = psf_fit_centroids(data, var, bad, psf, xw, yw, fixed=sat, refit_all=True, max_shift=max_shift)
    ok = ~fit.flag & ~sat & np.isfinite(fit.x) & np.isfinite(fit.y)
    return (
        np.where(ok, fit.x, xw),
        np.where(ok, fit.y, yw),
        np.where(ok, fit.x_err, xe),
        np.where(ok, fit.y_err, ye),
        bad_w & ~ok,
    )
