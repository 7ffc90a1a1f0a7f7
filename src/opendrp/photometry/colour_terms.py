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

__all__ = ["COLOUR_TERM_LIBRARY", "ColourTerm", "library_colour_terms", "reference_colour"]

_AB_NJY = 31.4  # AB magnitude of 1 nJy
_BANDS = ("u", "g", "r", "i", "z", "y")

#: Built-in colour terms, ``instrument -> reference system -> band -> "primary,secondary,c0,c1,c2"``
#: (`ColourTerm.parse`).  HSC against Pan-STARRS1 (PV3 ``grizy``) and SDSS: the coefficients Rubin's
#: ``obs_subaru`` configures for HSC (``config/hsc/colorterms.py``, fitted on synthetic stellar photometry).
#: Select them with ``CalibrateConfig.colour_term_library = "hsc/ps1"``.
COLOUR_TERM_LIBRARY: dict[str, dict[str, dict[str, str]]] = {
    "hsc": {
        "ps1": {
            "g": "g,r,0.00730066,0.06508481,-0.01510570",
            "r": "r,i,0.00279757,0.02093734,-0.01877566",
            "i": "i,z,0.00166891,-0.13944659,-0.03034094",
            "z": "z,y,-0.00907517,-0.28840221,-0.00316369",
            "y": "y,z,-0.00156858,0.14747401,0.02880125",
        },
        "sdss": {
            "g": "g,r,-0.00816446,-0.08366937,-0.00726883",
            "r": "r,i,0.00231810,0.01284177,-0.03068248",
            "i": "i,z,0.00130204,-0.16922042,-0.01374245",
            "z": "z,i,-0.00680620,0.01353969,0.01479369",
            "y": "z,i,0.01739708,0.35652971,0.00574408",
        },
    },
}


def library_colour_terms(name: str) -> dict[str, str]:
    """The built-in colour terms ``"instrument/reference"`` (``"hsc/ps1"``), band -> term; ``""``: none.

    Raises
    ------
    ConfigurationError
        For a name the library does not have (the message lists those it has).
    """
    if not name:
        return {}
    inst, _, ref = str(name).lower().partition("/")
    try:
        return dict(COLOUR_TERM_LIBRARY[inst][ref])
    except KeyError:
        known = [f"{i}/{r}" for i, refs in COLOUR_TERM_LIBRARY.items() for r in refs]
        raise ConfigurationError(
            f"no built-in colour terms {name!r}", where="colour_term_library", fix=f"use one of {known} or ''"
        ) from None


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
