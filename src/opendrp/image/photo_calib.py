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
    """A spatially constant calibration: ``flux [nJy] = calibration_mean * instFlux [counts]``.

    Attributes
    ----------
    calibration_mean : `float`
        nJy per count (per electron after ISR).
    calibration_err : `float`
        1-sigma uncertainty of ``calibration_mean`` (nJy per count).
    """

    calibration_mean: float
    calibration_err: float = 0.0

    def instflux_to_njy(self, instflux: np.ndarray | float) -> np.ndarray:
        return np.asarray(instflux, dtype=float) * self.calibration_mean

    def instflux_err_to_njy(
        self, instflux: np.ndarray | float, instflux_err: np.ndarray | float
    ) -> np.ndarray:
        """Flux error in nJy, including the calibration uncertainty in quadrature."""
        f = np.asarray(instflux, dtype=float)
        e = np.asarray(instflux_err, dtype=float)
        return np.hypot(e * self.calibration_mean, f * self.calibration_err)

    @property
    def zero_point_mag(self) -> float:
        """AB magnitude of a source giving one count."""
        return float(njy_to_mag(self.calibration_mean))

    def to_cards(self) -> dict[str, float]:
        return {"PHOTCAL": float(self.calibration_mean), "PHOTCERR": float(self.calibration_err)}

    @classmethod
    def from_cards(cls, header: dict) -> PhotoCalib | None:
        if "PHOTCAL" not in header:
            return None
        return cls(float(header["PHOTCAL"]), float(header.get("PHOTCERR", 0.0)))
