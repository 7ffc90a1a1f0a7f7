"""PSF-fit centroids of blended sources (`opendrp.measurement.centroid`) against known true positions."""

import galsim
import numpy as np
import pytest

from opendrp.measurement import measure_sources
from opendrp.measurement.centroid import psf_fit_centroids, psf_kernels
from opendrp.psf import PixelPsf
from opendrp.sim.psf import moffat_stamp

SHAPE = (120, 160)
FWHM = 4.2
MOFFAT = dict(fwhm=FWHM, beta=3.5, e1=0.04, e2=-0.02, radius=12, oversampling=5)


def _psf() -> PixelPsf:
    k, _, _ = moffat_stamp(1.0, 12.0, 12.0, **MOFFAT)
    return PixelPsf(k / k.sum(), degree=0, x_range=(0, SHAPE[1] - 1), y_range=(0, SHAPE[0] - 1))


def _render(xs, ys, fluxes) -> np.ndarray:
    img = np.zeros(SHAPE)
    for x, y, f in zip(xs, ys, fluxes):
        st, x0, y0 = moffat_stamp(f, x, y, **MOFFAT)
        img[y0 : y0 + st.shape[0], x0 : x0 + st.shape[1]] += st
    return img


def _pairs(rng, n, sep_fwhm, ratio_max):
    """Random pairs: the target near the centre, a neighbour ``sep_fwhm`` FWHM away, 1 to ``ratio_max`` times
    brighter."""
    for _ in range(n):
        sep = rng.uniform(*sep_fwhm) * FWHM
        ang = rng.uniform(0, 2 * np.pi)
        xa, ya = 80 + rng.uniform(-0.5, 0.5), 60 + rng.uniform(-0.5, 0.5)
        ratio = np.exp(rng.uniform(0.0, np.log(ratio_max)))
        yield (
            np.array([xa, xa + sep * np.cos(ang)]),
            np.array([ya, ya + sep * np.sin(ang)]),
            3e4 * np.array([1, ratio]),
        )


def test_psf_kernels_match_the_model():
    psf = PixelPsf(
        np.random.default_rng(0).uniform(0.5, 1, (3, 11, 11)), degree=1, x_range=(0, 99), y_range=(0, 99)
    )
    x, y = np.array([3.0, 50.0, 97.5]), np.array([80.0, 10.0, 55.0])
    k = psf_kernels(psf, x, y)
    for i in range(3):
        np.testing.assert_allclose(k[i], psf.kernel_image(x[i], y[i]), rtol=1e-12)


def test_noiseless_pair_is_exact():
    psf = _psf()
    xs, ys, fs = np.array([70.3, 78.9]), np.array([60.2, 62.7]), np.array([3e4, 9e4])  # 2.1 FWHM apart
    img = _render(xs, ys, fs)
    r = psf_fit_centroids(img, np.full(SHAPE, 100.0), np.zeros(SHAPE, bool), psf, xs + 0.3, ys - 0.2)
    assert r.blended.all() and not r.flag.any() and not r.companion.any()
    np.testing.assert_allclose(r.x, xs, atol=5e-3)
    np.testing.assert_allclose(r.y, ys, atol=5e-3)
    np.testing.assert_allclose(r.flux, fs, rtol=0.02)


@pytest.mark.parametrize(("sep_fwhm", "gain"), [((2.0, 3.0), 0.5), ((3.0, 4.0), 0.95)])
def test_blended_pairs_with_noise_beat_the_windowed_centroid(sep_fwhm, gain):
    rng = np.random.default_rng(42)
    psf = _psf()
    res_win, res_psf = [], []
    for xs, ys, fs in _pairs(rng, 25, sep_fwhm, 10.0):
        clean = _render(xs, ys, fs)
        var = 100.0 + clean
        img = (clean + rng.normal(size=SHAPE) * np.sqrt(var)).astype(np.float32)
        m = measure_sources(img, var.astype(np.float32), np.zeros(SHAPE, np.int32), psf, xs, ys)
        assert m["centroid_blended"][0] or np.hypot(xs[1] - xs[0], ys[1] - ys[0]) > 3 * FWHM
        assert not m["centroid_flag"][0]
        res_psf.append([m["x"][0] - xs[0], m["y"][0] - ys[0]])
        # the windowed centroid alone: measurement without a PSF
        w = measure_sources(
            img, var.astype(np.float32), np.zeros(SHAPE, np.int32), None, xs, ys, initial_sigma=FWHM / 2.355
        )
        res_win.append([w["x"][0] - xs[0], w["y"][0] - ys[0]])
    rms_psf = float(np.sqrt(np.mean(np.square(res_psf))))
    rms_win = float(np.sqrt(np.mean(np.square(res_win))))
    # photon noise alone: ~FWHM / (2.35 S/N) ~ 0.01 pixel for these 3e4 e- stars
    assert rms_psf < 0.03
    assert rms_psf < gain * rms_win


def test_unresolved_pair_is_fitted_as_two_psfs():
    rng = np.random.default_rng(3)
    psf = _psf()
    errors = []
    for _ in range(10):
        ang = rng.uniform(0, 2 * np.pi)
        sep = rng.uniform(0.7, 1.2) * FWHM  # one detection for the two stars
        xs = np.array([80.2, 80.2 + sep * np.cos(ang)])
        ys = np.array([60.4, 60.4 + sep * np.sin(ang)])
        fs = np.array([2e5, 2e5 * rng.uniform(0.2, 0.8)])
        clean = _render(xs, ys, fs)
        var = 100.0 + clean
        img = clean + rng.normal(size=SHAPE) * np.sqrt(var)
        x0 = np.sum(fs * xs) / fs.sum()  # the detection: at the light-weighted centre
        y0 = np.sum(fs * ys) / fs.sum()
        r = psf_fit_centroids(img, var, np.zeros(SHAPE, bool), psf, np.array([x0]), np.array([y0]))
        assert r.companion[0] and not r.flag[0]
        errors.append(np.hypot(r.x[0] - xs[0], r.y[0] - ys[0]))
    assert np.max(errors) < 0.05  # pixels; the light-weighted centre was 0.4-2.5 pixels off


