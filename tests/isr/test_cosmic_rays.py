import numpy as np

from opendrp.isr import find_cosmic_rays
from opendrp.sfp.synthetic import render_moffat


def test_finds_cosmic_rays_not_stars():
    rng = np.random.default_rng(2)
    shape = (300, 300)
    img = np.zeros(shape)
    stars = []
    for _ in range(40):
        x, y = rng.uniform(10, 290, 2)
        fwhm = rng.uniform(2.3, 4.5)
        render_moffat(img, x, y, 10 ** rng.uniform(3.5, 6), fwhm, 0.05, -0.03)
        stars.append((x, y))
    truth = np.zeros(shape, bool)
    for _ in range(30):  # single pixels, pairs, short and long tracks
        x0, y0 = rng.integers(5, 280, 2)
        length = rng.integers(1, 15)
        angle = rng.uniform(0, np.pi)
        t = np.arange(length)
        xs = np.clip(np.rint(x0 + t * np.cos(angle)).astype(int), 0, 299)
        ys = np.clip(np.rint(y0 + t * np.sin(angle)).astype(int), 0, 299)
        img[ys, xs] += rng.uniform(500, 5000)
        truth[ys, xs] = True
    var = 100.0 + np.maximum(img, 0)
    img = img + rng.normal(size=shape) * np.sqrt(var)
    cr = find_cosmic_rays(img, var, min_fwhm=2.0, grow=0)
    strong = truth & (img > 8 * np.sqrt(var))
    assert cr[strong].mean() > 0.9
    # no star centre is flagged
    for x, y in stars:
        assert (
            not cr[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2].any()
            or truth[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2].any()
        )
    assert (cr & ~truth).sum() < 10
