"""Our storage classes through a real Butler: Exposure (FITS), components, PSF models, background, refcat."""

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from opendrp.background import BackgroundModel
from opendrp.image import Exposure, PhotoCalib, mask_bit
from opendrp.instrument.geometry import Pointing, detector_wcs
from opendrp.psf import CoaddPsf, PixelPsf
from opendrp.repo import ingest_refcat, open_butler
from opendrp.repo.butler import register_dataset_type


def _exposure(small_camera) -> Exposure:
    rng = np.random.default_rng(2)
    exp = Exposure.blank(64, 48, VISIT=7, BAND="g")
    exp.image[:] = rng.normal(0, 1, exp.shape)
    exp.mask[3, 4] = mask_bit("SAT", "BAD")
    exp.variance[:] = 2.0
    exp.wcs = detector_wcs(small_camera, 0, Pointing(150.1, 2.2, 10.0))
    exp.psf = PixelPsf(
        np.stack(
            [PixelPsf.gaussian(2.0).basis[0], 0.01 * PixelPsf.gaussian(3.0).basis[0], np.zeros((25, 25))]
        ),
        degree=1,
        x_range=(0, 47),
        y_range=(0, 63),
    )
    exp.photo_calib = PhotoCalib(57.5, 0.3)
    return exp


def test_exposure_roundtrip_and_components(repo: Path, small_camera) -> None:
    butler = open_butler(repo, writeable=True)
    butler.collections.register("test")
    register_dataset_type(butler, "calexp", ["instrument", "detector"], "DrpExposure")
    exp = _exposure(small_camera)
    ref = butler.put(exp, "calexp", instrument="HSC", detector=0, run="test")
    back = butler.get(ref)
    assert np.array_equal(back.image, exp.image) and np.array_equal(back.mask, exp.mask)
    assert back.photo_calib == exp.photo_calib
    assert back.psf == exp.psf
    x, y = np.array([0.0, 47.0]), np.array([0.0, 63.0])
    assert np.allclose(back.wcs.all_pix2world(x, y, 0), exp.wcs.all_pix2world(x, y, 0), atol=1e-10)
    assert back.metadata["VISIT"] == 7
    # components read alone
    assert np.allclose(
        butler.get(ref.makeComponentRef("wcs")).all_pix2world(x, y, 0), exp.wcs.all_pix2world(x, y, 0)
    )
    assert butler.get(ref.makeComponentRef("psf")) == exp.psf
    assert butler.get(ref.makeComponentRef("photo_calib")).calibration_mean == 57.5
    assert butler.get(ref.makeComponentRef("image")).shape == (64, 48)
    # the file is a plain multi-extension FITS with named HDUs
    path = butler.getURI(ref).ospath
    with fits.open(path) as hdul:
        assert [h.name for h in hdul][:4] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
        assert hdul["MASK"].header["MP_SAT"] == 1
        assert "LSST BUTLER ID" in hdul[0].header or any(k.startswith("LSST BUTLER") for k in hdul[0].header)


def test_models_roundtrip(repo: Path) -> None:
    butler = open_butler(repo, writeable=True)
    butler.collections.register("test")
    register_dataset_type(butler, "bkg", ["instrument", "detector"], "DrpBackground")
    register_dataset_type(butler, "cpsf", ["instrument", "detector"], "DrpPsfModel")
    bkg = BackgroundModel(np.arange(12.0).reshape(3, 4), bin_size=32, shape=(96, 128))
    ref = butler.put(bkg, "bkg", instrument="HSC", detector=1, run="test")
    assert np.array_equal(butler.get(ref).evaluate(), bkg.evaluate())
    k = PixelPsf.gaussian(2.0).kernel_image(0, 0)
    cpsf = CoaddPsf(
        np.stack([k, k]),
        [1.0, 2.0],
        [np.array([[0, 0], [10, 0], [10, 10]]), np.array([[0, 0], [5, 5], [0, 5]])],
    )
    ref = butler.put(cpsf, "cpsf", instrument="HSC", detector=1, run="test")
    back = butler.get(ref)
    assert np.allclose(back.kernel_image(2, 1), cpsf.kernel_image(2, 1))
    assert np.allclose(back.weights, [1.0, 2.0])


def test_refcat_sharding(repo: Path) -> None:
    butler = open_butler(repo, writeable=True)
    rng = np.random.default_rng(4)
    n = 3000
    table = Table(
        {
            "id": np.arange(n),
            "coord_ra": rng.uniform(149.5, 150.5, n),
            "coord_dec": rng.uniform(1.7, 2.7, n),
            "g_flux": rng.uniform(1e3, 1e5, n),
        }
    )
    shards = ingest_refcat(butler, table)
    refs = butler.query_datasets("ref_cat", collections="refcats", explain=False)
    assert len(refs) == shards > 1
    total = sum(len(butler.get(r)) for r in refs)
    assert total == n
    assert ingest_refcat(butler, table) == 0  # idempotent


def test_refcat_from_shard_directory(repo: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    n = 500
    table = Table(
        {
            "id": np.arange(n),
            "coord_ra": rng.uniform(149.9, 150.3, n),
            "coord_dec": rng.uniform(2.0, 2.4, n),
            "g_flux": rng.uniform(1e3, 1e5, n),
        }
    )
    shard_dir = tmp_path / "ps1"
    shard_dir.mkdir()
    for k in range(3):  # any sharding of the input: it is re-sharded on htm7
        table[k::3].write(shard_dir / f"{k}.parquet")
    butler = open_butler(repo, writeable=True)
    assert ingest_refcat(butler, shard_dir, name="ps1_cat") >= 1
    refs = butler.query_datasets("ps1_cat", collections="refcats", explain=False)
    assert sorted(np.concatenate([butler.get(r)["id"] for r in refs])) == list(range(n))
