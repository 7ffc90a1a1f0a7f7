"""End to end on the `tiny` preset: simulate, init, ingest, calibrations, DRP, Object table, QA vs truth."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from opendrp.cli.demo import run_demo
from opendrp.repo import open_butler


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "out"
    run_demo("tiny", out, progress=False, echo=lambda s: None)
    return out


def test_products_exist(release: Path) -> None:
    for rel in ("truth/truth.parquet", "catalogs/object.parquet", "qa/metrics.json", "qa/index.html"):
        assert (release / rel).stat().st_size > 0, rel
    butler = open_butler(release / "repo")
    kinds = {ref.datasetType.name for ref in butler.query_all_datasets("HSC/runs/drp", limit=None)}
    expected = (
        "raw",
        "calexp",
        "src",
        "calexpBackground",
        "deepCoadd_directWarp",
        "deepCoadd",
        "objectTable",
    )
    for name in (*expected, "objectTable_tract", "calibrateImage_metadata", "packages"):
        assert name in kinds, name
    n_raw = len(list((release / "sim" / "raw" / "science").glob("*.fits")))
    assert len(butler.query_datasets("calexp", collections="HSC/runs/drp", explain=False)) == n_raw


def test_object_table_schema(release: Path) -> None:
    objects = Table.read(release / "catalogs" / "object.parquet")
    for col in (
        "objectId",
        "coord_ra",
        "coord_dec",
        "g_psfFlux",
        "g_psfFluxErr",
        "r_psfFlux",
        "r_psfFluxErr",
        "refExtendedness",
        "detect_isPrimary",
    ):
        assert col in objects.colnames, col
    assert len(np.unique(objects["objectId"])) == len(objects)
    primary = objects[np.asarray(objects["detect_isPrimary"], bool)]
    assert len(primary) > 100


def test_release_meets_accuracy_targets(release: Path) -> None:
    metrics = json.loads((release / "qa" / "metrics.json").read_text())
    for band in ("g", "r"):
        phot = metrics["photometry"][band]
        astro = metrics["astrometry"][band]
        assert phot["n"]["value"] >= 10, band
        assert abs(phot["offset_median"]["value"]) < 0.02, band
        assert phot["offset_scatter"]["value"] < 0.05, band
        assert astro["coord_scatter"]["value"] < 50.0, band
    assert metrics["ok"] is True


def test_object_petrosian_flux_of_stars(release: Path) -> None:
    """Petrosian flux (2 Petrosian radii) of a bright point source holds ~99% of its PSF flux."""
    objects = Table.read(release / "catalogs" / "object.parquet")
    for band in ("g", "r"):
        psf = np.asarray(objects[f"{band}_psfFlux"], float)
        sn = psf / np.asarray(objects[f"{band}_psfFluxErr"], float)
        petro = np.asarray(objects[f"{band}_petrosianFlux"], float)
        stars = (sn > 50) & (np.asarray(objects[f"{band}_extendedness"], float) == 0) & np.isfinite(petro)
        assert stars.sum() >= 10, band
        assert 0.96 < np.median(petro[stars] / psf[stars]) < 1.03, band
