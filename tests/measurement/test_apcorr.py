"""Aperture corrections: a known spatially varying ratio is recovered and applied."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from opendrp.measurement.apcorr import apply_aperture_corrections, fit_aperture_corrections


def _catalog(n: int, rng: np.random.Generator) -> tuple[Table, np.ndarray]:
    x, y = rng.uniform(0, 2047, n), rng.uniform(0, 4175, n)
    u, v = 2 * x / 2047 - 1, 2 * y / 4175 - 1
    true_ratio = 1.03 + 0.01 * u - 0.006 * v + 0.004 * u * v
    flux = 10 ** rng.uniform(4, 6, n)
    src = Table()
    src["x"], src["y"] = x, y
    src["calibFlux"] = flux * true_ratio * (1 + 0.002 * rng.normal(size=n))
    src["calibFluxErr"] = 0.002 * flux
    for alg, scale in (("psfFlux", 1.0), ("gaussianFlux", 0.97), ("kronFlux", 1.01)):
        src[alg] = flux * scale
        src[alg + "Err"] = 0.001 * flux
        src[alg + "_flag"] = np.zeros(n, bool)
    src["calibFlux"][:5] *= 3.0  # outliers (a neighbour in the aperture): clipped
    return src, true_ratio


def test_recovers_and_applies_a_varying_correction() -> None:
    rng = np.random.default_rng(3)
    src, true_ratio = _catalog(300, rng)
    stars = np.ones(len(src), bool)
    corr = fit_aperture_corrections(src, stars, shape=(4176, 2048), degree=2)
    assert set(corr) == {"psfFlux", "gaussianFlux", "kronFlux"}
    assert corr["psfFlux"].degree == 2 and corr["psfFlux"].n_stars <= 295
    value, err = corr["psfFlux"].evaluate(src["x"], src["y"])
    np.testing.assert_allclose(value, true_ratio, atol=1e-3)
    assert np.all(err < 1e-3)
    before = np.asarray(src["gaussianFlux"]).copy()
    apply_aperture_corrections(src, corr)
    # every algorithm now agrees with the calibration aperture on the (unclipped) stars
    for alg in ("psfFlux", "gaussianFlux", "kronFlux"):
        ratio = np.asarray(src["calibFlux"])[5:] / np.asarray(src[alg])[5:]
        assert abs(np.median(ratio) - 1) < 5e-4 and np.std(ratio) < 0.004
        assert not src[alg + "_flag_apCorr"].any()
    np.testing.assert_allclose(src["gaussianFlux_apCorr"] * before, src["gaussianFlux"])
    meta = corr["psfFlux"].to_metadata()
    assert meta["APCPDEG"] == 2 and len([k for k in meta if k[4:].isdigit()]) == 6


def test_few_stars_lower_the_degree_and_none_flags() -> None:
    rng = np.random.default_rng(4)
    src, _ = _catalog(12, rng)
    src["calibFlux"][:5] /= 3.0
    corr = fit_aperture_corrections(src, np.ones(len(src), bool), shape=(4176, 2048), degree=2)
    assert corr["psfFlux"].degree == 1  # 12 stars: 3 per term of a plane
    empty = fit_aperture_corrections(src, np.zeros(len(src), bool), shape=(4176, 2048))
    assert empty == {}
    apply_aperture_corrections(src, empty)
    assert src["psfFlux_flag_apCorr"].all() and np.all(src["psfFlux_apCorr"] == 1.0)
