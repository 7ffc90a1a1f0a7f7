"""Warping: geometry, flux, PSF, variance and masks against known truths."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.coadd import (
    CoordinateMap,
    get_kernel,
    map_pixels,
    overlap_bbox,
    pixel_jacobian,
    warp_exposure,
)
from opendrp.image.exposure import Exposure
from opendrp.image.mask import mask_bit
from opendrp.image.photo_calib import PhotoCalib

from ._synth import (
    centroid_flux_moments,
    covariance,
    make_calexp,
    source_wcs,
    star_field,
    target_wcs,
)

TARGET_SHAPE = (200, 200)
SOURCE_SHAPE = (230, 210)


@pytest.fixture(scope="module")
def geometry():
    tgt = target_wcs(TARGET_SHAPE)
    src = source_wcs(shape=SOURCE_SHAPE, rotation_deg=23.0, scale=1.04, offset_pix=(12.0, -7.0))
    return tgt, src


@pytest.fixture(scope="module")
def star_calexp(geometry):
    tgt, src = geometry
    return make_calexp(src, SOURCE_SHAPE, star_field(tgt, TARGET_SHAPE), calibration=0.5)


@pytest.mark.parametrize("spacing", [16, 32])
def test_coarse_grid_mapping_matches_exact(geometry, spacing):
    tgt, src = geometry
    bbox = overlap_bbox(src, SOURCE_SHAPE, tgt, TARGET_SHAPE)
    assert bbox is not None
    cmap = CoordinateMap(tgt, src, bbox, spacing)
    x, y, det = cmap.rows(bbox.y0, bbox.y1)
    vv, uu = np.mgrid[bbox.y0 : bbox.y1, bbox.x0 : bbox.x1]
    xe, ye = map_pixels(tgt, src, uu.ravel().astype(float), vv.ravel().astype(float))
    err = np.hypot(x - xe, y - ye)
    assert err.max() < 0.005, err.max()
    # area ratio (source pixels per target pixel) against the exact Jacobian at random pixels
    assert np.allclose(det, (1 / 1.04) ** 2, rtol=5e-3)
    rng = np.random.default_rng(1)
    for i in rng.choice(det.size, 20, replace=False):
        jac = pixel_jacobian(src, tgt, float(xe[i]), float(ye[i]))
        assert det[i] == pytest.approx(1.0 / abs(np.linalg.det(jac)), rel=1e-4)


def test_no_overlap_returns_none():
    tgt = target_wcs(TARGET_SHAPE)
    far = source_wcs(shape=SOURCE_SHAPE, rotation_deg=0.0, offset_pix=(900.0, 0.0))
    calexp = make_calexp(far, SOURCE_SHAPE, []).exposure
    assert warp_exposure(calexp, tgt, TARGET_SHAPE) is None
    opposite = source_wcs(shape=SOURCE_SHAPE, rotation_deg=0.0)
    opposite.wcs.crval = [330.0, -2.0]
    opposite.wcs.set()
    assert warp_exposure(make_calexp(opposite, SOURCE_SHAPE, []).exposure, tgt, TARGET_SHAPE) is None


@pytest.mark.parametrize(
    ("interpolation", "tol_pix", "tol_flux"),
    [("lanczos3", 0.01, 0.002), ("cubic", 0.01, 0.002), ("bilinear", 0.02, 0.005)],
)
def test_star_positions_and_fluxes(geometry, star_calexp, interpolation, tol_pix, tol_flux):
    tgt, _ = geometry
    warp = warp_exposure(star_calexp.exposure, tgt, TARGET_SHAPE, interpolation=interpolation)
    assert warp is not None
    assert warp.photo_calib == PhotoCalib(1.0)
    assert warp.image.shape == TARGET_SHAPE
    n_checked = 0
    for star in star_calexp.stars:
        u, v = tgt.all_world2pix(star.ra, star.dec, 0)
        if not star.inside or not (12 <= u <= TARGET_SHAPE[1] - 13 and 12 <= v <= TARGET_SHAPE[0] - 13):
            continue
        cx, cy, flux, _ = centroid_flux_moments(warp.image, float(u), float(v))
        assert abs(cx - u) < tol_pix and abs(cy - v) < tol_pix, (cx - u, cy - v)
        assert flux == pytest.approx(star.flux_counts * 0.5, rel=tol_flux)
        n_checked += 1
    assert n_checked >= 9


def test_warp_psf_matches_star_shapes(geometry, star_calexp):
    tgt, src = geometry
    warp = warp_exposure(star_calexp.exposure, tgt, TARGET_SHAPE)
    assert warp is not None and warp.psf is not None
    kernel = warp.psf.kernel_image(100.0, 100.0)
    half = kernel.shape[0] // 2
    _, _, _, m_psf = centroid_flux_moments(np.pad(kernel, 20), half + 20.0, half + 20.0, radius=10.0)
    # the analytic truth: C_target = J C_source J^T, J = d(target)/d(source)
    star = star_calexp.stars[len(star_calexp.stars) // 2]
    u, v = tgt.all_world2pix(star.ra, star.dec, 0)
    cx, cy, _, m_star = centroid_flux_moments(warp.image, float(u), float(v))
    for m in (m_psf, m_star):
        eig = np.linalg.eigvalsh(m)
        assert eig.max() / eig.min() > 1.3  # elongated, not washed out
    assert np.allclose(m_psf, m_star, atol=0.03 * np.trace(m_star))
    xs, ys = map_pixels(tgt, src, np.array([u]), np.array([v]))
    jac = pixel_jacobian(src, tgt, float(xs[0]), float(ys[0]))
    truth = jac @ covariance(*star_calexp.psf_shape) @ jac.T
    assert np.allclose(m_star, truth, atol=0.03 * np.trace(truth))


@pytest.mark.parametrize(
    ("interpolation", "exact"), [("lanczos3", True), ("lanczos3", False), ("cubic", True), ("bilinear", True)]
)
def test_noise_variance_is_propagated(geometry, interpolation, exact):
    tgt, src = geometry
    sigma = 10.0
    calexp = make_calexp(src, SOURCE_SHAPE, [], noise_sigma=sigma, calibration=2.0, seed=3).exposure
    warp = warp_exposure(calexp, tgt, TARGET_SHAPE, interpolation=interpolation, exact_variance=exact)
    assert warp is not None
    inner = (warp.mask & mask_bit("NO_DATA", "SENSOR_EDGE")) == 0
    assert inner.sum() > 20000
    pix_var = float(np.var(warp.image[inner]))
    prop_var = float(np.mean(warp.variance[inner]))
    assert pix_var == pytest.approx(prop_var, rel=0.05)
    # per-pixel variance is the input's (in nJy per target pixel) times the kernel's noise factor
    input_var = (sigma * 2.0 / 1.04**2) ** 2
    factor = warp.metadata["WARP_NOISE_FACTOR"]
    assert factor == pytest.approx(get_kernel(interpolation).mean_variance_factor(), abs=1e-4)
    assert prop_var / input_var == pytest.approx(factor, rel=0.05)
    # the rest is covariance: sums over 8x8 boxes carry the full input variance (correlated-noise factor)
    rows, cols = np.nonzero(inner)
    r0, r1, c0, c1 = rows.min() + 30, rows.max() - 30, cols.min() + 30, cols.max() - 30
    box = warp.image[r0:r1, c0:c1]
    nb_y, nb_x = box.shape[0] // 8, box.shape[1] // 8
    sums = box[: nb_y * 8, : nb_x * 8].reshape(nb_y, 8, nb_x, 8).sum(axis=(1, 3))
    assert np.var(sums) / (64 * input_var) == pytest.approx(1.0, rel=0.15)


def test_nodata_outside_and_masks(geometry):
    tgt, src = geometry
    calexp = make_calexp(src, SOURCE_SHAPE, [], noise_sigma=1.0).exposure
    calexp.mask[100, 100] = mask_bit("SAT")
    calexp.mask[50:52, :] |= mask_bit("BAD")
    calexp.mask[150, 150] = mask_bit("DETECTED")
    warp = warp_exposure(calexp, tgt, TARGET_SHAPE)
    assert warp is not None
    no_data = (warp.mask & mask_bit("NO_DATA")) != 0
    # target pixels whose centre maps outside the source image are NO_DATA, image 0 and variance inf
    vv, uu = np.mgrid[0 : TARGET_SHAPE[0], 0 : TARGET_SHAPE[1]]
    x, y = map_pixels(tgt, src, uu.ravel().astype(float), vv.ravel().astype(float))
    outside = ~((x >= -0.5) & (x < SOURCE_SHAPE[1] - 0.5) & (y >= -0.5) & (y < SOURCE_SHAPE[0] - 0.5))
    outside = outside.reshape(TARGET_SHAPE)
    assert outside.any() and (~outside).any()
    assert np.array_equal(no_data, outside)
    assert np.all(warp.image[no_data] == 0) and np.all(np.isinf(warp.variance[no_data]))
    assert np.all(np.isfinite(warp.variance[~no_data])) and np.all(warp.variance[~no_data] > 0)
    # the saturated pixel lands near its mapped position (2x2 OR: on ~4 target pixels)
    sat = np.argwhere((warp.mask & mask_bit("SAT")) != 0)
    u, v = map_pixels(src, tgt, np.array([100.0]), np.array([100.0]))
    assert 1 <= len(sat) <= 7
    assert np.all(np.abs(sat[:, 1] - u[0]) < 1.5) and np.all(np.abs(sat[:, 0] - v[0]) < 1.5)
    assert ((warp.mask & mask_bit("BAD")) != 0).sum() > 2 * 150
    assert not ((warp.mask & mask_bit("DETECTED")) != 0).any()
    # SENSOR_EDGE: a band along the CCD border, inside the data
    edge = (warp.mask & mask_bit("SENSOR_EDGE")) != 0
    assert edge.any() and not (edge & no_data).any()
    dist = np.minimum.reduce([x + 0.5, SOURCE_SHAPE[1] - 0.5 - x, y + 0.5, SOURCE_SHAPE[0] - 0.5 - y])
    dist = dist.reshape(TARGET_SHAPE)
    assert dist[edge].max() < 4.0 and dist[~edge & ~no_data].min() > 2.0
    assert warp.metadata["visit"] == 1 and "GAIN" not in warp.metadata
    assert warp.metadata["WARP_NGOOD"] == int((~no_data).sum())


def test_flat_field_and_input_validation(geometry):
    tgt, src = geometry
    calexp = make_calexp(src, SOURCE_SHAPE, []).exposure
    calexp.image[:] = 3.0
    warp = warp_exposure(calexp, tgt, TARGET_SHAPE, interpolation="lanczos3")
    assert warp is not None
    good = (warp.mask & mask_bit("NO_DATA")) == 0
    # a flat sky of 3 counts/px is 3 * 0.5 nJy per source pixel, i.e. 1.5 / 1.04**2 per target pixel
    assert np.allclose(warp.image[good], 1.5 / 1.04**2, rtol=2e-3)
    bare = Exposure(calexp.image, calexp.mask, calexp.variance, wcs=src)
    with pytest.raises(ValueError, match="photo_calib"):
        warp_exposure(bare, tgt, TARGET_SHAPE)
    with pytest.raises(ValueError, match="interpolation"):
        warp_exposure(calexp, tgt, TARGET_SHAPE, interpolation="sinc")


def test_psf_cells_follow_a_varying_psf(geometry):
    """With several cells, the warp PSF follows the input PSF across the CCD (here wider to the right)."""
    tgt, src = geometry
    from opendrp.psf import PixelPsf

    from ._synth import gaussian_kernel

    narrow, wide = gaussian_kernel(1.3, 1.3, 0.0), gaussian_kernel(2.2, 2.2, 0.0)
    # linear in u = 2 x / (nx - 1) - 1: narrow at the left edge, wide at the right edge
    basis = np.array([(narrow + wide) / 2, (wide - narrow) / 2, np.zeros_like(wide)])
    ny, nx = SOURCE_SHAPE
    psf = PixelPsf(basis, degree=1, x_range=(0, nx - 1), y_range=(0, ny - 1))
    calexp = make_calexp(src, SOURCE_SHAPE, []).exposure
    calexp.psf = psf
    warp = warp_exposure(calexp, tgt, TARGET_SHAPE, psf_cells=(4, 1))
    assert warp is not None and len(warp.psf.kernels) == 4
    sizes = []
    for x_src in (0.15 * nx, 0.85 * nx):
        u, v = map_pixels(src, tgt, np.array([x_src]), np.array([ny / 2.0]))
        k = warp.psf.kernel_image(float(u[0]), float(v[0]))
        half = k.shape[0] // 2
        _, _, _, m = centroid_flux_moments(np.pad(k, 20), half + 20.0, half + 20.0, radius=12.0)
        cell_centre = (np.floor(x_src / (nx / 4)) + 0.5) * nx / 4
        k_in = psf.kernel_image(cell_centre, ny / 2.0)
        _, _, _, m_in = centroid_flux_moments(np.pad(k_in, 20), half + 20.0, half + 20.0, radius=12.0)
        # target pixels are 1.04 x smaller than source pixels: moments scale by 1.04**2 (PSF rotated 23 deg)
        assert np.trace(m) == pytest.approx(np.trace(m_in) * 1.04**2, rel=0.03)
        sizes.append(np.trace(m))
    assert sizes[1] > 1.5 * sizes[0]
