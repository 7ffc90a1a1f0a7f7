"""The same accuracy on a survey the presets do not describe.

Another sky position and rotation, other bands, worse seeing, a larger pointing error, other CCD shapes and
patch sizes: the figures must not be tuned to a preset.
"""

import json
from pathlib import Path

import pytest
import yaml

from opendrp.cli.demo import run_demo
from opendrp.sim import preset_yaml


def _variant_config() -> dict:
    d = yaml.safe_load(preset_yaml("tiny"))
    d["seed"] = 7
    d["camera"].update(n_detectors=2, nx=1024, ny=2048)
    r = dict(d["bands"]["r"])
    d["bands"] = {
        "r": r,
        "i": dict(r, sky_brightness=20.3, zero_point=28.7),
        "z": dict(r, sky_brightness=19.5, zero_point=28.2, n_visits=2),
    }
    d["survey"].update(
        ra=35.3, dec=-4.7, rotation_deg=30.0, rotation_jitter_deg=3.0, pointing_error_arcsec=5.0
    )
    d["conditions"]["seeing_fwhm_arcsec"] = 0.9
    for section in ("stars", "galaxies", "refcat"):
        d[section]["reference_band"] = "i"
    d["skymap"].update(name="variant", patch_inner_pixels=1500, patch_border_pixels=150)
    return d


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("variant")
    config = tmp / "variant.yaml"
    config.write_text(yaml.safe_dump(_variant_config(), sort_keys=False))
    out = tmp / "out"
    run_demo(str(config), out, progress=False, echo=lambda s: None)
    return out


def test_variant_meets_accuracy_targets(variant: Path) -> None:
    doc = json.loads((variant / "verify" / "verify.json").read_text())
    checks = {c["name"]: c for case in doc["test_cases"].values() for c in case["checks"]}
    for band in ("r", "i", "z"):
        offset = checks[f"truth_coadd_psf_flux_offset[band={band}]"]
        assert offset["n"] >= 10, band
        assert abs(offset["value"]) < 0.02, band
        assert checks[f"truth_coadd_psf_flux_scatter[band={band}]"]["value"] < 0.05, band
    assert doc["metrics"]["truth_position_robust_scatter"]["all"]["value"] < 50.0
    # bright stars in the surveyed footprint are found
    mag_90 = doc["metrics"]["truth_completeness_mag90_star"]
    assert mag_90["i"]["value"] is not None and mag_90["i"]["value"] > 21.0
    # a configuration that no preset describes has no expected installation figures
    assert doc["test_cases"]["DRP-00-00"]["status"] == "not available"
