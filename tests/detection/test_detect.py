import numpy as np

from opendrp.detection import detect_sources
from opendrp.image import mask_bit


def _field(rng, n=40, shape=(256, 256), sigma=1.5, noise=10.0, flux=(3e3, 3e4)):
    ny, nx = shape
    xs = rng.uniform(10, nx - 10, n)
    ys = rng.uniform(10, ny - 10, n)
    fl = rng.uniform(*flux, n)
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = np.zeros(shape)
    for x, y, f in zip(xs, ys, fl):
        img += f * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * np.pi * sigma**2)
    img += rng.normal(0, noise, shape)
    return img.astype(np.float32), np.full(shape, noise**2, np.float32), xs, ys


def test_detects_injected_stars():
    rng = np.random.default_rng(1)
    img, var, xs, ys = _field(rng)
    det = detect_sources(img, var, threshold=5.0, kernel_fwhm=3.5)
    d = np.hypot(det["x"][None, :] - xs[:, None], det["y"][None, :] - ys[:, None])
    nearest = d.min(axis=1)
    # every star (peak S/N > 20) is found, within 0.3 pixel; no more than a couple of spurious detections
    close_pairs = (np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :]) < 6).sum() - len(xs)
    assert np.sum(nearest < 0.3) >= len(xs) - close_pairs
    assert len(det) <= len(xs) + 2
    for col in ("x", "y", "peak", "footprint_area", "iso_flux", "a", "b", "theta", "deblended"):
        assert col in det.colnames


def test_noise_only_gives_few_detections():
    rng = np.random.default_rng(2)
    img = rng.normal(0, 1, (512, 512)).astype(np.float32)
    det = detect_sources(img, np.ones_like(img), threshold=5.0, kernel_fwhm=3.0)
    assert len(det) <= 2
    det3 = detect_sources(img, np.ones_like(img), threshold=3.0, kernel_fwhm=3.0, min_area=1)
    assert len(det3) > 10  # the threshold really is in sigma of the filtered image


def test_masked_bad_column_not_detected_and_segmentation():
    rng = np.random.default_rng(3)
    img, var, xs, ys = _field(rng, n=5)
    mask = np.zeros(img.shape, np.int32)
    img[:, 100] = 1e5
    mask[:, 100] = mask_bit("BAD")
    det, seg = detect_sources(img, var, mask, threshold=5.0, return_segmentation=True)
    assert seg.shape == img.shape and seg.max() == len(det)
    assert not np.any(np.abs(det["x"] - 100) < 0.5) or len(det) <= 6
    assert len(det) <= 6
