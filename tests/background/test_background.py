"""Background mesh estimation and its spline interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import interpolate

from opendrp.background import BackgroundModel, estimate_background


@pytest.mark.parametrize("cells", [(33, 16), (5, 4), (3, 6), (2, 2)])
def test_evaluate_matches_fitpack_interpolating_spline(cells: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    mesh = 100.0 + 10.0 * rng.normal(size=cells)
    model = BackgroundModel(mesh, bin_size=64, shape=(cells[0] * 64 - 13, cells[1] * 64 + 5))
    yc = model._centres(cells[0], model.shape[0])
    xc = model._centres(cells[1], model.shape[1])
    k = (min(3, cells[0] - 1), min(3, cells[1] - 1))
    ref = interpolate.RectBivariateSpline(yc, xc, mesh, kx=k[0], ky=k[1])(
        np.arange(model.shape[0], dtype=float), np.arange(model.shape[1], dtype=float)
    )
    got = model.evaluate()
    assert got.dtype == np.float32 and got.shape == model.shape
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_single_cell_is_constant() -> None:
    model = BackgroundModel(np.array([[7.5]]), bin_size=128, shape=(50, 40))
    assert np.all(model.evaluate() == np.float32(7.5))


def test_estimate_recovers_a_sloped_sky_under_sources() -> None:
    rng = np.random.default_rng(2)
    ny, nx = 512, 384
    yy, xx = np.mgrid[:ny, :nx]
    sky = 1000.0 + 0.1 * xx + 0.05 * yy
    image = (sky + rng.normal(0.0, 10.0, (ny, nx))).astype(np.float32)
    # bright compact sources on 3% of the pixels: clipped away
    for y, x in rng.integers(10, (ny - 10, nx - 10), size=(60, 2)):
        image[y - 3 : y + 4, x - 3 : x + 4] += 5000.0
    bad = np.zeros(image.shape, bool)
    bad[:64, :64] = True  # a fully masked cell takes the median of the others
    model = estimate_background(image, bad=bad, bin_size=64)
    resid = model.evaluate() - sky
    # the statistical error of a 4096-pixel cell's mode is ~0.3 (noise 10); the filled cell pulls its
    # neighbours
    assert np.abs(resid[128:-32, 128:-32]).max() < 1.5
    assert abs(float(np.median(resid))) < 0.3
