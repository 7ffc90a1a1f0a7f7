import numpy as np
import pytest

from opendrp.image import mask_bit
from opendrp.measurement import adaptive_moments, measure_sources
from opendrp.psf import PixelPsf


def _gauss_psf(sigma=1.6, size=25):
    return PixelPsf.gaussian(sigma, size=size, x_range=(0, 255), y_range=(0, 255))


def _render(psf, shape, xs, ys, fluxes):
    img = np.zeros(shape)
    for x, y, f in zip(xs, ys, fluxes):
        stamp, x0, y0 = psf.image_at(x, y)
        img[y0 : y0 + psf.size, x0 : x0 + psf.size] += f * stamp
    return img


def _grid(n_side=6, shape=(256, 256), rng=None):
    g = np.linspace(25, shape[1] - 26, n_side)
    xs, ys = np.meshgrid(g, g)
    xs, ys = xs.ravel(), ys.ravel()
    if rng is not None:
        xs = xs + rng.uniform(-0.5, 0.5, xs.size)
        ys = ys + rng.uniform(-0.5, 0.5, ys.size)
    return xs, ys


def test_psf_flux_recovers_flux_and_errors_are_consistent():
    rng = np.random.default_rng(0)
    psf = _gauss_psf()
    shape = (256, 256)
    xs, ys = _grid(rng=rng)
    fluxes = np.exp(rng.uniform(np.log(2e3), np.log(2e5), xs.size))
    clean = _render(psf, shape, xs, ys, fluxes)
    sky_var = 400.0
    pulls, rel = [], []
    for _ in range(15):
        var = sky_var + np.maximum(clean, 0)
        img = clean + rng.normal(size=shape) * np.sqrt(var)
        m = measure_sources(img, var, np.zeros(shape, np.int32), psf, xs, ys, centroid=False)
        pulls.append((m["psfFlux"] - fluxes) / m["psfFluxErr"])
        rel.append(m["psfFlux"] / fluxes - 1)
    pulls = np.concatenate(pulls)
    rel = np.array(rel)
    assert np.std(pulls) == pytest.approx(1.0, abs=0.1)
    assert abs(np.mean(pulls)) < 0.1
    bright = fluxes > 2e4
    assert np.all(np.abs(np.mean(rel[:, bright], axis=0)) < 0.01)
    # noiseless: exact
    m = measure_sources(clean, np.full(shape, sky_var), np.zeros(shape, np.int32), psf, xs, ys)
    np.testing.assert_allclose(m["psfFlux"], fluxes, rtol=1e-3)
    np.testing.assert_allclose(m["x"], xs, atol=2e-3)
    np.testing.assert_allclose(m["y"], ys, atol=2e-3)
    # Gaussian PSF: adaptive moments = sigma**2 (plus the 1/12 pixel variance at most)
    assert np.allclose(m["ixx"], 1.6**2, rtol=0.05) and np.allclose(m["ixy"], 0, atol=0.02)
    assert np.allclose(m["ixx"], m["ixxPSF"], rtol=1e-3)
    assert np.all(m["extendedness"] == 0)
    # apertures: 6 sigma radius holds everything
    np.testing.assert_allclose(m["ap12Flux"], fluxes, rtol=2e-3)
    np.testing.assert_allclose(m["calibFlux"], m["ap12Flux"])
    assert np.all(np.abs(m["kronFlux"] / fluxes - 1) < 0.05)
    np.testing.assert_allclose(m["gaussianFlux"], fluxes, rtol=0.02)


def test_centroid_errors_are_consistent():
    rng = np.random.default_rng(4)
    psf = _gauss_psf()
    shape = (256, 256)
    xs, ys = _grid(rng=rng)
    fluxes = np.full(xs.size, 5e3)
    clean = _render(psf, shape, xs, ys, fluxes)
    var = 100.0 + clean
    dx, errs = [], []
    for _ in range(10):
        img = clean + rng.normal(size=shape) * np.sqrt(var)
        m = measure_sources(img, var, np.zeros(shape, np.int32), psf, xs + 0.3, ys - 0.3)
        dx.append(m["x"] - xs)
        errs.append(m["xErr"])
    assert np.std(np.concatenate(dx)) == pytest.approx(np.mean(np.concatenate(errs)), rel=0.15)


def test_forced_positions_fixed_and_flags():
    psf = _gauss_psf()
    shape = (256, 256)
    xs, ys = _grid(n_side=3)
    img = _render(psf, shape, xs, ys, np.full(xs.size, 1e4))
    mask = np.zeros(shape, np.int32)
    ix, iy = int(round(xs[0])), int(round(ys[0]))
    mask[iy - 1 : iy + 2, ix - 1 : ix + 2] = mask_bit("SAT")
    mask[:, 200:] |= mask_bit("NO_DATA")
    m = measure_sources(img, np.ones(shape), mask, psf, xs + 0.2, ys, centroid=False)
    np.testing.assert_allclose(m["x"], xs + 0.2)
    assert m["pixelFlags_saturated"][0] and m["pixelFlags_saturatedCenter"][0]
    assert not m["pixelFlags_saturated"][1]
    # the saturated core is excluded from the PSF fit, so the flux comes from the wings
    assert abs(m["psfFlux"][0] / 1e4 - 1) < 0.05
    assert np.all(m["pixelFlags_edge"][xs > 190])
    empty = measure_sources(img, np.ones(shape), mask, psf, np.zeros(0), np.zeros(0))
    assert len(empty) == 0 and set(m.colnames) == set(empty.colnames)


def test_adaptive_moments_of_elliptical_gaussian():
    half = 15
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    cov = np.array([[4.0, 1.2], [1.2, 2.5]])
    inv = np.linalg.inv(cov)
    x0, y0 = 0.3, -0.4
    dx, dy = xx - x0, yy - y0
    img = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    am = adaptive_moments(img[None], np.ones((1,) + img.shape, bool), sigma0=1.0)
    assert not am.flag[0]
    assert am.x[0] == pytest.approx(x0, abs=1e-4) and am.y[0] == pytest.approx(y0, abs=1e-4)
    assert am.ixx[0] == pytest.approx(4.0, rel=2e-3)
    assert am.iyy[0] == pytest.approx(2.5, rel=2e-3)
    assert am.ixy[0] == pytest.approx(1.2, rel=5e-3)
    assert am.flux[0] == pytest.approx(img.sum(), rel=2e-3)
