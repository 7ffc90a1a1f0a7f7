"""Scoring blind insertions (the "easter eggs"): sources drawn into the images but kept out of the truth.

QA first runs blind: an Object-table row that matches no truth source counts against the pipeline (spurious).
Unsealing the insertion file then scores the eggs: which were recovered, how well they were measured, and how
many of the unmatched objects remain unexplained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._json import curve_json, photometry_json, q
from ._match import match_catalogs
from ._stats import flux_to_mag
from ._tables import as_float
from .metrics import completeness_curve, completeness_limit, magnitude_bins, photometry_stats

__all__ = ["blind_metrics"]


def blind_metrics(
    prim: pd.DataFrame,
    unmatched: np.ndarray,
    blind: pd.DataFrame,
    bands: list[str],
    *,
    in_footprint: np.ndarray,
    radius_arcsec: float,
    mag_bin_width: float,
    snr_min: float,
) -> dict[str, Any]:
    """Recovery of blind insertions by the primary objects that matched no truth source.

    Parameters
    ----------
    prim : `pandas.DataFrame`
        Primary objects (``coord_ra``, ``coord_dec``, ``{band}_psfFlux``, ``{band}_psfFluxErr``).
    unmatched : `numpy.ndarray` [bool]
        Per primary object: matched to no truth source.
    blind : `pandas.DataFrame`
        The unsealed insertions: ``ra``, ``dec``, ``kind`` (constant, variable, transient), ``{band}_flux``.
    in_footprint : `numpy.ndarray` [bool]
        Per insertion: inside the surveyed footprint.
    """
    idx = np.flatnonzero(unmatched)
    b_ra, b_dec = as_float(blind, "ra"), as_float(blind, "dec")
    i_obj, i_bl, _ = match_catalogs(
        as_float(prim, "coord_ra")[idx],
        as_float(prim, "coord_dec")[idx],
        b_ra,
        b_dec,
        radius_arcsec=radius_arcsec,
    )
    recovered = np.zeros(len(blind), bool)
    recovered[i_bl] = True
    kinds = blind["kind"].astype(str).to_numpy() if "kind" in blind else np.full(len(blind), "constant")
    out: dict[str, Any] = {
        "n_inserted": q(int(in_footprint.sum()), "count"),
        "n_recovered": q(int((recovered & in_footprint).sum()), "count"),
        "n_unexplained_objects": q(int(idx.size - i_obj.size), "count"),
        "unexplained_fraction": q(
            (idx.size - i_obj.size) / len(prim) if len(prim) else float("nan"), "fraction"
        ),
        "by_kind": {},
        "bands": {},
    }
    for kind in sorted(set(kinds.tolist())):
        sel = (kinds == kind) & in_footprint
        out["by_kind"][kind] = {
            "n_inserted": q(int(sel.sum()), "count"),
            "recovered_fraction": q(float(recovered[sel].mean()) if sel.any() else float("nan"), "fraction"),
        }
    steady = in_footprint & (kinds != "transient")
    for b in bands:
        if f"{b}_flux" not in blind:
            continue
        mag = flux_to_mag(as_float(blind, f"{b}_flux"))
        edges = magnitude_bins(mag[steady], width=mag_bin_width)
        curve = completeness_curve(mag[steady], recovered[steady], bin_edges=edges)
        band_out: dict[str, Any] = {
            "completeness": curve_json(
                curve, completeness_limit(curve, level=0.5), completeness_limit(curve, level=0.9)
            ),
        }
        # photometry of recovered constant insertions with good S/N
        const = kinds[i_bl] == "constant"
        flux = as_float(prim, f"{b}_psfFlux")[idx][i_obj][const]
        err = as_float(prim, f"{b}_psfFluxErr")[idx][i_obj][const]
        true = as_float(blind, f"{b}_flux")[i_bl][const]
        good = np.isfinite(flux) & np.isfinite(err) & (err > 0) & (flux / np.where(err > 0, err, 1) > snr_min)
        band_out["photometry"] = photometry_json(photometry_stats(flux[good], err[good], true[good]), snr_min)
        out["bands"][b] = band_out
    return out
