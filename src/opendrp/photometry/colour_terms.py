"""Colour terms: reference-catalog magnitudes transformed into the instrument's passband.

As Rubin's ``Colorterm``: ``m_instrument = m_p + c0 + c1 (m_p - m_s) + c2 (m_p - m_s)**2`` with ``p``/``s``
the primary and secondary reference bands.  The coefficients belong to an (instrument filter, reference
catalog) pair and are configured per band; the zero point is then fitted against the transformed fluxes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table

from ..errors import ConfigurationError

__all__ = ["ColourTerm", "reference_colour"]

_AB_NJY = 31.4  # AB magnitude of 1 nJy
_BANDS = ("u", "g", "r", "i", "z", "y")


@dataclasses.dataclass(frozen=True)
class ColourTerm:
    """``m = m_primary + c0 + c1 (m_primary - m_secondary) + c2 (m_primary - m_secondary)**2`` (AB mag)."""

    primary: str
    secondary: str
    c0: float = 0.0
    c1: float = 0.0
    c2: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ColourTerm:
        """From ``"primary,secondary,c0,c1,c2"`` (``"r,i,0.0,-0.05,0.0"``); missing coefficients are 0."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) < 2 or len(parts) > 5 or not parts[0] or not parts[1]:
            raise ConfigurationError(
                f"colour term {text!r} is not 'primary,secondary[,c0[,c1[,c2]]]'", where="colour_terms"
            )
        try:
            coeffs = [float(p) for p in parts[2:]]
        except ValueError as exc:
            raise ConfigurationError(f"colour term {text!r}: {exc}", where="colour_terms") from exc
        return cls(parts[0], parts[1], *coeffs)

    def transform(self, refcat: Table) -> tuple[np.ndarray, np.ndarray]:
        """Transformed reference fluxes and errors (nJy); NaN where a band's flux is not positive."""
        for b in (self.primary, self.secondary):
            if f"{b}_flux" not in refcat.colnames:
                raise ConfigurationError(
                    f"colour term needs reference column {b}_flux",
                    where="colour_terms",
                    fix="use bands it has",
                )
        fp = np.asarray(refcat[f"{self.primary}_flux"], float)
        fs = np.asarray(refcat[f"{self.secondary}_flux"], float)
        ep = _err(refcat, self.primary)
        es = _err(refcat, self.secondary)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = (fp > 0) & (fs > 0)
            colour = np.where(ok, -2.5 * np.log10(fp / fs), np.nan)
            dm = self.c0 + self.c1 * colour + self.c2 * colour**2
            flux = np.where(ok, fp * 10 ** (-0.4 * dm), np.nan)
            # d m / d m_p = 1 + c1 + 2 c2 colour, d m / d m_s = -(c1 + 2 c2 colour)
            slope = self.c1 + 2.0 * self.c2 * colour
            rel = np.hypot((1.0 + slope) * ep / fp, slope * es / fs)
        return flux, flux * rel


def _err(refcat: Table, band: str) -> np.ndarray:
    name = f"{band}_fluxErr"
    return np.asarray(refcat[name], float) if name in refcat.colnames else np.zeros(len(refcat))


def reference_colour(refcat: Table, band: str) -> tuple[np.ndarray, str] | None:
    """A colour (mag) of the reference stars around ``band``, from the adjacent band pair the catalog has.

    Preferred pairs: ``g-r`` for g and r, ``r-i`` for i, ``i-z`` for z, ``z-y`` for y, ``u-g`` for u (then the
    other neighbour); `None` when the catalog has neither.
    """
    if band not in _BANDS:
        return None
    k = _BANDS.index(band)
    below = (_BANDS[k - 1], band) if k > 0 else None
    above = (band, _BANDS[k + 1]) if k + 1 < len(_BANDS) else None
    order = [above, below] if band in ("u", "g") else [below, above]
    for pair in order:
        if pair is None or not all(f"{b}_flux" in refcat.colnames for b in pair):
            continue
        fb = np.asarray(refcat[f"{pair[0]}_flux"], float)
        fr = np.asarray(refcat[f"{pair[1]}_flux"], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            colour = np.where((fb > 0) & (fr > 0), -2.5 * np.log10(fb / fr), np.nan)
        return colour, f"{pair[0]}-{pair[1]}"
    return None
