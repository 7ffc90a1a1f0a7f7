"""Configuration: presets, YAML round trip, validation messages."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import yaml

from opendrp.errors import ConfigurationError
from opendrp.sim import SimConfig, build_camera, load_sim_config, preset_names, preset_yaml


def _keys(obj: object, prefix: str = "") -> set[str]:
    out = set()
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out |= _keys(value, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("bands", "skymap"):
            out |= _yaml_keys(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_presets_exist() -> None:
    assert {"tiny", "small"} <= set(preset_names())


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_preset_round_trip(name: str, tmp_path) -> None:
    config = load_sim_config(name)
    text = preset_yaml(name)
    assert text.lstrip().startswith("#")  # commented, ready to edit
    assert load_sim_config(text) == config
    path = tmp_path / "edit.yaml"
    path.write_text(text)
    assert load_sim_config(path) == config
    # the written complete config reloads identically
    assert load_sim_config(config.to_yaml()) == config
    # the preset spells out every field
    assert _yaml_keys(yaml.safe_load(text)) == _keys(config)
    for band in config.bands.values():
        assert set(dataclasses.asdict(band)) <= set(yaml.safe_load(text)["bands"][next(iter(config.bands))])


def test_preset_contents() -> None:
    tiny = load_sim_config("tiny")
    assert list(tiny.bands) == ["g", "r"]
    assert all(b.n_visits == 3 for b in tiny.bands.values())
    assert 2 <= len(build_camera(tiny).detectors) <= 4
    assert tiny.skymap["patch_inner_pixels"] == 1000 and tiny.skymap["patch_border_pixels"] == 100
    small = load_sim_config("small")
    assert list(small.bands) == ["g", "r", "i"]
    assert small.skymap["patch_inner_pixels"] == 2000
    assert small.skymap["num_rings"] == 120


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("psf: {beta: 0.5}", "psf.beta"),
        ("psf: {betta: 3.0}", "psf.betta"),
        ("bands: {u: {}}", "bands.u"),
        ("bands: {g: {exposure_time: -1}}", "bands.g.exposure_time"),
        ("camera: {n_detectors: 0}", "camera.n_detectors"),
        ("survey: {dither_pattern: spiral}", "survey.dither_pattern"),
        ("survey: {dither_pattern: list}", "survey.dither_offsets_arcsec"),
        ("survey: {start_date: yesterday}", "survey.start_date"),
        ("stars: {mag_min: 24.0, mag_max: 20.0}", "stars.mag_max"),
        ("galaxies: {model: blob}", "galaxies.model"),
        ("instrument: {bias_level_adu: [1000, -5, 1000, 1000]}", "instrument.bias_level_adu[1]"),
        ("refcat: {reference_band: q}", "refcat.reference_band"),
        ("seed: abc", "seed"),
    ],
)
def test_validation_names_field(text: str, field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_sim_config(text + "\n")
    assert field in str(info.value)


def test_unknown_field_suggests() -> None:
    with pytest.raises(ConfigurationError, match="did you mean psf.beta"):
        load_sim_config("psf: {betta: 3.0}\n")


def test_camera_errors_name_field() -> None:
    config = load_sim_config("camera: {n_detectors: 500}\n")
    with pytest.raises(ConfigurationError, match="camera.n_detectors"):
        build_camera(config)
    config = load_sim_config("camera: {nx: 1022}\n")
    with pytest.raises(ConfigurationError, match="camera.nx"):
        build_camera(config)


def test_error_is_picklable() -> None:
    try:
        load_sim_config("psf: {beta: 0.5}\n")
    except ConfigurationError as exc:
        again = pickle.loads(pickle.dumps(exc))
        assert str(again) == str(exc)
    else:
        pytest.fail("no error raised")


def test_missing_file() -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_sim_config("/nonexistent/config.yaml")


def test_defaults_validate_and_band_defaults() -> None:
    config = SimConfig().validate()
    partial = load_sim_config("bands: [g, i]\n")
    assert list(partial.bands) == ["g", "i"]
    assert partial.bands["i"].zero_point != partial.bands["g"].zero_point  # per-band defaults
    assert config.bands["g"] == partial.bands["g"]


def test_preset_name_wins_over_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    assert load_sim_config("tiny") == load_sim_config(preset_yaml("tiny"))
