"""Aperture corrections: each flux algorithm scaled to the ``calibFlux`` aperture, varying across the CCD.

As Rubin's ``MeasureApCorrTask`` / ``ApplyApCorrTask``: on bright, isolated, unsaturated PSF stars the ratio
``calibFlux / flux`` of each algorithm (``psfFlux``, ``gaussianFlux``, ``kronFlux``) is fitted as a low-order
polynomial in the CCD position (3-sigma clipped least squares; the degree is lowered when the stars are
few), then every source's flux and error are multiplied by the correction at its position.  The correction's
own uncertainty (common to neighbouring sources) is kept in ``{algorithm}_apCorrErr``, not added to the
flux errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table

from ..psf.model import monomial_terms

__all__ = [
    "APCORR_ALGORITHMS",
    "ApertureCorrection",
    "apply_aperture_corrections",
    "fit_aperture_corrections",
]

#: Flux algorithms corrected to the calibration aperture by default.
APCORR_ALGORITHMS: tuple[str, ...] = ("psfFlux", "gaussianFlux", "kronFlux")

_KEY_PREFIX = {"psfFlux": "APCP", "gaussianFlux": "APCG", "kronFlux": "APCK"}


@dataclasses.dataclass
class ApertureCorrection:
    """A polynomial aperture correction ``calibFlux / flux`` of one algorithm over a CCD.

    Attributes
    ----------
    algorithm : `str`
        Flux column it corrects.
    degree : `int`
        Polynomial degree in the position (0: a constant).
    coefficients : `numpy.ndarray`
        One per `opendrp.psf.model.monomial_terms` term of ``u, v`` (positions mapped onto [-1, 1]).
    covariance : `numpy.ndarray`
        Covariance of the coefficients.
    x_range, y_range : `tuple` [`float`, `float`]
        Pixel ranges mapped onto [-1, 1].
    n_stars : `int`
        Stars used (after clipping).
    rms : `float`
        Rms of the fit residuals (fraction).
    """

    algorithm: str
    degree: int
    coefficients: np.ndarray
    covariance: np.ndarray
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    n_stars: int
    rms: float

    def _design(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _design(x, y, self.degree, self.x_range, self.y_range)

    def evaluate(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Correction and its standard error at pixel positions ``(x, y)``."""
        a = self._design(np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)))
        value = a @ self.coefficients
        err = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", a, self.covariance, a), 0.0))
        return value, err

    def to_metadata(self) -> dict[str, Any]:
        """Metadata, 8-character keys: ``APCP``/``APCG``/``APCK`` + ``DEG``, ``N``, ``RMS``, ``00``..."""
        p = _KEY_PREFIX.get(self.algorithm, "APC" + self.algorithm[:1].upper())
        meta: dict[str, Any] = {f"{p}DEG": self.degree, f"{p}N": self.n_stars, f"{p}RMS": self.rms}
        meta.update({f"{p}{i:02d}": float(c) for i, c in enumerate(self.coefficients)})
        return meta


def _design(
    x: np.ndarray, y: np.ndarray, degree: int, x_range: tuple[float, float], y_range: tuple[float, float]
) -> np.ndarray:
    u = 2.0 * (x - x_range[0]) / max(x_range[1] - x_range[0], 1e-9) - 1.0
    v = 2.0 * (y - y_range[0]) / max(y_range[1] - y_range[0], 1e-9) - 1.0
    return np.stack([u**i * v**j for i, j in monomial_terms(degree)], axis=1)


