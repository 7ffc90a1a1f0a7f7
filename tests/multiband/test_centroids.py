"""Coadd centroids: detections re-centred on the PSF, so that forced photometry is made at the right place."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.measurement import measure_sources
from opendrp.multiband import coadd_apcorr_stars, coadd_centroids
from opendrp.psf import CoaddPsf

SHAPE = (160, 160)
SIGMA = 1.8  # pixels
NOISE = 1.0
FLUX = 2.0e4  # S/N ~ 1600


def _gaussian_stamp(size: int = 25) -> np.ndarray:
    half = size // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    k = np.exp(-0.5 * (xx**2 + yy**2) / SIGMA**2)
    return k / k.sum()


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(3)
    xs = np.array([30.3, 80.71, 120.45, 45.9, 100.2, 130.6])
    ys = np.array([40.62, 35.1, 60.37, 110.8, 120.33, 125.9])
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(float)
    image = np.zeros(SHAPE)
    for x, y in zip(xs, ys):
        image += FLUX * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / SIGMA**2) / (2 * np.pi * SIGMA**2)
    image += rng.normal(0.0, NOISE, SHAPE)
    polygon = np.array([[-0.5, -0.5], [159.5, -0.5], [159.5, 159.5], [-0.5, 159.5]])
    psf = CoaddPsf(_gaussian_stamp()[None], np.ones(1), [polygon])
    return (
        image.astype(np.float32),
        np.full(SHAPE, NOISE**2, np.float32),
        np.zeros(SHAPE, np.int32),
        psf,
        xs,
        ys,
    )


@pytest.mark.parametrize("method, tol", [("windowed", 0.01), ("psf", 0.01)])
def test_centroids_recover_true_positions(field, method, tol):
    image, var, mask, psf, xs, ys = field
    rng = np.random.default_rng(5)
    x0, y0 = xs + rng.uniform(-0.4, 0.4, xs.size), ys + rng.uniform(-0.4, 0.4, ys.size)  # barycentre errors
    x, y, x_err, y_err, flag = coadd_centroids(image, var, mask, psf, x0, y0, method=method)
    assert not flag.any()
    assert np.abs(x - xs).max() < tol and np.abs(y - ys).max() < tol
    # errors: at least the sky-noise limit of a PSF fit, sqrt(8 pi) sigma**2 noise / flux (the fits add a 1 %
    # model error to bright cores), and they cover the offsets from the truth
    limit = np.sqrt(8 * np.pi) * SIGMA**2 * NOISE / FLUX
    assert np.all((x_err > 0.9 * limit) & (x_err < 5 * limit) & (y_err > 0.9 * limit) & (y_err < 5 * limit))
    assert np.sqrt(np.mean(((x - xs) / x_err) ** 2)) < 3.0
    # PSF photometry at the re-centred positions recovers the flux; at the detections' it loses some
    at_fit = measure_sources(image, var, mask, psf, x, y, centroid=False, petrosian=False)
    at_det = measure_sources(image, var, mask, psf, x0, y0, centroid=False, petrosian=False)
    assert np.abs(np.asarray(at_fit["psfFlux"]) / FLUX - 1).max() < 0.003
    assert np.abs(np.asarray(at_det["psfFlux"]) / FLUX - 1).max() > 0.005


def test_none_keeps_positions_and_bad_method(field):
    image, var, mask, psf, xs, ys = field
    x, y, _, _, flag = coadd_centroids(image, var, mask, psf, xs + 0.3, ys, method="none")
    assert np.array_equal(x, xs + 0.3) and np.array_equal(y, ys) and not flag.any()
    with pytest.raises(ValueError, match="centroid method"):
        coadd_centroids(image, var, mask, psf, xs, ys, method="barycentre")


def test_apcorr_stars_are_isolated_bright_point_sources(field):
    image, var, mask, psf, xs, ys = field
    m = measure_sources(image, var, mask, psf, xs, ys, centroid=False, petrosian=False)
    assert coadd_apcorr_stars(m, min_sn=50).all()
    assert not coadd_apcorr_stars(m, min_sn=1e5).any()
    # a neighbour within 24 pixels holding more than 1 % of the flux disqualifies both
    close = measure_sources(image, var, mask, psf, np.r_[xs, xs[0] + 10], np.r_[ys, ys[0]], centroid=False)
    stars = coadd_apcorr_stars(close, min_sn=50)
    assert not stars[0] and stars[1:-1].all()


def test_star_cut_by_the_coverage_edge(field):
    """A star whose centre lies in NO_DATA: its barycentre is ~3 pixels inside the data, the PSF fit to the
    half that is there finds the centre."""
    image, var, mask, psf, xs, ys = field
    image, mask = image.copy(), mask.copy()
    from opendrp.image import mask_bit

    cut = int(np.floor(ys[2])) + 1  # rows up to just above the star's centre carry no data
    image[:cut] = 0.0
    mask[:cut] |= mask_bit("NO_DATA")
    x_bary, y_bary = np.array([xs[2]]), np.array([ys[2] + 2.5])
    x, y, _, _, flag = coadd_centroids(image, var, mask, psf, x_bary, y_bary, method="psf")
    assert not flag[0]
    assert abs(x[0] - xs[2]) < 0.05 and abs(y[0] - ys[2]) < 0.05
    _, y_small, _, _, _ = coadd_centroids(image, var, mask, psf, x_bary, y_bary, method="psf", max_shift=1.0)
    assert (
        abs(y_small[0] - ys[2]) > 0.3
    )  # a fit held within 1 pixel of the windowed centroid cannot get there
