"""Blind insertions ("easter eggs", reference 003): sources drawn into the images but not into the truth.

They are written only to ``truth/sealed/blind.parquet`` so that QA can run blind and be scored afterwards:
constant point sources with stellar colours, variable point sources (sinusoidal light curves) and
transients that appear in a single visit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..image.photo_calib import mag_to_njy
from .catalog import SkyFootprint, TruthCatalog, _draw_positions, _mags_from_colors, stellar_colors
from .config import KNOWN_BANDS, SimConfig
from .survey import ExposurePlan

__all__ = ["BlindInsertions", "make_blind_insertions"]

#: Ids of blind insertions start here (truth ids are 1..N, far below).
BLIND_ID_OFFSET = 1_000_000_000


@dataclasses.dataclass
class BlindInsertions:
    """Inserted sources and their light curves.

    Attributes
    ----------
    catalog : `TruthCatalog`
        Positions and mean magnitudes (point sources; ids from `BLIND_ID_OFFSET`).
    kind : `numpy.ndarray` [str]
        ``constant``, ``variable`` or ``transient``.
    amplitude_mag, period_days, phase : `numpy.ndarray`
        Variables: ``mag(t) = mag + amplitude_mag * sin(2 pi (mjd / period_days + phase))``.
    transient_exposure : `numpy.ndarray` [int]
        Transients: the one exposure id in which they appear (-1 otherwise).
    """

    catalog: TruthCatalog
    kind: np.ndarray
    amplitude_mag: np.ndarray
    period_days: np.ndarray
    phase: np.ndarray
    transient_exposure: np.ndarray

    def __len__(self) -> int:
        return len(self.catalog)

    def flux_scale(self, exposure: ExposurePlan) -> np.ndarray:
        """Multiplier of each insertion's mean flux in an exposure."""
        dm = self.amplitude_mag * np.sin(2.0 * np.pi * (exposure.mjd / self.period_days + self.phase))
        scale = np.where(self.kind == "variable", 10.0 ** (-0.4 * dm), 1.0)
        transient = self.kind == "transient"
        scale[transient] = (self.transient_exposure[transient] == exposure.exposure_id).astype(float)
        return scale

    def to_dataframe(self, bands: list[str], exposures: list[ExposurePlan]) -> pd.DataFrame:
        """The sealed table: id, ra, dec, kind, mean fluxes (nJy) and magnitudes, light-curve parameters."""
        cat = self.catalog
        cols: dict[str, np.ndarray] = {"id": cat.id, "ra": cat.ra, "dec": cat.dec, "kind": self.kind}
        for band in bands:
            cols[f"{band}_flux"] = mag_to_njy(cat.mags[band])
            cols[f"{band}_mag"] = cat.mags[band]
        cols["amplitude_mag"] = self.amplitude_mag
        cols["period_days"] = self.period_days
        cols["phase"] = self.phase
        cols["transient_exposure"] = self.transient_exposure
        return pd.DataFrame(cols)


def make_blind_insertions(
    config: SimConfig,
    footprint: SkyFootprint,
    exposures: list[ExposurePlan],
    rng: np.random.Generator,
) -> BlindInsertions:
    """Draw the blind insertions of a simulation (``config.blind``) inside a footprint."""
    cfg = config.blind
    n = int(rng.poisson(cfg.density_per_deg2 * footprint.area_deg2))
    ra, dec = _draw_positions(rng, n, footprint)
    r_mag = rng.uniform(cfg.mag_min, cfg.mag_max, n)
    mags = _mags_from_colors("r", r_mag, stellar_colors(rng.normal(0.6, 0.3, n)))
    u = rng.random(n)
    kind = np.where(
        u < cfg.variable_fraction,
        "variable",
        np.where(u < cfg.variable_fraction + cfg.transient_fraction, "transient", "constant"),
    )
    science = [e.exposure_id for e in exposures if e.observation_type == "science"]
    transient_exposure = np.full(n, -1, np.int64)
    if science:
        pick = rng.integers(0, len(science), n)
        transient_exposure = np.where(kind == "transient", np.asarray(science)[pick], -1)
    zeros = np.zeros(n)
    catalog = TruthCatalog(
        id=BLIND_ID_OFFSET + np.arange(1, n + 1, dtype=np.int64),
        ra=ra,
        dec=dec,
        is_star=np.ones(n, bool),
        mags={b: mags[b] for b in KNOWN_BANDS},
        disk_hlr=zeros,
        bulge_hlr=zeros,
        bulge_fraction=zeros,
        e1=zeros,
        e2=zeros,
    )
    return BlindInsertions(
        catalog=catalog,
        kind=kind,
        amplitude_mag=np.where(kind == "variable", rng.uniform(0.05, cfg.amplitude_mag, n), 0.0),
        period_days=10.0 ** rng.uniform(-1.0, 1.5, n),
        phase=rng.random(n),
        transient_exposure=transient_exposure.astype(np.int64),
    )