def fit_aperture_corrections(
    src: Table,
    stars: np.ndarray,
    *,
    shape: tuple[int, int],
    algorithms: Sequence[str] = APCORR_ALGORITHMS,
    reference: str = "calibFlux",
    degree: int = 2,
    min_stars_per_term: int = 3,
    n_sigma: float = 3.0,
    n_iter: int = 3,
) -> dict[str, ApertureCorrection]:
    """Fit ``reference / algorithm`` on the given stars for each algorithm.

    Parameters
    ----------
    src : `astropy.table.Table`
        Measured sources (``x``, ``y``, fluxes, errors and ``_flag`` columns, instrumental units).
    stars : `numpy.ndarray` [bool]
        The stars to use (e.g. the PSF stars: bright, isolated, unsaturated).
    shape : `tuple` [`int`, `int`]
        CCD shape ``(ny, nx)``: the polynomial's domain.
    algorithms : sequence of `str`
        Flux columns to correct.
    reference : `str`
        The aperture flux column the others are scaled to.
    degree : `int`
        Largest polynomial degree; lowered until there are ``min_stars_per_term`` stars per term.
    n_sigma, n_iter : `float`, `int`
        Clipping of the residuals (robust sigma), iterations.

    Returns
    -------
    `dict` [`str`, `ApertureCorrection`]
        One entry per algorithm that has at least one usable star.
    """
    ny, nx = shape
    x_range, y_range = (0.0, float(nx - 1)), (0.0, float(ny - 1))
    x, y = np.asarray(src["x"], float), np.asarray(src["y"], float)
    ref = np.asarray(src[reference], float)
    ref_err = np.asarray(src[reference + "Err"], float)
    ref_ok = (
        np.isfinite(ref)
        & (ref > 0)
        & ~np.asarray(src.columns.get(reference + "_flag", np.zeros(len(src), bool)))
    )
    out: dict[str, ApertureCorrection] = {}
    for alg in algorithms:
        flux = np.asarray(src[alg], float)
        err = np.asarray(src[alg + "Err"], float)
        flag = np.asarray(src.columns.get(alg + "_flag", np.zeros(len(src), bool)), bool)
        use = np.asarray(stars, bool) & ref_ok & ~flag & np.isfinite(flux) & (flux > 0)
        if not use.any():
            continue
        ratio = ref[use] / flux[use]
        sig = ratio * np.hypot(ref_err[use] / ref[use], err[use] / flux[use])
        sig = np.where(
            np.isfinite(sig) & (sig > 0), sig, np.nanmedian(sig) if np.isfinite(sig).any() else 1.0
        )
        deg = int(degree)
        while deg > 0 and use.sum() < min_stars_per_term * len(monomial_terms(deg)):
            deg -= 1
        a_all = _design(x[use], y[use], deg, x_range, y_range)
        keep = np.ones(ratio.size, bool)
        coef = np.zeros(a_all.shape[1])
        cov = np.zeros((a_all.shape[1], a_all.shape[1]))
        for _ in range(n_iter + 1):
            a = a_all[keep] / sig[keep, None]
            b = ratio[keep] / sig[keep]
            coef, *_ = np.linalg.lstsq(a, b, rcond=None)
            resid = ratio - a_all @ coef
            scatter = 1.4826 * float(np.median(np.abs(resid[keep]))) if keep.sum() > 2 else 0.0
            new_keep = np.abs(resid) <= max(n_sigma * scatter, 1e-12) if scatter > 0 else keep
            if np.array_equal(new_keep, keep) or new_keep.sum() < a_all.shape[1]:
                break
            keep = new_keep
        resid = ratio[keep] - a_all[keep] @ coef
        dof = max(int(keep.sum()) - a_all.shape[1], 1)
        # coefficient covariance from the weighted normal equations, scaled by the reduced chi2
        a = a_all[keep] / sig[keep, None]
        chi2 = float(np.sum((resid / sig[keep]) ** 2)) / dof
        cov = np.linalg.pinv(a.T @ a) * max(chi2, 1.0)
        out[alg] = ApertureCorrection(
            algorithm=alg,
            degree=deg,
            coefficients=coef,
            covariance=cov,
            x_range=x_range,
            y_range=y_range,
            n_stars=int(keep.sum()),
            rms=float(np.sqrt(np.mean(resid**2))) if resid.size else float("nan"),
        )
    return out


def apply_aperture_corrections(src: Table, corrections: dict[str, ApertureCorrection]) -> None:
    """Multiply each corrected algorithm's flux and error by its correction (in place).

    Adds ``{algorithm}_apCorr`` and ``{algorithm}_apCorrErr`` (1 and 0 for algorithms without a correction)
    and sets ``{algorithm}_flag_apCorr`` where there was none or it is not positive.
    """
    x, y = np.asarray(src["x"], float), np.asarray(src["y"], float)
    for alg in APCORR_ALGORITHMS if not corrections else sorted(set(APCORR_ALGORITHMS) | set(corrections)):
        if alg not in src.colnames:
            continue
        corr = corrections.get(alg)
        if corr is None:
            value, err = np.ones(len(src)), np.zeros(len(src))
            bad = np.ones(len(src), bool)
        else:
            value, err = corr.evaluate(x, y)
            bad = ~(value > 0)
            value = np.where(bad, 1.0, value)
        src[alg] = np.asarray(src[alg], float) * value
        src[alg + "Err"] = np.asarray(src[alg + "Err"], float) * value
        src[alg + "_apCorr"] = value
        src[alg + "_apCorrErr"] = err
        src[alg + "_flag_apCorr"] = bad
