"""Single-visit (per-CCD Source table) metrics: photometry and astrometry against the truth, repeatability.

A truth source appears once per visit in a Source table, so sources are matched to their nearest truth source
within the radius (many-to-one), not one-to-one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from ._json import astrometry_json, photometry_json, q
from ._match import radec_to_unit_vectors
from ._stats import flux_to_mag
from ._tables import TableInput, as_float, load_table, require_columns
from .metrics import astrometry_stats, photometry_stats

__all__ = ["match_to_nearest", "repeatability_mmag", "source_metrics", "source_tables"]

_ROLE = "source table"


def match_to_nearest(
    ra: NDArray[np.float64],
    dec: NDArray[np.float64],
    ra_ref: NDArray[np.float64],
    dec_ref: NDArray[np.float64],
    *,
    radius_arcsec: float,
) -> NDArray[np.intp]:
    """Index of the nearest reference position within ``radius_arcsec`` of each position, -1 if none.

    Parameters
    ----------
    ra, dec : `numpy.ndarray`
        Positions to match (deg).
    ra_ref, dec_ref : `numpy.ndarray`
        Reference positions (deg).
    radius_arcsec : `float`
        Maximum separation (arcsec).

    Returns
    -------
    index : `numpy.ndarray` of int
        Many-to-one: several positions may share a reference.
    """
    xyz = radec_to_unit_vectors(ra, dec)
    xyz_ref = radec_to_unit_vectors(ra_ref, dec_ref)
    good_ref = np.flatnonzero(np.all(np.isfinite(xyz_ref), axis=1))
    out = np.full(len(xyz), -1, np.intp)
    good = np.all(np.isfinite(xyz), axis=1)
    if good_ref.size == 0 or not good.any():
        return out
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    dist, idx = cKDTree(xyz_ref[good_ref]).query(xyz[good], k=1, distance_upper_bound=chord)
    found = np.isfinite(dist)
    sub = np.full(idx.shape, -1, np.intp)
    sub[found] = good_ref[idx[found]]
    out[good] = sub
    return out


def repeatability_mmag(group: NDArray[np.intp], mag: NDArray[np.float64], *, min_visits: int = 2) -> float:
    """Median over stars of the rms (ddof=1) of their single-visit magnitudes (a PA1-like statistic).

    Parameters
    ----------
    group : `numpy.ndarray` of int
        Star identifier of each measurement.
    mag : `numpy.ndarray`
        Magnitude of each measurement (mag).
    min_visits : `int`
        Minimum number of measurements of a star.

    Returns
    -------
    rms : `float`
        Median per-star rms (mmag); NaN if no star has ``min_visits`` measurements.
    """
    df = pd.DataFrame({"g": group, "m": mag}).dropna()
    stats = df.groupby("g")["m"].agg(["std", "count"])
    stats = stats[stats["count"] >= min_visits]
    if stats.empty:
        return float("nan")
    return float(np.median(stats["std"].to_numpy()) * 1000.0)


def source_tables(
    sources: TableInput | dict[str, TableInput], bands: list[str]
) -> tuple[dict[str, pd.DataFrame], str]:
    """Split the Source input into one DataFrame per band.

    ``sources`` is either one table with a ``band`` column or a dict band -> table.
    """
    if isinstance(sources, dict):
        out = {}
        labels = []
        for b, t in sources.items():
            df, label = load_table(t, role=f"{_ROLE} ({b})")
            out[str(b)] = df
            labels.append(f"{b}: {label}")
        return {b: out[b] for b in bands if b in out}, "; ".join(labels)
    df, label = load_table(sources, role=_ROLE)
    require_columns(
        df, ["band"], role=_ROLE, label=label, expected="a 'band' column (or pass a dict band -> table)"
    )
    band_col = df["band"].astype(str).to_numpy()
    return {b: df[band_col == b].reset_index(drop=True) for b in bands if np.any(band_col == b)}, label


def source_metrics(
    tables: dict[str, pd.DataFrame],
    label: str,
    *,
    truth: pd.DataFrame,
    t_star: NDArray[np.bool_],
    radius_arcsec: float,
    snr_min: float,
) -> dict[str, Any]:
    """Photometry, astrometry and repeatability of single-visit true stars with S/N > ``snr_min``.

    Returns
    -------
    metrics : `dict`
        Per band: ``n_sources``, ``n_matched``, ``photometry``/``astrometry`` statistics
        (`photometry_stats`, `astrometry_stats`) and ``repeatability`` (mmag).
    """
    t_ra, t_dec = as_float(truth, "ra"), as_float(truth, "dec")
    out: dict[str, Any] = {}
    for b, df in tables.items():
        require_columns(
            df,
            ["coord_ra", "coord_dec", "psfFlux", "psfFluxErr"],
            role=_ROLE,
            label=label,
            expected="single-visit positions (deg) and PSF fluxes (nJy)",
        )
        ra, dec = as_float(df, "coord_ra"), as_float(df, "coord_dec")
        flux, err = as_float(df, "psfFlux"), as_float(df, "psfFluxErr")
        idx = match_to_nearest(ra, dec, t_ra, t_dec, radius_arcsec=radius_arcsec)
        m = idx >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            bright = m & (flux / err > snr_min)
        bright[m] &= t_star[idx[m]]
        ti = idx[bright]
        phot = photometry_stats(flux[bright], err[bright], as_float(truth, f"{b}_flux")[ti])
        ast = astrometry_stats(ra[bright], dec[bright], t_ra[ti], t_dec[ti])
        out[b] = {
            "n_sources": q(len(df), "count"),
            "n_matched": q(int(m.sum()), "count"),
            "photometry": photometry_json(phot, snr_min),
            "astrometry": astrometry_json(ast, snr_min),
            "repeatability": q(repeatability_mmag(ti, flux_to_mag(flux[bright])), "mmag"),
        }
    return out
