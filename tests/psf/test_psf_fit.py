import numpy as np
import pytest

from opendrp.measurement import adaptive_moments, measure_sources
from opendrp.psf.fit import fit_psf
from opendrp.sfp.synthetic import moffat_psf_params, render_moffat

SHAPE = (512, 512)
SLOPE = 0.15  # FWHM varies by about +-8% over the CCD


def _true_kernel(x, y, half=12):
    st = np.zeros((2 * half + 1, 2 * half + 1))
    f, e1, e2 = moffat_psf_params(np.array([x]), np.array([y]), SHAPE, fwhm_slope=SLOPE)
    render_moffat(st, half, half, 1.0, f[0], e1[0], e2[0])
    return st


def _moments(img):
    am = adaptive_moments(img[None], np.ones((1,) + img.shape, bool), sigma0=1.5, update_centroid=False)
    return am.ixx[0], am.iyy[0], am.ixy[0]


@pytest.fixture(scope="module")
def star_field():
    rng = np.random.default_rng(11)
    g = np.linspace(20, SHAPE[0] - 21, 12)
    xs, ys = np.meshgrid(g, g)
    xs = xs.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    ys = ys.ravel() + rng.uniform(-0.5, 0.5, ys.size)
    fluxes = np.exp(rng.uniform(np.log(5e4), np.log(5e5), xs.size))
    f, e1, e2 = moffat_psf_params(xs, ys, SHAPE, fwhm_slope=SLOPE)
    img = np.zeros(SHAPE)
    for k in range(xs.size):
        render_moffat(img, xs[k], ys[k], fluxes[k], f[k], e1[k], e2[k])
    var = 200.0 + img
    img = img + rng.normal(size=SHAPE) * np.sqrt(var)
    img[100:103, :] += 5e3  # a satellite trail crossing some stars: rejected pixels
    return img, var, xs, ys, fluxes


def test_psf_fit_recovers_spatially_varying_psf(star_field):
    img, var, xs, ys, _ = star_field
    mask = np.zeros(SHAPE, np.int32)
    m = measure_sources(img, var, mask, None, xs, ys, initial_sigma=1.5)
    res = fit_psf(img, var, mask, m["x"], m["y"], degree=2, size=25)
    assert res.psf.degree == 2 and res.n_used > 100
    for x, y in [(40, 40), (256, 256), (470, 60), (60, 470), (470, 470), (300, 150)]:
        ixx_m, iyy_m, ixy_m = _moments(res.psf.kernel_image(x, y))
        ixx_t, iyy_t, ixy_t = _moments(_true_kernel(x, y))
        assert ixx_m == pytest.approx(ixx_t, rel=0.01)
        assert iyy_m == pytest.approx(iyy_t, rel=0.01)
        assert abs(ixy_m - ixy_t) < 0.01 * (ixx_t + iyy_t) / 2


def test_psf_fit_lowers_degree_and_rejects_outliers(star_field):
    img, var, xs, ys, _ = star_field
    mask = np.zeros(SHAPE, np.int32)
    m = measure_sources(img, var, mask, None, xs[:8], ys[:8], initial_sigma=1.5)
    res = fit_psf(img, var, mask, m["x"], m["y"], degree=2)
    assert res.psf.degree < 2
    # a galaxy among the stars is rejected
    big = np.zeros(SHAPE)
    render_moffat(big, 256.0, 256.0, 3e5, 9.0, 0.2, 0.0)
    m = measure_sources(img, var, mask, None, xs, ys, initial_sigma=1.5)
    xg = np.append(np.asarray(m["x"]), 256.0)
    yg = np.append(np.asarray(m["y"]), 256.0)
    res = fit_psf(img + big, var, mask, xg, yg, degree=2)
    assert not res.used[-1]
