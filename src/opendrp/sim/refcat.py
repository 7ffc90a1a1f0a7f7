"""Gaia-like and PS1-like reference catalogues, sharded on HTM cells as parquet files.

Pipelines read reference catalogues as shards (one file per sky cell).  The simulator writes two, derived
from the true stars with realistic errors:

- ``refcat/gaia/{htm}.parquet``: astrometric (Gaia DR3-like): G-band flux, positions good to 0.02-1 mas,
  proper motions and parallaxes (all zero in truth, measured with errors), G < ``refcat.gaia_mag_max``;
- ``refcat/ps1/{htm}.parquet``: photometric (Pan-STARRS1 PV3-like): g, r, i, z, y fluxes with errors,
  positions good to ~15 mas, ``ps1_mag_min <= r <= ps1_mag_max`` (brighter stars saturate in PS1).

Fluxes are in nJy, positions in degrees.  The HTM cell index is `lsst.sphgeom.HtmPixelization` at
``refcat.htm_level`` (the Butler's ``htm7`` dimension at the default level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from lsst.sphgeom import HtmPixelization, LonLat, UnitVector3d

from ..image.photo_calib import mag_to_njy
from .catalog import TruthCatalog
from .config import RefcatConfig

__all__ = [
    "PS1_DEPTH_OFFSETS",
    "gaia_g_mag",
    "htm_indices",
    "make_gaia_refcat",
    "make_ps1_refcat",
    "write_shards",
]

#: PS1 5-sigma depth of each band relative to r (mag).
PS1_DEPTH_OFFSETS = {"g": 0.1, "r": 0.0, "i": -0.1, "z": -0.9, "y": -1.8}

#: Reference epoch of the Gaia-like catalogue (Julian year).
GAIA_EPOCH = 2016.0


def gaia_g_mag(mags: dict[str, np.ndarray]) -> np.ndarray:
    """Approximate Gaia G (AB) from g and r: ``G = r - 0.06 - 0.25 (g - r)``."""
    return mags["r"] - 0.06 - 0.25 * (mags["g"] - mags["r"])


def htm_indices(ra: np.ndarray, dec: np.ndarray, level: int) -> np.ndarray:
    """HTM cell index (`lsst.sphgeom.HtmPixelization`) of sky positions (deg)."""
    pix = HtmPixelization(level)
    return np.array(
        [pix.index(UnitVector3d(LonLat.fromDegrees(float(r), float(d)))) for r, d in zip(ra, dec)],
        dtype=np.int64,
    )


def _perturb(
    ra: np.ndarray, dec: np.ndarray, err_mas: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    err_deg = err_mas / 3.6e6
    d = dec + rng.normal(0.0, 1.0, ra.size) * err_deg
    r = (ra + rng.normal(0.0, 1.0, ra.size) * err_deg / np.cos(np.radians(dec))) % 360.0
    return r, d


def make_gaia_refcat(truth: TruthCatalog, cfg: RefcatConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The Gaia-like astrometric catalogue (stars with G <= ``gaia_mag_max``).

    Returns
    -------
    table : `pandas.DataFrame`
        ``id`` (truth id), ``coord_ra``, ``coord_dec``, ``coord_raErr``, ``coord_decErr`` (deg; RA error
        on the sky), ``phot_g_mean_flux``, ``phot_g_mean_fluxErr`` (nJy), ``pm_ra``, ``pm_dec``,
        ``pm_raErr``, ``pm_decErr`` (mas/yr), ``parallax``, ``parallaxErr`` (mas), ``epoch`` (yr).
    """
    g_mag = gaia_g_mag(truth.mags)
    sel = truth.is_star & (g_mag <= cfg.gaia_mag_max)
    g = g_mag[sel]
    n = int(sel.sum())
    # position error ~ flux^-1/2 with a 0.02 mas floor; proper motion and parallax errors follow it
    pos_mas = np.hypot(0.02, cfg.gaia_error_mas_at_20 * 10.0 ** (0.2 * (g - 20.0)))
    ra, dec = _perturb(truth.ra[sel], truth.dec[sel], pos_mas, rng)
    flux = mag_to_njy(g)
    frac = np.hypot(3e-4, 6e-3 * 10.0 ** (0.2 * (g - 20.0)))
    pm_err = 1.1 * pos_mas
    return pd.DataFrame(
        {
            "id": truth.id[sel],
            "coord_ra": ra,
            "coord_dec": dec,
            "coord_raErr": pos_mas / 3.6e6,
            "coord_decErr": pos_mas / 3.6e6,
            "phot_g_mean_flux": flux * (1.0 + frac * rng.normal(0.0, 1.0, n)),
            "phot_g_mean_fluxErr": frac * flux,
            "pm_ra": rng.normal(0.0, 1.0, n) * pm_err,
            "pm_dec": rng.normal(0.0, 1.0, n) * pm_err,
            "pm_raErr": pm_err,
            "pm_decErr": pm_err,
            "parallax": rng.normal(0.0, 1.0, n) * 1.3 * pos_mas,
            "parallaxErr": 1.3 * pos_mas,
            "epoch": np.full(n, GAIA_EPOCH),
        }
    )


