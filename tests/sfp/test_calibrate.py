import numpy as np
import pytest
from scipy.spatial import cKDTree

from opendrp.astrometry import wcs_residuals_mas
from opendrp.errors import AlgorithmError, ConfigurationError
from opendrp.image import Exposure, mask_bit
from opendrp.measurement import adaptive_moments
from opendrp.sfp import CalibrateConfig, calibrate_exposure
from opendrp.sfp.synthetic import make_synthetic_field, moffat_psf_params, render_moffat

REQUIRED = [
    "sourceId",
    "coord_ra",
    "coord_dec",
    "x",
    "y",
    "xErr",
    "yErr",
    "psfFlux",
    "psfFluxErr",
    "ap06Flux",
    "ap06FluxErr",
    "ap09Flux",
    "ap12Flux",
    "ap12FluxErr",
    "kronFlux",
    "kronFluxErr",
    "kronRad",
    "calibFlux",
    "calibFluxErr",
    "ixx",
    "iyy",
    "ixy",
    "ixxPSF",
    "iyyPSF",
    "ixyPSF",
    "extendedness",
    "sky",
    "pixelFlags_saturated",
    "pixelFlags_edge",
    "pixelFlags_bad",
    "psfFlux_flag",
    "calib_psf_used",
    "calib_astrometry_used",
    "calib_photometry_used",
    "detect_isPrimary",
]


@pytest.fixture(scope="module")
def field():
    return make_synthetic_field(
        (512, 512), n_stars=200, n_galaxies=60, n_saturated=2, n_cosmic_rays=40, seed=5
    )


@pytest.fixture(scope="module")
def result(field):
    return calibrate_exposure(field.exposure, field.refcat, band="i")


def _match_truth(field, src):
    d, i = cKDTree(np.c_[field.truth["x"], field.truth["y"]]).query(np.c_[src["x"], src["y"]])
    return d < 1.0, i


def test_catalog_schema_and_metrics(result):
    src = result.src
    for col in REQUIRED:
        assert col in src.colnames, col
    assert src["sourceId"].dtype == np.int64 and len(np.unique(src["sourceId"])) == len(src)
    assert str(src["psfFlux"].unit) == "nJy"
    m = result.metrics
    for key in (
        "astrom_rms_mas",
        "astrom_n_matches",
        "zero_point",
        "psf_fwhm_arcsec",
        "psf_n_stars",
        "n_sources",
        "background_mean",
    ):
        assert key in m
    assert result.calexp.psf is not None and result.calexp.photo_calib is not None
    assert result.calexp.wcs is not None
    assert m["psf_n_stars"] >= 30 and m["psf_degree"] == 2
    # sigma from adaptive moments, FWHM from the half-maximum area: compare with the true Moffat at the centre
    stamp = np.zeros((25, 25))
    fw, e1, e2 = moffat_psf_params(np.array([255.5]), np.array([255.5]), (512, 512))
    render_moffat(stamp, 12.0, 12.0, 1.0, fw[0], e1[0], e2[0])
    am = adaptive_moments(stamp[None], np.ones((1, 25, 25), bool), update_centroid=False)
    assert m["psf_sigma_pixels"] == pytest.approx(np.sqrt(0.5 * (am.ixx[0] + am.iyy[0])), rel=0.01)
    true_fwhm = fw[0] * 0.168
    assert m["psf_fwhm_arcsec"] == pytest.approx(true_fwhm, rel=0.03)


def test_detection_and_background(field, result):
    ok, i = _match_truth(field, result.src)
    found = np.unique(i[ok])
    t = field.truth
    # isolated: no other object within 12 pixels (closer unequal pairs of Moffat profiles show no saddle)
    dn, _ = cKDTree(np.c_[t["x"], t["y"]]).query(np.c_[t["x"], t["y"]], k=2)
    bright = (np.asarray(t["flux"]) > 1e4) & (dn[:, 1] > 12)
    assert bright.sum() > 100
    assert np.isin(np.flatnonzero(bright), found).mean() > 0.98
    assert result.metrics["background_mean"] == pytest.approx(field.sky, abs=1.0)  # sky noise: 32 e-
    sky = (result.calexp.mask & mask_bit("DETECTED")) == 0
    assert sky.mean() > 0.3
    # undetected pixels hold the faint wings of this crowded field's sources: slightly positive
    assert -0.5 < np.median(result.calexp.image[sky]) < 3.0


