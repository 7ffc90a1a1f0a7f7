"""Seeing-aware artifact rejection: star cores survive under very different seeing, artifacts do not."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.coadd import assemble_coadd, warp_exposure
from opendrp.coadd.clipping import psf_deviation_fractions, trimmed_kernel
from opendrp.image.mask import mask_bit
from opendrp.measurement import measure_sources
from opendrp.psf import CoaddPsf

from ._synth import gaussian_kernel, make_calexp, source_wcs, star_field, target_wcs

TARGET_SHAPE = (160, 160)
SOURCE_SHAPE = (170, 170)
FLUX = 2.0e5  # counts: S/N ~ 1000 per visit
NOISE = 3.0
CALIB = 0.5
CR = (58, 102)  # source pixel (x, y) of a cosmic ray in visit 1, on empty sky (> 20 px from stars)
SEEING = (1.2, 1.8, 2.6)  # Gaussian sigma (pixels): 0.47", 0.71", 1.03" FWHM at 0.168"/px


@pytest.fixture(scope="module")
def survey():
    tgt = target_wcs(TARGET_SHAPE)
    positions = star_field(tgt, TARGET_SHAPE, n_side=3, margin=35)
    warps = []
    for visit, sigma in enumerate(SEEING):
        src = source_wcs(
            shape=SOURCE_SHAPE, rotation_deg=7.0 * visit, scale=1.0, offset_pix=(1.3 * visit, 0.0)
        )
        synth = make_calexp(
            src,
            SOURCE_SHAPE,
            positions,
            flux_counts=FLUX,
            psf_shape=(sigma, sigma, 0.0),
            noise_sigma=NOISE,
            calibration=CALIB,
            seed=7 + visit,
            visit=visit,
        )
        if visit == 1:
            x, y = CR
            synth.exposure.image[y - 1 : y + 2, x - 1 : x + 2] += 300.0  # ~100 sigma
        warp = warp_exposure(synth.exposure, tgt, TARGET_SHAPE)
        assert warp is not None
        warps.append(warp)
    return tgt, positions, warps


def test_trimmed_kernel_is_the_median_of_three():
    k = np.stack([gaussian_kernel(s, s, 0.0, size=15) for s in SEEING])
    assert np.allclose(trimmed_kernel(k, np.array([1.0, 5.0, 2.0])), np.median(k, axis=0))


def test_deviation_fractions_of_gaussians():
    """f_i = max |K_i - K_ref| / local max(K_ref), K_ref the pixel-wise median of the three kernels."""
    size = 31
    polygon = np.array([[-10.0, -10.0], [110.0, -10.0], [110.0, 110.0], [-10.0, 110.0]])
    psfs = [CoaddPsf(gaussian_kernel(s, s, 0.0, size=size)[None], np.ones(1), [polygon]) for s in SEEING]
    f = psf_deviation_fractions(psfs, [1.0, 1.0, 1.0], (100, 100), footprint=1, floor=1e-3)
    ref = np.median([gaussian_kernel(s, s, 0.0, size=size) for s in SEEING], axis=0)
    for i, s in enumerate(SEEING):
        k = gaussian_kernel(s, s, 0.0, size=size)
        use = ref >= 1e-3 * ref.max()
        assert f[i] == pytest.approx(np.max(np.abs(k - ref)[use] / ref[use]), rel=1e-6)
    # the sharpest visit's peak is (1.8 / 1.2)**2 = 2.25 times the reference's (pixel sampling aside)
    assert f[0] == pytest.approx(1.25, abs=0.1)
    assert f[1] < 0.3 < f[0] and f[2] > 0.3
    # a Gaussian's wings fall so fast that the broad visit's exceed the reference's many times over at the
    # floor; the local maximum over 5 x 5 pixels (the default footprint) keeps the fractions moderate
    f5 = psf_deviation_fractions(psfs, [1.0, 1.0, 1.0], (100, 100), footprint=5)
    assert np.all(f5 <= f) and f5[0] < 1.3 and f5[2] < 2.0
    # fewer than 3 inputs: no rejection, no tolerance
    assert np.all(psf_deviation_fractions(psfs[:2], [1.0, 1.0], (100, 100)) == 0)


@pytest.mark.parametrize("psf_tolerance", [False, True])
def test_star_cores_under_different_seeing(survey, psf_tolerance):
    tgt, positions, warps = survey
    coadd = assemble_coadd(warps, psf_clip_tolerance=psf_tolerance)
    clipped = (coadd.mask & mask_bit("CLIPPED")) != 0
    u, v = tgt.all_world2pix(np.array([p[0] for p in positions]), np.array([p[1] for p in positions]), 0)
    vv, uu = np.mgrid[0 : TARGET_SHAPE[0], 0 : TARGET_SHAPE[1]]
    near = np.zeros(TARGET_SHAPE, bool)
    for x, y in zip(u, v):
        near |= (uu - x) ** 2 + (vv - y) ** 2 <= 6.0**2
    m = measure_sources(coadd.image, coadd.variance, coadd.mask, coadd.psf, u, v, centroid=False)
    frac = np.asarray(m["psfFlux"]) / (FLUX * CALIB) - 1
    if psf_tolerance:
        assert not (clipped & near).any()
        assert np.abs(frac).max() < 0.003
    else:  # the fixed tolerance (0.3 M) clips the sharp and broad visits' cores: PSF fluxes are off
        assert (clipped & near).sum() >= 5 * len(u)
        assert np.abs(np.median(frac)) > 0.01
    # the cosmic ray is rejected either way
    src = source_wcs(shape=SOURCE_SHAPE, rotation_deg=7.0, scale=1.0, offset_pix=(1.3, 0.0))
    cu, cv = (float(c[0]) for c in tgt.all_world2pix(*src.all_pix2world([CR[0]], [CR[1]], 0), 0))
    box = (slice(int(round(cv)) - 1, int(round(cv)) + 2), slice(int(round(cu)) - 1, int(round(cu)) + 2))
    assert clipped[box].all()
    assert np.all(np.abs(coadd.image[box]) < 5 * np.sqrt(coadd.variance[box]))


def test_noise_factor_makes_psf_flux_errors_right(survey):
    """Resampling correlates the noise: PSF fluxes on blank sky scatter by sqrt(1 / COADD_NOISE_FACTOR) more
    than the per-pixel variance says; dividing the variance by the factor makes the errors right."""
    tgt, positions, warps = survey
    coadd = assemble_coadd(warps)
    factor = coadd.metadata["COADD_NOISE_FACTOR"]
    assert factor == pytest.approx(warps[0].metadata["WARP_NOISE_FACTOR"], rel=1e-3)
    assert 0.75 < factor < 0.85  # lanczos3
    rng = np.random.default_rng(11)
    u, v = tgt.all_world2pix(np.array([p[0] for p in positions]), np.array([p[1] for p in positions]), 0)
    xs, ys = rng.uniform(15, 145, 4000), rng.uniform(15, 145, 4000)
    far = np.min(np.hypot(xs[:, None] - u[None], ys[:, None] - v[None]), axis=1) > 20
    xs, ys = xs[far][:400], ys[far][:400]
    plain = measure_sources(coadd.image, coadd.variance, coadd.mask, coadd.psf, xs, ys, centroid=False)
    scaled = measure_sources(
        coadd.image, coadd.variance / factor, coadd.mask, coadd.psf, xs, ys, centroid=False
    )
    scatter = np.std(np.asarray(plain["psfFlux"]))
    assert scatter / np.median(np.asarray(plain["psfFluxErr"])) == pytest.approx(1 / np.sqrt(factor), rel=0.1)
    assert scatter / np.median(np.asarray(scaled["psfFluxErr"])) == pytest.approx(1.0, rel=0.1)
