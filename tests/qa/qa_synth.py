"""Synthetic truth / Object / reference catalogs with known offsets, scatters and completeness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RA0, DEC0 = 150.0, 2.0
FLUX_OFFSET = 0.01  # fractional psfFlux bias
FLUX_NOISE = 0.03  # fractional psfFlux scatter
ERR_BRIGHT = 0.015  # reported fractional error for g < 22 (S/N ~ 67); 0.04 fainter (S/N ~ 25)
DRA_MAS, DDEC_MAS = 20.0, -10.0  # position offset (mas)
JITTER_MAS = 30.0  # position scatter per axis (mas)
STAR_MISCLASSIFIED = 0.1  # fraction of true stars given refExtendedness = 1


@dataclass
class Survey:
    truth: pd.DataFrame
    objects: pd.DataFrame
    refcat: pd.DataFrame
    n_detected: int
    n_spurious: int
    n_bright_stars: int


def _flux(mag: np.ndarray) -> np.ndarray:
    return 10 ** (-0.4 * (mag - 31.4))


def make_survey(seed: int = 1, n: int = 4000) -> Survey:
    rng = np.random.default_rng(seed)
    ra = RA0 + rng.uniform(-0.1, 0.1, n) / np.cos(np.radians(DEC0))
    dec = DEC0 + rng.uniform(-0.1, 0.1, n)
    is_star = rng.random(n) < 0.4
    g = rng.uniform(18.0, 26.0, n)
    r = g - 0.4
    # 200 bright truth sources well outside the surveyed area (10 arcmin east): never detected.
    n_out = 200
    ra = np.concatenate([ra, RA0 + 0.3 + rng.uniform(0, 0.05, n_out)])
    dec = np.concatenate([dec, DEC0 + rng.uniform(-0.05, 0.05, n_out)])
    is_star = np.concatenate([is_star, rng.random(n_out) < 0.5])
    g = np.concatenate([g, rng.uniform(18.0, 20.0, n_out)])
    r = np.concatenate([r, g[n:] - 0.4])
    truth = pd.DataFrame(
        {
            "id": np.arange(n + n_out, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "is_star": is_star,
            "g_flux": _flux(g),
            "r_flux": _flux(r),
        }
    )
    # Detection: all g < 24, every other source (by magnitude rank) in 24 <= g < 25, none fainter.
    detected = np.zeros(n + n_out, bool)
    detected[:n] = g[:n] < 24.0
    mid = np.flatnonzero((g[:n] >= 24.0) & (g[:n] < 25.0))
    detected[mid[np.argsort(g[mid])][::2]] = True
    det = np.flatnonzero(detected)
    nd = det.size

    t = truth.iloc[det]
    cos_dec = np.cos(np.radians(t["dec"].to_numpy()))
    o_ra = t["ra"].to_numpy() + (DRA_MAS + JITTER_MAS * rng.standard_normal(nd)) / 3.6e6 / cos_dec
    o_dec = t["dec"].to_numpy() + (DDEC_MAS + JITTER_MAS * rng.standard_normal(nd)) / 3.6e6
    err_frac = np.where(g[det] < 22.0, ERR_BRIGHT, 0.04)
    cols: dict[str, np.ndarray] = {"coord_ra": o_ra, "coord_dec": o_dec}
    for b in ("g", "r"):
        f = t[f"{b}_flux"].to_numpy()
        cols[f"{b}_psfFlux"] = f * (1 + FLUX_OFFSET + FLUX_NOISE * rng.standard_normal(nd))
        cols[f"{b}_psfFluxErr"] = err_frac * f
    ext = np.where(t["is_star"].to_numpy(), 0.0, 1.0)
    stars = np.flatnonzero(t["is_star"].to_numpy())
    flip = stars[: int(round(STAR_MISCLASSIFIED * stars.size))]
    ext[flip] = 1.0
    cols["refExtendedness"] = ext
    cols["detect_isPrimary"] = np.ones(nd, bool)
    cols["refBand"] = np.full(nd, "g")
    primary = pd.DataFrame(cols)

    # Non-primary duplicates of 10% of objects, 0.05" away, with wrong (doubled) fluxes.
    dup = primary.iloc[rng.choice(nd, nd // 10, replace=False)].copy()
    dup["coord_dec"] += 0.05 / 3600
    dup["g_psfFlux"] *= 2.0
    dup["r_psfFlux"] *= 2.0
    dup["detect_isPrimary"] = False
    # Spurious primary objects (no truth within the match radius, except by chance).
    n_sp = 50
    sp = primary.iloc[:n_sp].copy()
    sp["coord_ra"] = RA0 + rng.uniform(-0.09, 0.09, n_sp)
    sp["coord_dec"] = DEC0 + rng.uniform(-0.09, 0.09, n_sp)
    objects = pd.concat([primary, dup, sp], ignore_index=True)
    objects = objects.iloc[rng.permutation(len(objects))].reset_index(drop=True)
    objects.insert(0, "objectId", np.arange(len(objects), dtype=np.int64))

    # Reference catalog: true stars with g < 21, 5 mas and 1% errors, g band only.
    rsel = np.flatnonzero(is_star[:n] & (g[:n] < 21.0))
    nr = rsel.size
    r_cos = np.cos(np.radians(dec[rsel]))
    refcat = pd.DataFrame(
        {
            "id": np.arange(nr, dtype=np.int64),
            "coord_ra": ra[rsel] + 5.0 * rng.standard_normal(nr) / 3.6e6 / r_cos,
            "coord_dec": dec[rsel] + 5.0 * rng.standard_normal(nr) / 3.6e6,
            "coord_raErr": np.full(nr, 5.0 / 3.6e6),
            "coord_decErr": np.full(nr, 5.0 / 3.6e6),
            "g_flux": _flux(g[rsel]) * (1 + 0.01 * rng.standard_normal(nr)),
            "g_fluxErr": 0.01 * _flux(g[rsel]),
        }
    )
    n_bright_stars = int(np.sum(is_star[det] & (g[det] < 22.0)))
    return Survey(truth, objects, refcat, nd, n_sp, n_bright_stars)
