"""End to end on the `tiny` preset: simulate, init, ingest, calibrations, DRP, Object table, verification."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from opendrp.repo import open_butler


@pytest.fixture(scope="module")
def release(tiny_release: Path) -> Path:
    return tiny_release


def test_products_exist(release: Path) -> None:
    for rel in (
        "truth/truth.parquet",
        "catalogs/object.parquet",
        "summary.json",
        "verify/verify.json",
        "verify/verify.md",
        "verify/index.html",
    ):
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


def _check_values(doc: dict, key: str) -> dict[str, float]:
    """Values of the checks ``key[...]`` of any case, by scope."""
    out = {}
    for case in doc["test_cases"].values():
        for c in case["checks"]:
            if c["name"].split("[")[0] == key:
                out[c["name"]] = c["value"]
    return out


def test_release_meets_accuracy_targets(release: Path) -> None:
    """The spine's targets on the Object table against the truth (S/N > 50 stars), as verify measures them."""
    doc = json.loads((release / "verify" / "verify.json").read_text())
    offsets = _check_values(doc, "truth_coadd_psf_flux_offset")
    scatters = _check_values(doc, "truth_coadd_psf_flux_scatter")
    assert sorted(offsets) == ["truth_coadd_psf_flux_offset[band=g]", "truth_coadd_psf_flux_offset[band=r]"]
    for band in ("g", "r"):
        assert abs(offsets[f"truth_coadd_psf_flux_offset[band={band}]"]) < 0.02, band
        assert scatters[f"truth_coadd_psf_flux_scatter[band={band}]"] < 0.05, band
    assert doc["metrics"]["truth_position_robust_scatter"]["all"]["value"] < 50.0


def test_verify_report_has_every_case(release: Path) -> None:
    doc = json.loads((release / "verify" / "verify.json").read_text())
    cases = ("DRP-00-00", "DRP-00-05", "DRP-00-10", "DRP-00-15", "DRP-00-25", "DRP-00-30", "DRP-00-35")
    assert tuple(doc["test_cases"]) == cases
    for case_id, case in doc["test_cases"].items():
        assert case["status"] in ("pass", "partial", "fail", "not available"), case_id
        assert case["summary"], case_id
        for check in case["checks"]:
            assert check["status"] in ("pass", "fail", "not available") and check["reason"], check["name"]
    # the installation check compares the tiny preset's figures with those shipped in the package
    installation = doc["test_cases"]["DRP-00-00"]["checks"]
    assert [c["status"] for c in installation] == ["pass"], installation
    md = (release / "verify" / "verify.md").read_text()
    for case_id in cases:
        assert f"| {case_id} |" in md
    for figure in {c["plot"] for case in doc["test_cases"].values() for c in case["checks"] if c["plot"]}:
        assert (release / "verify" / figure).stat().st_size > 0, figure
    assert doc["metrics"]["PA1"]["g"]["unit"] == "mmag"


def test_verify_command_exit_status(release: Path, tmp_path: Path) -> None:
    """Exit 0 when no case fails; 1 when one does (a stricter threshold than the release meets)."""
    from click.testing import CliRunner

    from opendrp.cli.main import cli

    args = ["verify", str(release / "repo"), "--case", "DRP-00-10", "--no-plots", "--no-history"]
    ok = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "DRP-00-10  Pass" in ok.output
    strict = tmp_path / "strict.yaml"
    strict.write_text("cases:\n  DRP-00-10:\n    checks:\n      required_products: {threshold: 2.0}\n")
    bad = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), "--thresholds", str(strict)])
    assert bad.exit_code == 1, bad.output
    assert "DRP-00-10  Fail" in bad.output
    again = CliRunner().invoke(cli, ["verify", "--demo-expected", str(release)])
    assert again.exit_code == 0 and again.output.strip().splitlines()[-1] == "ok", again.output


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
