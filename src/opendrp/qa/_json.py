"""Conversion of metric results to metrics.json: every number is ``{"value": ..., "unit": ...}``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .metrics import AstrometryStats, CompletenessCurve, PhotometryStats

__all__ = ["astrometry_json", "clean", "curve_json", "photometry_json", "q"]


def q(value: Any, unit: str) -> dict[str, Any]:
    """A quantity for metrics.json: ``{"value": ..., "unit": ...}`` with NaN written as null."""
    return {"value": clean(value), "unit": unit}


def clean(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def photometry_json(s: PhotometryStats, snr_min: float) -> dict[str, Any]:
    return {
        "n": q(s.n, "count"),
        "snr_min": q(snr_min, ""),
        "offset_median": q(s.offset_median, "fraction"),
        "offset_scatter": q(s.offset_scatter, "fraction"),
        "normalized_median": q(s.normalized_median, "sigma"),
        "normalized_scatter": q(s.normalized_scatter, "sigma"),
        "mag_offset_median": q(s.mag_offset_median, "mmag"),
    }


def astrometry_json(s: AstrometryStats, snr_min: float) -> dict[str, Any]:
    return {
        "n": q(s.n, "count"),
        "snr_min": q(snr_min, ""),
        "dra_median": q(s.dra_median, "mas"),
        "ddec_median": q(s.ddec_median, "mas"),
        "dra_scatter": q(s.dra_scatter, "mas"),
        "ddec_scatter": q(s.ddec_scatter, "mas"),
        "coord_scatter": q(s.coord_scatter, "mas"),
    }


def curve_json(curve: CompletenessCurve, mag_50: float, mag_90: float) -> dict[str, Any]:
    return {
        "n_truth": q(curve.n_truth, "count"),
        "n_matched": q(curve.n_matched, "count"),
        "completeness": q(curve.completeness, "fraction"),
        "mag_50": q(mag_50, "mag"),
        "mag_90": q(mag_90, "mag"),
    }
