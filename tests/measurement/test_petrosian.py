"""Petrosian radius and flux against the analytic values of Gaussian and exponential profiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from opendrp.measurement.petrosian import petrosian_fluxes

ETA = 0.2


def _ratio(enclosed, r: float) -> float:
    """SDSS Petrosian ratio of a profile with enclosed-flux fraction ``enclosed(r)``."""
    return (enclosed(1.25 * r) - enclosed(0.8 * r)) / ((1.25**2 - 0.8**2) * enclosed(r))


def _gaussian_enclosed(sigma: float):
    return lambda r: 1.0 - np.exp(-0.5 * (r / sigma) ** 2)


def _exponential_enclosed(h: float):
    return lambda r: 1.0 - (1.0 + r / h) * np.exp(-r / h)


def _truth(enclosed, scale: float) -> tuple[float, float]:
    """Petrosian radius (pixels) and the fraction of the total flux within 2 r_P."""
    r_p = optimize.brentq(lambda r: _ratio(enclosed, r) - ETA, 0.3 * scale, 20.0 * scale)
    return r_p, float(enclosed(2.0 * r_p))


def _draw(kind: str, scale: float, total: float, centres: list[tuple[float, float]], size: int = 160):
    """Pixel-integrated profiles (5 x 5 sub-samples per pixel), one per centre."""
    img = np.zeros((size, size), np.float64)
    sub = (np.arange(5) - 2) / 5.0
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    for xc, yc in centres:
        acc = np.zeros_like(img)
        for dy in sub:
            for dx in sub:
                r = np.hypot(xx + dx - xc, yy + dy - yc)
                if kind == "gaussian":
                    acc += np.exp(-0.5 * (r / scale) ** 2) / (2 * np.pi * scale**2)
                else:
                    acc += np.exp(-r / scale) / (2 * np.pi * scale**2)
        img += total * acc / 25.0
    return img.astype(np.float32)


@pytest.mark.parametrize(
    ("kind", "scale", "rtol_radius"),
    [
        ("gaussian", 2.0, 0.025),
        ("gaussian", 3.5, 0.01),
        ("exponential", 3.0, 0.01),
        ("exponential", 6.0, 0.01),
    ],
)
def test_petrosian_radius_and_flux_match_analytic_profiles(kind, scale, rtol_radius):
    enclosed = _gaussian_enclosed(scale) if kind == "gaussian" else _exponential_enclosed(scale)
    r_true, frac_true = _truth(enclosed, scale)
    total = 1.0e5
    for xc, yc in [(80.3, 80.7), (79.5, 80.45)]:  # two sub-pixel phases, one source per image
        img = _draw(kind, scale, total, [(xc, yc)])
        res = petrosian_fluxes(img, np.array([xc]), np.array([yc]))
        assert not res.flag.any()
        # pixel integration widens the profile (sigma**2 + 1/12): ~1% on the smallest
        np.testing.assert_allclose(res.radius, r_true, rtol=rtol_radius)
        # the flux within 2 r_P: ~99.997% of a Gaussian, ~99.3% of an exponential disk
        np.testing.assert_allclose(res.flux, total * frac_true, rtol=1e-3)
    if kind == "exponential":
        assert 0.99 < frac_true < 0.995


def test_petrosian_noise_errors_and_flags():
    rng = np.random.default_rng(4)
    scale, total, sky_sigma = 3.0, 2.0e4, 5.0
    img = _draw("exponential", scale, total, [(60.0, 70.0)])
    img += rng.normal(0.0, sky_sigma, img.shape).astype(np.float32)
    var = np.full(img.shape, sky_sigma**2, np.float32)
    x = np.array([60.0, 30.0, 2.0])  # a galaxy, an empty sky position, a source at the edge
    y = np.array([70.0, 130.0, 80.0])
    res = petrosian_fluxes(img, x, y, variance=var)
    r_true, frac = _truth(_exponential_enclosed(scale), scale)
    assert abs(res.radius[0] / r_true - 1) < 0.1
    expected_err = sky_sigma * np.sqrt(np.pi) * 2 * res.radius[0]
    assert res.flux_err[0] == pytest.approx(expected_err, rel=0.02)
    assert abs(res.flux[0] - total * frac) < 4 * res.flux_err[0]
    assert not res.flag[0]
    assert res.flag[2]  # the 2 r_P aperture runs off the image
    assert np.all(np.isfinite(res.radius))


def test_no_sources():
    res = petrosian_fluxes(np.zeros((10, 10), np.float32), np.zeros(0), np.zeros(0))
    assert res.radius.size == 0 and res.flux.size == 0
