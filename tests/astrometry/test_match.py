import numpy as np
import pytest

from opendrp.astrometry import wcs_residuals_mas
from opendrp.astrometry.match import fit_wcs_to_refcat, nearest_unique_match
from opendrp.errors import AlgorithmError
from opendrp.sfp.synthetic import make_wcs

SHAPE = (2000, 1000)


def _perturbed(wcs, d_east_arcsec, d_north_arcsec, rot_deg):
    w = wcs.deepcopy()
    dec = w.wcs.crval[1]
    w.wcs.crval = [
        w.wcs.crval[0] + d_east_arcsec / 3600 / np.cos(np.radians(dec)),
        dec + d_north_arcsec / 3600,
    ]
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    w.wcs.cd = np.array([[c, -s], [s, c]]) @ w.wcs.cd
    w.wcs.set()
    return w


@pytest.fixture(scope="module")
def catalogs():
    rng = np.random.default_rng(7)
    true = make_wcs(SHAPE, sip_strength=3e-6)
    n = 400
    x = rng.uniform(0, SHAPE[1] - 1, n)
    y = rng.uniform(0, SHAPE[0] - 1, n)
    ra, dec = true.all_pix2world(x, y, 0)
    flux = np.exp(rng.uniform(0, 5, n))
    return true, x, y, ra, dec, flux, rng


@pytest.mark.parametrize("offset,rot", [((10.0, 0.0), 0.1), ((-7.0, 7.0), -0.1), ((0.0, 0.0), 0.0)])
def test_recovers_wcs_after_pointing_error(catalogs, offset, rot):
    true, x, y, ra, dec, flux, rng = catalogs
    init = _perturbed(true, offset[0], offset[1], rot)
    # detections: 70% of the references plus 60 spurious sources; centroids with 0.005 px noise
    det = rng.permutation(len(x))[:280]
    xs = np.concatenate([x[det] + rng.normal(0, 0.005, det.size), rng.uniform(0, SHAPE[1], 60)])
    ys = np.concatenate([y[det] + rng.normal(0, 0.005, det.size), rng.uniform(0, SHAPE[0], 60)])
    fs = np.concatenate([flux[det], rng.uniform(1, 100, 60)])
    res = fit_wcs_to_refcat(xs, ys, ra, dec, init, shape=SHAPE, src_flux=fs, ref_flux=flux, order=3)
    assert res.n_matches >= 270
    assert np.all(res.src_index[res.src_index < 280] == res.src_index[res.src_index < 280])
    assert np.all(det[res.src_index] == res.ref_index)  # every match is right (no spurious ones)
    assert res.rms_mas < 5.0
    # the fitted WCS agrees with the truth everywhere on the CCD
    gx, gy = np.meshgrid(np.linspace(0, SHAPE[1] - 1, 9), np.linspace(0, SHAPE[0] - 1, 9))
    tr, td = true.all_pix2world(gx.ravel(), gy.ravel(), 0)
    assert np.max(wcs_residuals_mas(res.wcs, gx.ravel(), gy.ravel(), tr, td)) < 5.0


def test_unrelated_catalog_raises(catalogs):
    true, x, y, ra, dec, flux, rng = catalogs
    xs, ys = rng.uniform(0, SHAPE[1], 300), rng.uniform(0, SHAPE[0], 300)
    with pytest.raises(AlgorithmError, match="no significant match|astrometric matches"):
        fit_wcs_to_refcat(xs, ys, ra, dec, true, shape=SHAPE, order=3)


def test_nearest_unique_match():
    s_i, r_j, d = nearest_unique_match(
        np.array([0.0, 0.1, 5.0]), np.zeros(3), np.array([0.05, 10.0]), np.zeros(2), radius=1.0
    )
    assert list(s_i) == [0] and list(r_j) == [0]
