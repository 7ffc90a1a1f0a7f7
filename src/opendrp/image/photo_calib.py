"""Photometric calibration: instrumental counts to nJy."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["AB_ZERO_POINT_NJY", "PhotoCalib", "mag_to_njy", "njy_to_mag"]

#: Flux of an AB magnitude 0 source in nJy (3631 Jy).
AB_ZERO_POINT_NJY = 3631.0e9


def njy_to_mag(flux_njy: np.ndarray | float) -> np.ndarray:
    """AB magnitude of a flux in nJy (NaN for non-positive flux)."""
    f = np.asarray(flux_njy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -2.5 * np.log10(f / AB_ZERO_POINT_NJY), np.nan)


def mag_to_njy(mag: np.ndarray | float) -> np.ndarray:
    """Flux in nJy of an AB magnitude."""
    return AB_ZERO_POINT_NJY * 10.0 ** (-0.4 * np.asarray(mag, dtype=float))


@dataclasses.dataclass(frozen=True)
class PhotoCalib:
    """Counts to nJy: ``flux [nJy] = calibration(x, y) * instFlux [counts]``.

    The calibration is ``calibration_mean * (1 + gradient_x (x - x_ref) + gradient_y (y - y_ref))``: a
    constant (the default, gradients zero) or a plane across the CCD, as when the transparency changes across
    the field (thin clouds).  Without positions, the methods use ``calibration_mean`` (the value at
    ``(x_ref, y_ref)``).

    Attributes
    ----------
    calibration_mean : `float`
        nJy per count (per electron after ISR) at ``(x_ref, y_ref)``.
    calibration_err : `float`
        1-sigma uncertainty of ``calibration_mean`` (nJy per count).
    gradient_x, gradient_y : `float`
        Fractional change of the calibration per pixel in x and y.
    gradient_x_err, gradient_y_err : `float`
        Their 1-sigma uncertainties (per pixel; fitted about ``(x_ref, y_ref)``, the stars' weighted mean
        position, so that they are nearly uncorrelated with ``calibration_mean``).
    x_ref, y_ref : `float`
        Pixel position where the calibration is ``calibration_mean``.
    """

    calibration_mean: float
    calibration_err: float = 0.0
    gradient_x: float = 0.0
    gradient_y: float = 0.0
    gradient_x_err: float = 0.0
    gradient_y_err: float = 0.0
    x_ref: float = 0.0
    y_ref: float = 0.0

    @property
    def is_constant(self) -> bool:
        """Whether the calibration is the same everywhere (no gradient)."""
        return self.gradient_x == 0.0 and self.gradient_y == 0.0

    def relative_at(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """The calibration at pixel positions ``(x, y)`` divided by ``calibration_mean``."""
        return (
            1.0
            + self.gradient_x * (np.asarray(x, float) - self.x_ref)
            + self.gradient_y * (np.asarray(y, float) - self.y_ref)
        )

    def calibration_at(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """nJy per count at pixel positions ``(x, y)``."""
        return self.calibration_mean * self.relative_at(x, y)

    def instflux_to_njy(
        self, instflux: np.ndarray | float, x: np.ndarray | None = None, y: np.ndarray | None = None
    ) -> np.ndarray:
        """Fluxes in nJy; with positions ``x``, ``y`` (pixels) the calibration there."""
        f = np.asarray(instflux, dtype=float)
        if x is None or y is None or self.is_constant:
            return f * self.calibration_mean
        return f * self.calibration_at(x, y)

    def instflux_err_to_njy(
        self,
        instflux: np.ndarray | float,
        instflux_err: np.ndarray | float,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> np.ndarray:
        """Flux error in nJy with the calibration uncertainty (at ``x``, ``y`` if given) in quadrature."""
        f = np.asarray(instflux, dtype=float)
        e = np.asarray(instflux_err, dtype=float)
        if x is None or y is None or self.is_constant:
            return np.hypot(e * self.calibration_mean, f * self.calibration_err)
        dx = np.asarray(x, float) - self.x_ref
        dy = np.asarray(y, float) - self.y_ref
        rel_err2 = (
            (self.calibration_err / self.calibration_mean) ** 2
            + (dx * self.gradient_x_err) ** 2
            + (dy * self.gradient_y_err) ** 2
        )
        cal = self.calibration_at(x, y)
        return np.hypot(e * cal, f * cal * np.sqrt(rel_err2))

    @property
    def zero_point_mag(self) -> float:
        """AB magnitude of a source giving one count (at ``(x_ref, y_ref)``)."""
        return float(njy_to_mag(self.calibration_mean))

    def to_cards(self) -> dict[str, float]:
        cards = {"PHOTCAL": float(self.calibration_mean), "PHOTCERR": float(self.calibration_err)}
        if not self.is_constant:
            cards.update(
                {
                    "PHOTGX": float(self.gradient_x),
                    "PHOTGY": float(self.gradient_y),
                    "PHOTGXE": float(self.gradient_x_err),
                    "PHOTGYE": float(self.gradient_y_err),
                    "PHOTX0": float(self.x_ref),
                    "PHOTY0": float(self.y_ref),
                }
            )
        return cards

    @classmethod
    def from_cards(cls, header: dict) -> PhotoCalib | None:
        if "PHOTCAL" not in header:
            return None
        return cls(
            float(header["PHOTCAL"]),
            float(header.get("PHOTCERR", 0.0)),
            gradient_x=float(header.get("PHOTGX", 0.0)),
            gradient_y=float(header.get("PHOTGY", 0.0)),
            gradient_x_err=float(header.get("PHOTGXE", 0.0)),
            gradient_y_err=float(header.get("PHOTGYE", 0.0)),
            x_ref=float(header.get("PHOTX0", 0.0)),
            y_ref=float(header.get("PHOTY0", 0.0)),
        )