def test_isolated_sources_and_galaxies_keep_their_position():
    rng = np.random.default_rng(5)
    psf = _psf()
    # an isolated star and an isolated round galaxy (a broad Moffat): not refitted, no companion
    star = _render([40.3], [60.6], [1e5])
    gal, x0, y0 = moffat_stamp(
        3e5, 110.2, 60.1, fwhm=3 * FWHM, beta=2.5, e1=0.2, e2=0.0, radius=25, oversampling=3
    )
    img = star.copy()
    img[y0 : y0 + gal.shape[0], x0 : x0 + gal.shape[1]] += gal
    var = 100.0 + img
    img = img + rng.normal(size=SHAPE) * np.sqrt(var)
    x, y = np.array([40.35, 110.25]), np.array([60.55, 60.05])
    r = psf_fit_centroids(img, var, np.zeros(SHAPE, bool), psf, x, y)
    assert not r.companion.any() and not r.blended.any() and not r.flag.any()
    np.testing.assert_array_equal(r.x, x)
    np.testing.assert_array_equal(r.y, y)


def test_marginally_resolved_galaxies_are_not_split():
    """Bright, compact, elongated galaxies: two PSFs fit them better than one, but they are wider than the PSF
    across the line joining the two components; no companion, and the position stays the galaxy's centre."""
    rng = np.random.default_rng(11)
    psf = _psf()
    n_split, errors = 0, []
    for _ in range(8):
        e = rng.uniform(0.5, 0.7)
        ang = rng.uniform(0, np.pi)
        xg, yg = 80.0 + rng.uniform(-0.5, 0.5), 60.0 + rng.uniform(-0.5, 0.5)
        # an exponential disk (half-light radius 1.5 pixels) seen through a round Moffat PSF
        profile = galsim.Convolve(
            galsim.Exponential(half_light_radius=1.5, flux=1e6).shear(
                e1=e * np.cos(2 * ang), e2=e * np.sin(2 * ang)
            ),
            galsim.Moffat(beta=3.5, fwhm=FWHM),
        )
        image = galsim.ImageD(SHAPE[1], SHAPE[0], scale=1.0)
        img = profile.drawImage(image, offset=(xg - (SHAPE[1] - 1) / 2, yg - (SHAPE[0] - 1) / 2)).array
        var = 100.0 + img
        img = img + rng.normal(size=SHAPE) * np.sqrt(var)
        r = psf_fit_centroids(img, var, np.zeros(SHAPE, bool), psf, np.array([xg + 0.05]), np.array([yg]))
        n_split += int(r.companion[0])
        errors.append(np.hypot(r.x[0] - xg, r.y[0] - yg))
    assert n_split == 0
    assert np.max(errors) < 0.1


def test_distant_bright_neighbour_model_does_not_wrap():
    """A neighbour 16 pixels away (beyond the 25-pixel kernel's half width from the target's window edge):
    its shifted model is zero beyond the kernel, not the periodic interpolant's wrapped far side."""
    psf = _psf()
    xs, ys, fs = np.array([70.3, 86.6]), np.array([60.2, 63.1]), np.array([3e4, 6e5])
    img = _render(xs, ys, fs)
    r = psf_fit_centroids(
        img, np.full(SHAPE, 100.0), np.zeros(SHAPE, bool), psf, xs + 0.2, ys - 0.2, refit_all=True
    )
    assert not r.flag.any()
    np.testing.assert_allclose(r.x, xs, atol=5e-3)
    np.testing.assert_allclose(r.y, ys, atol=5e-3)


def test_runaway_fit_is_flagged_and_keeps_the_start():
    psf = _psf()
    xs, ys, fs = np.array([70.0, 80.0]), np.array([60.0, 60.0]), np.array([5e4, 5e4])
    img = _render(xs, ys, fs)
    start_x, start_y = np.array([72.5, 80.0]), np.array([60.0, 60.0])  # 2.5 pixels off the first star
    r = psf_fit_centroids(
        img, np.full(SHAPE, 100.0), np.zeros(SHAPE, bool), psf, start_x, start_y, max_shift=1.0
    )
    assert r.flag[0] and r.x[0] == start_x[0]
    assert not r.flag[1] and abs(r.x[1] - 80.0) < 0.05


def test_empty_and_fixed():
    psf = _psf()
    r = psf_fit_centroids(
        np.zeros(SHAPE), np.ones(SHAPE), np.zeros(SHAPE, bool), psf, np.zeros(0), np.zeros(0)
    )
    assert r.x.size == 0
    xs, ys, fs = np.array([70.3, 78.9]), np.array([60.2, 62.7]), np.array([3e4, 9e4])
    img = _render(xs, ys, fs)
    r = psf_fit_centroids(
        img, np.full(SHAPE, 100.0), np.zeros(SHAPE, bool), psf, xs + 0.3, ys, fixed=np.array([False, True])
    )
    assert r.x[1] == xs[1] + 0.3 and abs(r.x[0] - xs[0]) < 0.01
