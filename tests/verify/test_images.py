"""Tests of `opendrp.verify.images` on synthetic arrays with injected, known effects."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from opendrp.image.mask import mask_bit
from opendrp.instrument.camera import AmplifierSpec
from opendrp.verify import images as im
from opendrp.verify.cases.coadds import deepest_coadds
from opendrp.verify.cases.visit_images import calibration_agreement, provenance_inputs

SKY_SIGMA = 10.0


def gaussian_star(shape: tuple[int, int], x: float, y: float, flux: float, sigma: float) -> np.ndarray:
    """A pixel-integrated (5x5 sub-sampled) circular Gaussian of total ``flux``."""
    ny, nx = shape
    sub = 5
    off = (np.arange(sub) + 0.5) / sub - 0.5
    gy, gx = np.mgrid[0:ny, 0:nx].astype(float)
    out = np.zeros(shape)
    for oy in off:
        for ox in off:
            out += np.exp(-0.5 * ((gx + ox - x) ** 2 + (gy + oy - y) ** 2) / sigma**2)
    return flux * out / (sub * sub * 2 * np.pi * sigma**2)


def gaussian_kernel(sigma: float, size: int = 25) -> np.ndarray:
    c = size // 2
    k = gaussian_star((size, size), c, c, 1.0, sigma)
    return k / k.sum()


def noise_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, SKY_SIGMA, shape)


# ----------------------------------------------------------------------------------- cosmic-ray-like pixels
def test_injected_cosmic_rays_found_psf_stars_not() -> None:
    shape = (200, 200)
    psf_sigma = 1.8
    img = noise_image(shape, 1)
    rng = np.random.default_rng(2)
    # 30 bright stars at random sub-pixel positions (S/N up to ~2000): not cosmic-ray-like
    for _ in range(30):
        x, y = rng.uniform(10, 190, 2)
        img += gaussian_star(shape, x, y, rng.uniform(5e3, 2e5), psf_sigma)
    # 10 single-pixel hits and one diagonal track, 15 sigma and more
    hits = [(20 + 15 * i, 30 + 13 * i) for i in range(10)]
    for y, x in hits:
        img[y, x] += rng.uniform(150, 2000)
    track = [(150 + i, 20 + i) for i in range(8)]
    for y, x in track:
        img[y, x] += 300.0
    var = np.full(shape, SKY_SIGMA**2) + np.clip(img, 0, None)  # Poisson term of the sources (gain 1)
    limits = im.psf_contrast_limits([gaussian_kernel(psf_sigma)])
    sharp = im.find_sharp_pixels(img, var, limits)
    found = {tuple(p) for p in np.argwhere(sharp)}
    assert set(hits) <= found
    assert len(found & set(track)) >= 6  # the diagonal track: sharp across its direction
    assert found <= set(hits) | set(track)  # no star pixel, no noise pixel


def test_contrast_limits_follow_the_psf_width() -> None:
    # a centred Gaussian sampled at pixel centres has contrast exp(d**2 / (2 sigma**2)) along d
    sigma = 2.0
    c = 12
    gy, gx = np.mgrid[0:25, 0:25]
    k = np.exp(-0.5 * ((gx - c) ** 2 + (gy - c) ** 2) / sigma**2)
    limits = im.psf_contrast_limits([k], width_tolerance=1.0)
    np.testing.assert_allclose(limits, np.exp(np.array([1, 1, 2, 2]) / (2 * sigma**2)), rtol=1e-12)
    # a tolerance f acts as a Gaussian f times narrower
    np.testing.assert_allclose(
        im.psf_contrast_limits([k], width_tolerance=0.5),
        np.exp(np.array([1, 1, 2, 2]) / (2 * (0.5 * sigma) ** 2)),
        rtol=1e-12,
    )


def test_pure_noise_gives_no_sharp_pixel() -> None:
    img = noise_image((1000, 1000), 3)
    limits = im.psf_contrast_limits([gaussian_kernel(1.5)])
    assert not im.find_sharp_pixels(img, np.full(img.shape, SKY_SIGMA**2), limits).any()


def test_masked_pixels_are_excluded() -> None:
    img = noise_image((50, 50), 4)
    img[25, 25] += 1000.0
    limits = im.psf_contrast_limits([gaussian_kernel(1.5)])
    var = np.full(img.shape, SKY_SIGMA**2)
    assert im.find_sharp_pixels(img, var, limits)[25, 25]
    exclude = np.zeros(img.shape, bool)
    exclude[25, 25] = True
    assert not im.find_sharp_pixels(img, var, limits, exclude=exclude).any()


# ----------------------------------------------------------------------------------- saturation
def _amps(nx: int, ny: int) -> list[AmplifierSpec]:
    return [
        AmplifierSpec(
            f"A{i}",
            i,
            nx,
            ny,
            prescan=2,
            overscan=3,
            parallel_overscan=2,
            flip_x=bool(i % 2),
            gain=2.0,
            read_noise=4.0,
            saturation=1000.0 + 100 * i,
        )
        for i in range(2)
    ]


def test_saturated_star_with_and_without_sat_mask() -> None:
    nx, ny = 20, 30
    amps = _amps(nx, ny)
    raw = np.full((ny + 2, 2 * (nx + 5)), 100.0)
    # a saturated star core and bleed column in amplifier 1 (flipped): assembled x = 20 + (19 - 5) = 34
    x_raw = amps[1].raw_x0 + amps[1].prescan + 5
    raw[10:18, x_raw] = 1100.0  # at the level
    raw[18, x_raw] = 1100.0 - 0.5 * 4.0 / 2.0  # within the read noise of it
    raw[19, x_raw] = 900.0  # a partial remainder: below the level
    sat = im.raw_saturated(raw, amps, (ny, 2 * nx))
    assert np.count_nonzero(sat) == 9
    assert sat[10:19, 34].all()
    mask = np.zeros((ny, 2 * nx), np.int32)
    frac, n = im.fraction_masked(sat, mask, ["SAT"])
    assert (frac, n) == (0.0, 9)
    mask[10:19, 34] = mask_bit("SAT")
    mask[12, 34] = mask_bit("BAD")  # a pixel masked otherwise does not count as SAT
    frac, n = im.fraction_masked(sat, mask, ["SAT"])
    assert frac == pytest.approx(8 / 9)


def test_mask_plane_fractions() -> None:
    mask = np.zeros((10, 10), np.int32)
    mask[:2] |= mask_bit("BAD")
    mask[0, :5] |= mask_bit("CR")
    f = im.mask_plane_fractions(mask, ["BAD", "CR", "SAT"])
    assert f == {"BAD": 0.2, "CR": 0.05, "SAT": 0.0}
    valid = np.zeros((10, 10), bool)
    valid[:5] = True
    assert im.mask_plane_fractions(mask, ["BAD"], valid=valid)["BAD"] == pytest.approx(0.4)


def test_track_deposit_conserves_charge() -> None:
    charge = im.track_deposit(
        np.array([[10.0, 10.0, 30.0, 25.0, 5000.0], [-5.0, 3.0, 5.0, 3.0, 800.0]]), (40, 40)
    )
    # the second track is half off the image: its listed charge is what landed on it (up to the edge share)
    assert charge.sum() == pytest.approx(5800.0, rel=0.01)
    assert charge[10:26, 10:31].sum() == pytest.approx(5000.0, rel=1e-6)


# ----------------------------------------------------------------------------------- background annuli
def test_over_subtracted_annulus_measured_at_its_depth() -> None:
    shape = (400, 400)
    img = noise_image(shape, 5)
    var = np.full(shape, SKY_SIGMA**2)
    centres = np.array([[100.0, 100.0], [300.0, 280.0]])
    gy, gx = np.mgrid[0:400, 0:400]
    depth = 0.3  # sigma: a local over-subtraction between 20 and 60 pixels of each bright source
    for x, y in centres:
        r = np.hypot(gx - x, gy - y)
        img[(r >= 20) & (r < 60)] -= depth * SKY_SIGMA
        img += gaussian_star(shape, x, y, 5e5, 2.0)
    img += gaussian_star(shape, 130.0, 100.0, 2e4, 2.0)  # a neighbour inside an annulus: must be masked
    exclude = im.source_mask(img, var, psf_sigma=2.0)
    assert exclude[100, 130] and exclude[100, 100]
    res = im.annulus_residuals(img, var, centres, r_in=20.0, r_out=60.0, exclude=exclude)
    n = res.n_pixels
    assert res.n_sources == 2
    assert res.mean == pytest.approx(-depth, abs=4.0 / np.sqrt(n) + 0.02)
    assert res.median == pytest.approx(-depth, abs=0.03)
    assert np.all(np.abs(res.profile - (-depth)) < 0.1)
    # the same image without the depression: zero within the noise and the mask bias
    flat = noise_image(shape, 6)
    for x, y in centres:
        flat += gaussian_star(shape, x, y, 5e5, 2.0)
    ex = im.source_mask(flat, var, psf_sigma=2.0)
    res0 = im.annulus_residuals(flat, var, centres, r_in=20.0, r_out=60.0, exclude=ex)
    assert abs(res0.mean) < 0.02
    assert res0.low_tail == pytest.approx(0.00135, abs=0.001)


# ----------------------------------------------------------------------------------- warps and coadds
def _warps(n: int, shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sig = np.array([8.0, 10.0, 12.0, 9.0, 11.0][:n])
    images = rng.normal(0.0, 1.0, (n, *shape)) * sig[:, None, None]
    star = gaussian_star(shape, 80.0, 80.0, 3e5, 2.0)
    images += star[None]
    variances = np.broadcast_to((sig**2)[:, None, None], images.shape).copy()
    return images, variances


def _mean_coadd(images: np.ndarray, weights: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    w = np.broadcast_to(weights[:, None, None], images.shape).copy()
    if exclude is not None:
        w[exclude] = 0.0
    return (w * images).sum(axis=0) / w.sum(axis=0)


def test_one_warp_feature_detected_and_residue_with_and_without_clipping() -> None:
    shape = (120, 120)
    images, variances = _warps(4, shape, 7)
    trail = np.zeros(shape, bool)
    trail[30:33, 10:60] = True  # a satellite trail in warp 2, 15 sigma
    images[2][trail] += 15.0 * 12.0
    weights = np.array([im.inverse_variance_weight(v, np.ones(shape, bool)) for v in variances])
    np.testing.assert_allclose(weights, 1.0 / variances[:, 0, 0], rtol=1e-12)
    feats = im.single_epoch_features(images, variances, weights, protect_radius=10.0)
    assert len(feats) == 1
    f = feats[0]
    assert f.warp == 2
    ys, xs = f.pixels
    assert trail[ys, xs].all() and ys.size >= 0.95 * trail.sum()
    # without rejection the coadd keeps the whole single-epoch excess; with it, none
    kept = _mean_coadd(images, weights)
    clip = np.zeros(images.shape, bool)
    clip[2][trail] = True
    rejected = _mean_coadd(images, weights, exclude=clip)
    assert im.feature_residues(feats, images, weights, kept, variances)[0] == pytest.approx(1.0, abs=1e-9)
    assert im.feature_residues(feats, images, weights, rejected, variances)[0] == pytest.approx(0.0, abs=0.02)
    # half rejected (half of the trail's pixels): residue one half
    half = clip.copy()
    half[2][:, 35:] = False
    partial = im.feature_residues(
        feats, images, weights, _mean_coadd(images, weights, exclude=half), variances
    )
    assert partial[0] == pytest.approx(0.5, abs=0.05)


def test_real_star_with_seeing_differences_is_not_a_feature() -> None:
    shape = (160, 160)
    images, variances = _warps(3, shape, 8)
    images[1] += gaussian_star(shape, 80.0, 80.0, 3e5, 1.5) - gaussian_star(
        shape, 80.0, 80.0, 3e5, 2.0
    )  # sharper
    weights = 1.0 / variances[:, 0, 0]
    assert im.single_epoch_features(images, variances, weights, protect_radius=10.0) == []
    # nor is a feature found where only two warps cover the sky
    images[2, :, :40] = np.nan
    variances[2, :, :40] = np.nan
    images[0, 20:23, 10:30] += 300.0
    assert im.single_epoch_features(images, variances, weights, protect_radius=10.0) == []
    # a feature next to a pixel masked in some warp (a saturated core's edge) is not sought; elsewhere it is
    images[0, 120:123, 60:90] += 300.0
    assert len(im.single_epoch_features(images, variances, weights, protect_radius=10.0)) == 1
    protect = np.zeros(shape, bool)
    protect[127, 55:96:5] = True  # masked pixels 4-7 pixels from every pixel of the feature
    assert im.single_epoch_features(images, variances, weights, protect_radius=10.0, protect=protect) == []


def test_interpolated_pixels_included_or_not() -> None:
    shape = (60, 60)
    images, variances = _warps(3, shape, 9)
    weights = 1.0 / variances[:, 0, 0]
    pix = (np.array([10, 11, 12, 40]), np.array([20, 20, 21, 5]))
    good = _mean_coadd(images, weights)
    np.testing.assert_array_equal(im.included_in_coadd(images, variances, weights, good, 1, pix), 1.0)
    excl = np.zeros(images.shape, bool)
    excl[1][pix] = True  # the DM-9953 bug: interpolated pixels left out
    bad = _mean_coadd(images, weights, exclude=excl)
    np.testing.assert_array_equal(im.included_in_coadd(images, variances, weights, bad, 1, pix), 0.0)


# ----------------------------------------------------------------------------------- moments
def test_adaptive_moments_of_elliptical_gaussian() -> None:
    n = 41
    gy, gx = np.mgrid[0:n, 0:n].astype(float)
    cov = np.array([[6.0, 1.5], [1.5, 4.0]])
    inv = np.linalg.inv(cov)
    dx, dy = gx - 20.3, gy - 19.8
    img = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    m = im.adaptive_moments(img, sigma_guess=2.0)
    assert m is not None
    np.testing.assert_allclose(m[:3], (6.0, 4.0, 1.5), rtol=1e-3)
    np.testing.assert_allclose(m[3:], (20.3, 19.8), atol=1e-3)


def test_shape_noise_is_two_over_snr() -> None:
    """The noise of each distortion component of a noisy star is ~ 2 / (S/N) (the case removes it)."""
    rng = np.random.default_rng(11)
    shape, sigma, flux = (31, 31), 2.0, 2.0e4
    star = gaussian_star(shape, 15.0, 15.0, flux, sigma)
    snr = flux / (SKY_SIGMA * np.sqrt(4 * np.pi * sigma**2))  # optimal (PSF) S/N of a Gaussian
    e1 = []
    for _ in range(300):
        m = im.adaptive_moments(star + rng.normal(0.0, SKY_SIGMA, shape), sigma_guess=sigma)
        assert m is not None
        e1.append((m[0] - m[1]) / (m[0] + m[1]))
    assert np.std(e1) == pytest.approx(2.0 / snr, rel=0.2)
    psf = np.array([[4.0, 4.0, 0.0]])
    r = im.shape_residuals(np.array([[4.41, 4.41, 0.0], [5.0, 3.0, 0.5]]), np.repeat(psf, 2, axis=0))
    np.testing.assert_allclose(r["size"], [0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(r["e1"], [0.0, 0.25], atol=1e-12)
    np.testing.assert_allclose(r["e2"], [0.0, 0.125], atol=1e-12)


# ----------------------------------------------------------------------------------- calibration provenance
def test_provenance_and_calibration_agreement() -> None:
    md = {
        "LSST BUTLER N_INPUTS": 3,
        "LSST BUTLER INPUT 0 DATASETTYPE": "flat",
        "LSST BUTLER INPUT 0 ID": "f1",
        "LSST BUTLER INPUT 1 DATASETTYPE": "raw",
        "LSST BUTLER INPUT 1 ID": "r1",
        "LSST BUTLER INPUT 2 DATASETTYPE": "bias",
        "LSST BUTLER INPUT 2 ID": "b1",
    }
    assert provenance_inputs(md) == {"flat": ["f1"], "raw": ["r1"], "bias": ["b1"]}
    own = [("bias", {"DET-ID": 41, "FILTER01": "HSC-G"}), ("flat", {"DET-ID": 41, "FILTER01": "HSC-G"})]
    assert calibration_agreement(own, detector=41, physical_filter="HSC-G") == (True, True)
    # an r-band flat certified for g (the bias's filter does not matter), and another detector's bias
    wrong = [("bias", {"DET-ID": 49, "FILTER01": "HSC-G"}), ("flat", {"DET-ID": 41, "FILTER01": "HSC-R"})]
    assert calibration_agreement(wrong, detector=41, physical_filter="HSC-G") == (False, False)
    assert calibration_agreement([], detector=41, physical_filter="HSC-G") == (None, None)


def test_deepest_coadds_shared_between_bands() -> None:
    def ref(patch: int, band: str, visit: int | None = None) -> SimpleNamespace:
        data_id = {"tract": 0, "patch": patch, "band": band} | ({} if visit is None else {"visit": visit})
        return SimpleNamespace(dataId=data_id)

    coadds = [ref(p, b) for b in ("g", "r") for p in range(5)]
    depth = {0: 1, 1: 3, 2: 2, 3: 3, 4: 1}  # warps per patch
    warps = [ref(p, b, v) for b in ("g", "r") for p, n in depth.items() for v in range(n)]
    chosen = deepest_coadds(coadds, warps, 4)
    assert [(c.dataId["band"], c.dataId["patch"]) for c in chosen] == [("g", 1), ("g", 3), ("r", 1), ("r", 3)]
    assert len(deepest_coadds(coadds, warps, 100)) == 10