def make_ps1_refcat(truth: TruthCatalog, cfg: RefcatConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The PS1-like photometric catalogue (stars with ``ps1_mag_min <= r <= ps1_mag_max``).

    Returns
    -------
    table : `pandas.DataFrame`
        ``id``, ``coord_ra``, ``coord_dec``, ``coord_raErr``, ``coord_decErr`` (deg) and ``{band}_flux``,
        ``{band}_fluxErr`` (nJy) for g, r, i, z, y; ``fluxErr / flux = hypot(phot_error_floor,
        0.2 * 10**(0.4 * (mag - depth)))`` with the band's depth ``ps1_depth_mag + PS1_DEPTH_OFFSETS``.
    """
    r_mag = truth.mags["r"]
    sel = truth.is_star & (r_mag >= cfg.ps1_mag_min) & (r_mag <= cfg.ps1_mag_max)
    n = int(sel.sum())
    pos_mas = np.hypot(cfg.ps1_astrometric_error_mas, 30.0 * 10.0 ** (0.2 * (r_mag[sel] - cfg.ps1_depth_mag)))
    ra, dec = _perturb(truth.ra[sel], truth.dec[sel], pos_mas, rng)
    cols: dict[str, np.ndarray] = {
        "id": truth.id[sel],
        "coord_ra": ra,
        "coord_dec": dec,
        "coord_raErr": pos_mas / 3.6e6,
        "coord_decErr": pos_mas / 3.6e6,
    }
    floor = 10.0 ** (0.4 * cfg.phot_error_floor_mag) - 1.0
    for band, offset in PS1_DEPTH_OFFSETS.items():
        mag = truth.mags[band][sel]
        flux = mag_to_njy(mag)
        frac = np.hypot(floor, 0.2 * 10.0 ** (0.4 * (mag - cfg.ps1_depth_mag - offset)))
        cols[f"{band}_flux"] = flux * (1.0 + frac * rng.normal(0.0, 1.0, n))
        cols[f"{band}_fluxErr"] = frac * flux
    return pd.DataFrame(cols)


def write_shards(table: pd.DataFrame, directory: str | Path, level: int) -> list[Path]:
    """Write a catalogue as one parquet file per HTM cell: ``directory/{htm_index}.parquet``.

    Existing ``*.parquet`` files in ``directory`` are removed first.  Returns the written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.parquet"):
        stale.unlink()
    if len(table) == 0:
        return []
    cell = htm_indices(table["coord_ra"].to_numpy(), table["coord_dec"].to_numpy(), level)
    paths = []
    for value in np.unique(cell):
        path = directory / f"{int(value)}.parquet"
        table[cell == value].reset_index(drop=True).to_parquet(path, index=False)
        paths.append(path)
    return paths