def test_astrometry_recovers_true_wcs(field, result):
    assert result.metrics["astrom_n_matches"] > 80
    assert result.metrics["astrom_rms_mas"] < 10.0
    gx, gy = np.meshgrid(np.linspace(0, 511, 8), np.linspace(0, 511, 8))
    tr, td = field.true_wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    assert np.max(wcs_residuals_mas(result.calexp.wcs, gx.ravel(), gy.ravel(), tr, td)) < 10.0


def test_zero_point_and_fluxes_in_njy(field, result):
    # the PSF model covers 25 x 25 pixels, which hold ~99.7% of these Moffat stars' light
    assert result.calexp.photo_calib.calibration_mean == pytest.approx(field.calibration, rel=0.01)
    src = result.src
    ok, i = _match_truth(field, src)
    truth = field.truth[i[ok]]
    s = src[ok]
    star = (
        np.asarray(truth["is_star"])
        & ~np.asarray(s["pixelFlags_saturated"])
        & (np.asarray(truth["flux"]) > 2e4)
    )
    ratio = np.asarray(s["psfFlux"])[star] / (np.asarray(truth["flux"])[star] * field.calibration)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    assert np.all(result.src["calib_photometry_used"] <= result.src["calib_astrometry_used"])
    # star / galaxy separation
    ext = np.asarray(s["extendedness"])
    is_star = np.asarray(truth["is_star"])
    assert np.nanmean(ext[is_star & (np.asarray(truth["flux"]) > 1e4)]) < 0.1
    assert np.nanmean(ext[~is_star & (np.asarray(truth["flux"]) > 1e4)]) > 0.8
    # saturated stars are flagged and not used for calibration
    sat = np.asarray(src["pixelFlags_saturated"])
    assert sat.sum() >= 2
    assert not np.any(sat & np.asarray(src["calib_psf_used"]))
    assert not np.any(sat & np.asarray(src["calib_photometry_used"]))


def test_no_stars_raises():
    rng = np.random.default_rng(0)
    img = (1000 + rng.normal(0, 32, (256, 256))).astype(np.float32)
    f = make_synthetic_field((256, 256), n_stars=20, n_galaxies=0)
    exp = Exposure(
        img, np.zeros(img.shape, np.int32), np.full(img.shape, 1020.0, np.float32), wcs=f.exposure.wcs
    )
    with pytest.raises(AlgorithmError):
        calibrate_exposure(exp, f.refcat, band="i")


def test_bad_config_and_missing_band(field):
    with pytest.raises(ConfigurationError, match="psf_size"):
        calibrate_exposure(field.exposure, field.refcat, band="i", config=CalibrateConfig(psf_size=24))
    with pytest.raises(AlgorithmError, match="g_flux"):
        calibrate_exposure(field.exposure, field.refcat, band="g")


def test_cosmic_rays_masked_and_not_cataloged(field, result):
    cy, cx = field.truth.meta["cosmic_ray_pixels"]
    flagged = (result.calexp.mask[cy, cx] & mask_bit("CR")) != 0
    assert flagged.mean() > 0.8
    assert result.metrics["n_cosmic_ray_pixels"] < 3 * len(cy) * 9
    # no catalogued source sits on a cosmic ray away from the true objects
    src = result.src
    d_truth, _ = cKDTree(np.c_[field.truth["x"], field.truth["y"]]).query(np.c_[src["x"], src["y"]])
    d_cr, _ = cKDTree(np.c_[cx, cy]).query(np.c_[src["x"], src["y"]])
    assert np.sum((d_cr < 1.5) & (d_truth > 3)) == 0
