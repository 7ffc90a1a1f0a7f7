"""Tests of opendrp.qa.match_catalogs: one-to-one, nearest first, separations, wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.qa import match_catalogs


def _greedy_reference(ra1, dec1, ra2, dec2, radius_arcsec):
    """Brute-force global nearest-first greedy matching (small catalogs only)."""
    from opendrp.qa._match import radec_to_unit_vectors

    v1, v2 = radec_to_unit_vectors(ra1, dec1), radec_to_unit_vectors(ra2, dec2)
    ang = np.degrees(np.arccos(np.clip(v1 @ v2.T, -1, 1))) * 3600
    pairs = sorted((ang[i, j], i, j) for i, j in zip(*np.nonzero(ang < radius_arcsec)))
    used1, used2, out = set(), set(), {}
    for _d, i, j in pairs:
        if i not in used1 and j not in used2:
            used1.add(i)
            used2.add(j)
            out[i] = j
    return out


def test_known_pairs_and_separation():
    ra2 = np.array([10.0, 10.01, 10.02])
    dec2 = np.array([-30.0, -30.0, -30.0])
    # Object k sits 0.3" north of truth 2-k; the last object has no counterpart.
    ra1 = np.array([10.02, 10.01, 10.0, 11.0])
    dec1 = np.array([-30.0, -30.0, -30.0, -30.0]) + 0.3 / 3600
    i1, i2, sep = match_catalogs(ra1, dec1, ra2, dec2, radius_arcsec=0.5)
    np.testing.assert_array_equal(i1, [0, 1, 2])
    np.testing.assert_array_equal(i2, [2, 1, 0])
    np.testing.assert_allclose(sep, 0.3, rtol=1e-6)


def test_radius_excludes():
    i1, _i2, _ = match_catalogs([0.0], [0.0], [0.0], [0.6 / 3600], radius_arcsec=0.5)
    assert i1.size == 0
    i1, _i2, sep = match_catalogs([0.0], [0.0], [0.0], [0.4 / 3600], radius_arcsec=0.5)
    assert i1.size == 1 and abs(sep[0] - 0.4) < 1e-6


def test_conflict_resolved_nearest_first():
    # A at 0", B at 0.15"; T1 at 0.1", T2 at 0.3" (all along Dec). Nearest pair B-T1 wins, A takes T2.
    a = 1 / 3600
    i1, i2, sep = match_catalogs([0, 0], [0.0, 0.15 * a], [0, 0], [0.1 * a, 0.3 * a], radius_arcsec=0.5)
    np.testing.assert_array_equal(i1, [0, 1])
    np.testing.assert_array_equal(i2, [1, 0])
    np.testing.assert_allclose(sep, [0.3, 0.05], atol=1e-6)


def test_ra_wraparound_and_nan():
    i1, i2, sep = match_catalogs(
        [359.99999, np.nan], [0.0, 0.0], [0.00001, 5.0], [0.0, 0.0], radius_arcsec=0.5
    )
    np.testing.assert_array_equal(i1, [0])
    np.testing.assert_array_equal(i2, [0])
    np.testing.assert_allclose(sep, 0.072, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_to_one_matches_greedy_bruteforce(seed):
    rng = np.random.default_rng(seed)
    # Dense catalogs (separations comparable to the radius) so conflicts are frequent.
    ra1, dec1 = rng.uniform(0, 10 / 3600, 300), rng.uniform(0, 10 / 3600, 300)
    ra2, dec2 = rng.uniform(0, 10 / 3600, 250), rng.uniform(0, 10 / 3600, 250)
    i1, i2, _ = match_catalogs(ra1, dec1, ra2, dec2, radius_arcsec=0.5)
    assert np.unique(i1).size == i1.size and np.unique(i2).size == i2.size
    ref = _greedy_reference(ra1, dec1, ra2, dec2, 0.5)
    assert dict(zip(i1.tolist(), i2.tolist())) == ref
    assert len(ref) > 50
