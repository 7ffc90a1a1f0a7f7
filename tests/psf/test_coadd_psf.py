"""CoaddPsf: the per-pixel mixture where inputs start and stop inside a star's stamp."""

from __future__ import annotations

import numpy as np
import pytest

from opendrp.measurement import psf_flux
from opendrp.psf import CoaddPsf
from opendrp.psf.model import shift_image

SIZE = 25
FLUX = 1.0e5


def _gaussian(sigma: float, dx: float = 0.0, dy: float = 0.0, size: int = SIZE) -> np.ndarray:
    """A unit-sum circular Gaussian sampled at pixel centres, centred (dx, dy) from the central pixel."""
    half = size // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    k = np.exp(-0.5 * ((xx - dx) ** 2 + (yy - dy) ** 2) / sigma**2)
    return k / (2 * np.pi * sigma**2)


def _box(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


SIGMAS = (1.5, 2.5, 1.9)
WEIGHTS = (1.0, 2.0, 1.5)
# input 0 covers everything, input 1 stops at x = 50 (a CCD edge), input 2 starts at y = 47
POLYGONS = (_box(-20, 120, -20, 120), _box(-20, 50.0, -20, 120), _box(-20, 120, 47.0, 120))


@pytest.fixture(scope="module")
def coadd_psf() -> CoaddPsf:
    kernels = np.array([_gaussian(s) for s in SIGMAS])
    return CoaddPsf(kernels, np.array(WEIGHTS), [p.copy() for p in POLYGONS])


def _coadd_star(x: float, y: float, shape=(100, 100)) -> np.ndarray:
    """The weighted-mean coadd of one star of flux FLUX: each pixel averages the inputs covering it."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    num = np.zeros(shape)
    den = np.zeros(shape)
    for sigma, w, poly in zip(SIGMAS, WEIGHTS, POLYGONS):
        inside = (xx >= poly[:, 0].min()) & (xx <= poly[:, 0].max())
        inside &= (yy >= poly[:, 1].min()) & (yy <= poly[:, 1].max())
        img = FLUX * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
        num += w * inside * img
        den += w * inside
    return num / den


def _fit(image: np.ndarray, stamp: np.ndarray, x0: int, y0: int) -> float:
    half = SIZE // 2
    res = psf_flux(
        image,
        np.ones_like(image),
        np.zeros(image.shape, bool),
        stamp[None],
        np.array([x0 + half]),
        np.array([y0 + half]),
    )
    return float(res.flux[0])


@pytest.mark.parametrize("x, y, central_bias", [(48.3, 50.6, 0.004), (52.4, 45.2, 0.0), (47.8, 47.9, 0.01)])
def test_psf_flux_where_inputs_start_and_stop(coadd_psf, x, y, central_bias):
    image = _coadd_star(x, y)
    stamp, x0, y0 = coadd_psf.image_at(x, y)
    # the per-pixel mixture is the coadd's image of a unit point source
    assert np.abs(stamp * FLUX - image[y0 : y0 + SIZE, x0 : x0 + SIZE]).max() < 5e-3 * image.max()
    assert _fit(image, stamp, x0, y0) == pytest.approx(FLUX, rel=2e-3)
    # the mixture at the centre alone (the PSF of the inputs covering the star's centre) is biased here
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    central = shift_image(coadd_psf.kernel_image(x, y), x - ix, y - iy)
    assert abs(_fit(image, central, x0, y0) / FLUX - 1) >= central_bias


def test_stamps_inside_every_footprint_take_the_fast_path(coadd_psf):
    x, y = 30.2, 75.7  # inside all three inputs, more than 12 pixels (the stamp's half-size) from any edge
    stamp, x0, y0 = coadd_psf.image_at(x, y)
    w = np.array(WEIGHTS)
    expected = sum(wi * _gaussian(s, x - 30, y - 76) for wi, s in zip(w, SIGMAS)) / w.sum()
    assert (x0, y0) == (30 - SIZE // 2, 76 - SIZE // 2)
    assert np.abs(stamp - expected).max() < 3e-3 * expected.max()
    assert stamp.sum() == pytest.approx(1.0, abs=1e-3)
