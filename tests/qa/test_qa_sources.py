"""Tests of the single-visit Source-table statistics (`source_metrics`) on synthetic visits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opendrp.errors import ConfigurationError
from opendrp.qa import match_to_nearest, repeatability_mmag, source_metrics
from opendrp.qa._sources import source_tables

N_VISITS = 5
NOISE = 0.02  # per-visit fractional flux scatter
JITTER = 40.0  # per-visit position scatter per axis (mas)


def _sources(truth: pd.DataFrame, band: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = truth[(truth[f"{band}_flux"] > 10 ** (-0.4 * (22 - 31.4))) & (truth["ra"] < 150.2)]
    rows = []
    for _ in range(N_VISITS):
        n = len(t)
        cos_dec = np.cos(np.radians(t["dec"].to_numpy()))
        rows.append(
            pd.DataFrame(
                {
                    "coord_ra": t["ra"].to_numpy() + JITTER * rng.standard_normal(n) / 3.6e6 / cos_dec,
                    "coord_dec": t["dec"].to_numpy() + JITTER * rng.standard_normal(n) / 3.6e6,
                    "psfFlux": t[f"{band}_flux"].to_numpy() * (1 + NOISE * rng.standard_normal(n)),
                    "psfFluxErr": 0.01 * t[f"{band}_flux"].to_numpy(),
                    "band": band,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_match_to_nearest_many_to_one():
    idx = match_to_nearest(
        np.array([0.0, 0.0, 0.0, 1.0]),
        np.array([0.1, -0.1, 0.3, 0.0]) / 3600,
        np.array([0.0, 0.0]),
        np.array([0.0, 0.35]) / 3600,
        radius_arcsec=0.5,
    )
    np.testing.assert_array_equal(idx, [0, 0, 1, -1])


def test_repeatability():
    group = np.repeat(np.arange(3), 4)
    mag = np.array([20, 20.01, 19.99, 20] * 2 + [18, 18, 18, 18], float)
    expected = np.std([20, 20.01, 19.99, 20], ddof=1) * 1000
    assert abs(repeatability_mmag(group, mag) - expected) < 1e-9
    assert np.isnan(repeatability_mmag(np.array([0]), np.array([20.0])))


def _metrics(survey, tables) -> dict:  # type: ignore[no-untyped-def]
    tabs, label = source_tables(tables, ["g", "r"])
    return source_metrics(
        tabs,
        label,
        truth=survey.truth,
        t_star=survey.truth["is_star"].to_numpy(bool),
        radius_arcsec=0.5,
        snr_min=50.0,
    )


def test_sources_metrics(survey):
    src = pd.concat([_sources(survey.truth, "g", 1), _sources(survey.truth, "r", 2)], ignore_index=True)
    m = _metrics(survey, src)
    for b in ("g", "r"):
        s = m[b]
        assert s["n_matched"]["value"] == s["n_sources"]["value"]
        p, a = s["photometry"], s["astrometry"]
        assert abs(p["offset_median"]["value"]) < 0.002
        assert abs(p["offset_scatter"]["value"] - NOISE) < 0.0015
        assert abs(a["coord_scatter"]["value"] - JITTER) < 2.5
        # rms over 5 visits of a 2% scatter: 21.7 mmag (median of per-star sample rms, biased slightly low).
        assert 17.0 < s["repeatability"]["value"] < 22.5
        assert s["repeatability"]["unit"] == "mmag"
    # The same, one table per band.
    m2 = _metrics(survey, {"g": src[src.band == "g"].drop(columns="band")})
    assert m2["g"] == m["g"] and list(m2) == ["g"]


def test_sources_need_band_column(survey):
    src = _sources(survey.truth, "g", 1).drop(columns="band")
    with pytest.raises(ConfigurationError, match="'band'"):
        _metrics(survey, src)
