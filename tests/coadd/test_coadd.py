"""Coadd assembly: fluxes, noise, artifact rejection, masks, PSF and streaming."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.coadd import BBox, CoaddAccumulator, LazyWarps, assemble_coadd, warp_exposure, warp_weight
from opendrp.image.mask import mask_bit
from opendrp.image.photo_calib import PhotoCalib
from opendrp.psf import CoaddPsf, pad_kernel

from ._synth import centroid_flux_moments, make_calexp, source_wcs, star_field, target_wcs

TARGET_SHAPE = (200, 200)
SOURCE_SHAPE = (190, 190)
NOISE = 5.0  # counts
CALIB = 0.5  # nJy per count
FLUX = 80000.0  # counts
CR_PIXEL = (58, 120)  # (x, y) in the source frame of visit 2; empty sky
DITHERS = [(0.0, -8.0, -8.0, 1.6), (8.0, -6.0, -10.0, 1.8), (-12.0, -9.0, -5.0, 1.7), (25.0, -7.0, -7.0, 2.0)]
DITHERS.append((4.0, -10.0, -9.0, 1.9))


@pytest.fixture(scope="module")
def survey():
    tgt = target_wcs(TARGET_SHAPE)
    positions = star_field(tgt, TARGET_SHAPE, n_side=4, margin=30)
    calexps, warps = [], []
    for visit, (rot, du, dv, seeing) in enumerate(DITHERS):
        src = source_wcs(shape=SOURCE_SHAPE, rotation_deg=rot, scale=1.02, offset_pix=(du, dv))
        synth = make_calexp(
            src,
            SOURCE_SHAPE,
            positions,
            flux_counts=FLUX,
            psf_shape=(seeing, 0.9 * seeing, 20.0 * visit),
            noise_sigma=NOISE,
            calibration=CALIB,
            seed=100 + visit,
            visit=visit,
        )
        if visit == 2:  # a cosmic ray: 3 x 3 pixels of 400 counts (~80 sigma)
            x, y = CR_PIXEL
            synth.exposure.image[y - 1 : y + 2, x - 1 : x + 2] += 400.0
        calexps.append(synth)
        warp = warp_exposure(synth.exposure, tgt, TARGET_SHAPE)
        assert warp is not None
        warps.append(warp)
    return tgt, positions, calexps, warps


@pytest.fixture(scope="module")
def coadd(survey):
    return assemble_coadd(survey[3])


def _star_free(tgt, positions, radius=14.0):
    vv, uu = np.mgrid[0 : TARGET_SHAPE[0], 0 : TARGET_SHAPE[1]]
    free = np.ones(TARGET_SHAPE, bool)
    for ra, dec in positions:
        u, v = tgt.all_world2pix(ra, dec, 0)
        free &= (uu - u) ** 2 + (vv - v) ** 2 > radius**2
    return free


def _fully_covered(warps, u, v, radius=13):
    iu, iv = int(round(u)), int(round(v))
    box = (slice(iv - radius, iv + radius + 1), slice(iu - radius, iu + radius + 1))
    return all(not (w.mask[box] & mask_bit("NO_DATA", "SENSOR_EDGE")).any() for w in warps)


def test_star_fluxes_and_positions(survey, coadd):
    tgt, positions, _, warps = survey
    assert coadd.photo_calib == PhotoCalib(1.0)
    assert coadd.metadata["NINPUTS"] == len(DITHERS) and coadd.metadata["visits"] == list(range(len(DITHERS)))
    n = 0
    for ra, dec in positions:
        u, v = tgt.all_world2pix(ra, dec, 0)
        cx, cy, flux, _ = centroid_flux_moments(coadd.image, float(u), float(v))
        # every star, even where the inputs change across it, keeps its flux
        assert flux == pytest.approx(FLUX * CALIB, rel=0.01)
        if _fully_covered(warps, float(u), float(v)):
            assert abs(cx - u) < 0.02 and abs(cy - v) < 0.02
            n += 1
    assert n >= 8


def test_noise_goes_down_as_sqrt_n(survey, coadd):
    tgt, positions, _, warps = survey
    full = np.ones(TARGET_SHAPE, bool)
    for w in warps:
        full &= (w.mask & mask_bit("NO_DATA", "SENSOR_EDGE")) == 0
    region = full & _star_free(tgt, positions) & ((coadd.mask & mask_bit("CLIPPED")) == 0)
    assert region.sum() > 10000
    single = np.mean([np.std(w.image[region]) for w in warps])
    ratio = np.std(coadd.image[region]) * np.sqrt(len(warps)) / single
    assert ratio == pytest.approx(1.0, abs=0.1)
    # the variance plane describes the per-pixel noise of the coadd
    assert np.var(coadd.image[region]) == pytest.approx(np.mean(coadd.variance[region]), rel=0.1)


def test_cosmic_ray_is_clipped(survey, coadd):
    tgt, _, calexps, warps = survey
    src = calexps[2].exposure.wcs
    u, v = (float(c[0]) for c in tgt.all_world2pix(*src.all_pix2world([CR_PIXEL[0]], [CR_PIXEL[1]], 0), 0))
    iu, iv = int(round(u)), int(round(v))
    box = (slice(iv - 1, iv + 2), slice(iu - 1, iu + 2))
    sigma = np.sqrt(coadd.variance[box])
    # the warp of visit 2 carries the cosmic ray; the coadd does not, and says so
    assert warps[2].image[box].max() > 50 * np.sqrt(warps[2].variance[box].max())
    assert np.all(np.abs(coadd.image[box]) < 4 * sigma)
    assert np.all(coadd.mask[box] & mask_bit("CLIPPED"))
    plain = assemble_coadd(warps, clip_sigma=None)
    assert plain.image[iv, iu] > 20 * sigma[1, 1]
    assert not (plain.mask & mask_bit("CLIPPED")).any()


def test_star_cores_are_not_clipped(survey, coadd):
    tgt, positions, _, _ = survey
    clipped = (coadd.mask & mask_bit("CLIPPED")) != 0
    near_stars = ~_star_free(tgt, positions, radius=5.0)
    assert not (clipped & near_stars).any()
    # 3-sigma rejection of pure noise costs a few per mille of the input pixels, no more
    assert coadd.metadata["NCLIPPED"] < 0.01 * len(DITHERS) * np.prod(TARGET_SHAPE)


def test_no_data_where_no_input(survey, coadd):
    _, _, _, warps = survey
    covered = np.zeros(TARGET_SHAPE, bool)
    for w in warps:
        covered |= (w.mask & mask_bit("NO_DATA")) == 0
    assert (~covered).sum() > 100  # the fixture leaves a corner of the patch uncovered
    no_data = (coadd.mask & mask_bit("NO_DATA")) != 0
    assert np.array_equal(no_data, ~covered)
    assert np.all(coadd.image[no_data] == 0) and np.all(np.isinf(coadd.variance[no_data]))
    assert np.all(np.isfinite(coadd.variance[~no_data]))
    # SENSOR_EDGE marks the input CCD borders inside the coadd
    assert (coadd.mask & mask_bit("SENSOR_EDGE")).any()


def test_coadd_psf_is_the_weighted_mean(survey, coadd):
    _, _, _, warps = survey
    assert isinstance(coadd.psf, CoaddPsf)
    weights = np.array([i["weight"] for i in coadd.metadata["inputs"]])
    assert weights == pytest.approx([warp_weight(w) for w in warps])
    u, v = 100.0, 100.0  # covered by every warp
    kernels = [w.psf.kernel_image(u, v) for w in warps]
    size = max(k.shape[0] for k in kernels)
    expected = np.tensordot(weights, [pad_kernel(k, size) for k in kernels], axes=1) / weights.sum()
    got = coadd.psf.kernel_image(u, v)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, atol=1e-10)
    # and the stars of the coadd have the coadd PSF's size (second moments within a few per cent)
    _, positions_, _, _ = survey
    tgt = survey[0]
    ra, dec = positions_[5]
    su, sv = tgt.all_world2pix(ra, dec, 0)
    _, _, _, m_star = centroid_flux_moments(coadd.image, float(su), float(sv))
    half = got.shape[0] // 2
    _, _, _, m_psf = centroid_flux_moments(np.pad(got, 20), half + 20.0, half + 20.0)
    assert np.trace(m_psf) == pytest.approx(np.trace(m_star), rel=0.05)


def test_weights_and_streaming_accumulator(survey):
    tgt, _, _, warps = survey
    noisy = warps[0].copy()
    noisy.variance *= 4.0
    assert warp_weight(noisy) == pytest.approx(warp_weight(warps[0]) / 4.0, rel=1e-5)
    acc = CoaddAccumulator(TARGET_SHAPE, tgt)
    for w in warps:
        acc.add(w)
    streamed = acc.finish()
    batch = assemble_coadd(warps, clip_sigma=None)
    assert np.array_equal(streamed.image, batch.image)
    assert np.array_equal(streamed.variance, batch.variance)
    assert np.array_equal(streamed.mask, batch.mask)
    # visits are found whatever the case of the metadata key (FITS headers are upper case)
    upper = [w.copy() for w in warps]
    for k, w in enumerate(upper):
        w.metadata = {"VISIT": 100 + k}
    assert assemble_coadd(upper, clip_sigma=None).metadata["visits"] == [100 + k for k in range(len(upper))]


def test_mask_rules(survey):
    _, _, _, warps = survey
    warps = [w.copy() for w in warps]
    sat, bad, one_sat = (100, 60), (60, 100), (140, 140)
    for w in warps:
        w.mask[sat[1], sat[0]] |= mask_bit("SAT")
        w.image[sat[1], sat[0]] = 5000.0
    warps[0].mask[one_sat[1], one_sat[0]] |= mask_bit("SAT")
    warps[0].image[one_sat[1], one_sat[0]] = 5000.0
    warps[1].mask[bad[1], bad[0]] |= mask_bit("BAD")
    warps[1].mask[bad[1], bad[0] + 1] |= mask_bit("INTRP")
    coadd = assemble_coadd(warps, clip_sigma=None)
    # saturated everywhere: flagged, value from the saturated inputs (not NO_DATA)
    assert coadd.mask[sat[1], sat[0]] & mask_bit("SAT")
    assert not coadd.mask[sat[1], sat[0]] & mask_bit("NO_DATA")
    assert coadd.image[sat[1], sat[0]] == pytest.approx(5000.0, rel=1e-5)
    # saturated in 1 of 5 (weight fraction ~0.2 > 0.1): SAT and INEXACT_PSF, value from the others
    m = coadd.mask[one_sat[1], one_sat[0]]
    assert m & mask_bit("SAT") and m & mask_bit("INEXACT_PSF")
    assert abs(coadd.image[one_sat[1], one_sat[0]]) < 5 * np.sqrt(coadd.variance[one_sat[1], one_sat[0]])
    # BAD in 1 of 5: excluded (INEXACT_PSF), not propagated; INTRP is OR-ed
    m = coadd.mask[bad[1], bad[0]]
    assert not m & mask_bit("BAD") and m & mask_bit("INEXACT_PSF")
    assert coadd.mask[bad[1], bad[0] + 1] & mask_bit("INTRP")


def test_compact_warps_give_the_same_coadd(survey, coadd):
    tgt, _, calexps, warps = survey
    compact = [warp_exposure(c.exposure, tgt, TARGET_SHAPE, full_size=False) for c in calexps]
    order = sorted(range(len(compact)), key=lambda k: compact[k].shape == TARGET_SHAPE)
    compact, warps = [compact[k] for k in order], [warps[k] for k in order]
    assert compact[0].shape != TARGET_SHAPE
    for full, small in zip(warps, compact):
        bbox = BBox.from_metadata(small.metadata, "WARP")
        assert small.shape == (bbox.height, bbox.width)
        assert np.array_equal(full.image[bbox.slices], small.image)
        # the compact warp's WCS is the patch WCS shifted to the box origin
        ra, dec = tgt.all_pix2world([bbox.x0 + 10.0], [bbox.y0 + 20.0], 0)
        x, y = small.wcs.all_world2pix(ra, dec, 0)
        assert abs(x[0] - 10.0) < 1e-6 and abs(y[0] - 20.0) < 1e-6
        assert np.allclose(
            small.psf.kernel_image(50.0 - bbox.x0, 60.0 - bbox.y0), full.psf.kernel_image(50.0, 60.0)
        )
    with pytest.raises(ValueError):
        assemble_coadd(compact)  # the coadd shape is needed when the first warp is compact
    again = assemble_coadd(compact, shape=TARGET_SHAPE, wcs=tgt)
    coadd = assemble_coadd(warps)  # same order of summation
    assert np.array_equal(again.image, coadd.image)
    assert np.array_equal(again.variance, coadd.variance)
    assert np.array_equal(again.mask, coadd.mask)
    assert np.allclose(again.psf.kernel_image(100.0, 100.0), coadd.psf.kernel_image(100.0, 100.0))


def test_lazy_warps_are_read_once_per_pass(survey, coadd):
    _, _, _, warps = survey
    reads = []

    def loader(k):
        def load():
            reads.append(k)
            return warps[k]

        return load

    lazy = LazyWarps([loader(k) for k in range(len(warps))])
    again = assemble_coadd(lazy)
    assert sorted(reads) == sorted(2 * list(range(len(warps))))  # reference pass + clipped pass
    assert np.array_equal(again.image, coadd.image)
