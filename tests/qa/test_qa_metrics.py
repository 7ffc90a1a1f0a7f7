"""Tests of the QA metric functions on arrays with known answers."""

from __future__ import annotations

import numpy as np

from opendrp.qa import (
    OccupancyFootprint,
    astrometry_stats,
    completeness_curve,
    completeness_limit,
    flux_to_mag,
    magnitude_bins,
    photometry_stats,
    robust_scatter,
    sky_offsets_mas,
    star_galaxy_stats,
)


def test_flux_to_mag():
    np.testing.assert_allclose(flux_to_mag([3631e9, 1.0]), [0.0, 31.4], atol=1e-3)
    assert np.isnan(flux_to_mag([-1.0])[0])


def test_robust_scatter_gaussian_and_outliers():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, 20000)
    x[:500] = 1e6  # 2.5% wild outliers barely move it
    assert abs(robust_scatter(x) - 2.0) < 0.1
    assert np.isnan(robust_scatter([np.nan]))


def test_sky_offsets_cos_dec():
    dra, ddec = sky_offsets_mas([60.0 + 1 / 3600], [60.0 - 2 / 3600], [60.0], [60.0])
    np.testing.assert_allclose(dra, 500.0, rtol=1e-9)  # 1" in RA at Dec 60 is 0.5"
    np.testing.assert_allclose(ddec, -2000.0, rtol=1e-9)
    dra, _ = sky_offsets_mas([0.0], [0.0], [360.0 - 1 / 3600], [0.0])
    np.testing.assert_allclose(dra, 1000.0, rtol=1e-6)


def test_completeness_curve_and_limits():
    edges = magnitude_bins([20.2, 23.9], width=0.5)
    np.testing.assert_allclose(edges, np.arange(20.0, 24.01, 0.5))
    # 20 sources per bin; completeness 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.
    centres = 0.5 * (edges[1:] + edges[:-1])
    frac = np.array([1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.0])
    mags = np.repeat(centres, 20)
    matched = np.concatenate([np.arange(20) < 20 * f for f in frac])
    curve = completeness_curve(mags, matched, bin_edges=edges)
    np.testing.assert_array_equal(curve.n_truth, 20)
    np.testing.assert_allclose(curve.completeness, frac)
    # 90%: between 21.25 (1.0) and 21.75 (0.8) -> 21.5; 50%: between 22.25 (0.6) and 22.75 (0.4) -> 22.5.
    assert abs(completeness_limit(curve, level=0.9) - 21.5) < 1e-9
    assert abs(completeness_limit(curve, level=0.5) - 22.5) < 1e-9
    # Never below the level: NaN (limit fainter than the bins).
    assert np.isnan(completeness_limit(curve, level=0.0))
    # Bins with too few sources are skipped.
    assert np.isnan(completeness_limit(curve, level=0.5, min_count=21))


def test_completeness_empty_bins_are_nan():
    curve = completeness_curve([20.1], [True], bin_edges=[20.0, 20.5, 21.0])
    assert curve.completeness[0] == 1.0 and np.isnan(curve.completeness[1])


def test_photometry_stats_known_offset_and_scatter():
    rng = np.random.default_rng(4)
    truth = 10 ** rng.uniform(3, 5, 20000)
    flux = truth * (1.02 + 0.04 * rng.standard_normal(truth.size))
    err = 0.02 * truth
    s = photometry_stats(flux, err, truth)
    assert s.n == truth.size
    assert abs(s.offset_median - 0.02) < 0.002
    assert abs(s.offset_scatter - 0.04) < 0.002
    assert abs(s.normalized_median - 1.0) < 0.05
    assert abs(s.normalized_scatter - 2.0) < 0.05
    assert abs(s.mag_offset_median - (-2.5 * np.log10(1.02) * 1000)) < 2.0
    empty = photometry_stats([], [], [])
    assert empty.n == 0 and np.isnan(empty.offset_median)


def test_astrometry_stats_known_offsets():
    rng = np.random.default_rng(5)
    n = 20000
    ra_t, dec_t = rng.uniform(10, 11, n), rng.uniform(59.5, 60.5, n)
    dx = 15.0 + 20.0 * rng.standard_normal(n)  # mas, RA cos(Dec)
    dy = -8.0 + 40.0 * rng.standard_normal(n)
    ra = ra_t + dx / 3.6e6 / np.cos(np.radians(dec_t))
    dec = dec_t + dy / 3.6e6
    s = astrometry_stats(ra, dec, ra_t, dec_t)
    assert s.n == n
    assert abs(s.dra_median - 15.0) < 0.7 and abs(s.ddec_median + 8.0) < 1.2
    assert abs(s.dra_scatter - 20.0) < 0.7 and abs(s.ddec_scatter - 40.0) < 1.2
    assert abs(s.coord_scatter - np.sqrt((20.0**2 + 40.0**2) / 2)) < 1.0


def test_star_galaxy_stats():
    is_star = np.array([True] * 10 + [False] * 5)
    ext = np.array([0.0] * 7 + [1.0] * 2 + [np.nan] + [1.0] * 4 + [0.0])
    s = star_galaxy_stats(is_star, ext)
    assert (s.n_star, s.n_galaxy) == (9, 5)
    assert abs(s.star_fraction_correct - 7 / 9) < 1e-12
    assert abs(s.galaxy_fraction_correct - 0.8) < 1e-12


def test_occupancy_footprint():
    rng = np.random.default_rng(6)
    # Objects fill an L-shaped region: [0, 0.2] x [0, 0.1] plus [0, 0.1] x [0.1, 0.2] deg.
    ra = rng.uniform(0, 0.2, 4000)
    dec = rng.uniform(0, 0.2, 4000)
    keep = ~((ra > 0.1) & (dec > 0.1))
    fp = OccupancyFootprint.from_positions(ra[keep] + 30.0, dec[keep], cell_arcsec=60.0)
    inside = fp.contains([30.05, 30.15, 30.05], [0.05, 0.05, 0.15])
    assert inside.all()
    # The empty corner of the L (inside the convex hull) and a far point are outside.
    assert not fp.contains([30.17, 31.0], [0.17, 0.05]).any()
    assert abs(fp.area_deg2 - 0.03) < 0.004


def test_occupancy_footprint_auto_cell_has_no_holes_at_low_density():
    rng = np.random.default_rng(7)
    ra, dec = rng.uniform(0, 0.2, 300), rng.uniform(0, 0.2, 300)  # ~2 objects / arcmin^2
    probe_ra, probe_dec = rng.uniform(0.01, 0.19, 2000), rng.uniform(0.01, 0.19, 2000)
    fixed = OccupancyFootprint.from_positions(ra, dec, cell_arcsec=60.0)
    assert fixed.contains(probe_ra, probe_dec).mean() < 0.95  # Poisson holes
    auto = OccupancyFootprint.from_positions(ra, dec)
    assert abs(auto.cell_arcsec - np.sqrt(10 * 720.0**2 / 300)) < 5.0
    assert auto.contains(probe_ra, probe_dec).mean() > 0.995
    assert not auto.contains([0.5], [0.5])[0]
