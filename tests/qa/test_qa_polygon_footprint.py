"""The polygon footprint: containment and area of a union of convex sky polygons."""

import numpy as np
import pytest

from opendrp.qa._footprint import PolygonFootprint


def _square(ra0: float, dec0: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.cos(np.radians(dec0))
    return (
        np.array([ra0 - half / c, ra0 + half / c, ra0 + half / c, ra0 - half / c]),
        np.array([dec0 - half, dec0 - half, dec0 + half, dec0 + half]),
    )


def test_contains_and_area() -> None:
    fp = PolygonFootprint.from_polygons([_square(150.0, 2.0, 0.1), _square(150.3, 2.0, 0.1)])
    ra = np.array([150.0, 150.15, 150.3, 150.0, 330.0])
    dec = np.array([2.0, 2.0, 2.05, 2.15, -2.0])
    assert list(fp.contains(ra, dec)) == [True, False, True, False, False]
    # two disjoint 0.2 deg squares
    assert fp.area_deg2 == pytest.approx(2 * 0.2 * 0.2, rel=0.03)


def test_across_ra_zero() -> None:
    fp = PolygonFootprint.from_polygons([_square(0.0, -30.0, 0.05)])
    assert list(fp.contains(np.array([359.99, 0.01, 0.2]), np.array([-30.0, -30.0, -30.0]))) == [
        True,
        True,
        False,
    ]
