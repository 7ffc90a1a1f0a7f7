"""The examples of docs/simulator.md run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def test_python_examples_run(tmp_path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "2 science raws" in out
    assert len(list((tmp_path / "sim_out" / "raw" / "science").glob("*.fits"))) == 2


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_documented_presets_exist(name: str) -> None:
    assert f"`{name}`" in DOC.read_text()


def test_every_config_field_is_documented() -> None:
    import dataclasses

    from opendrp.sim import SimConfig

    text = DOC.read_text()
    config = SimConfig()
    missing = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        names = [f.name for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else []
        if section.name == "bands":
            names = [f.name for f in dataclasses.fields(next(iter(value.values())))]
        missing += [f"{section.name}.{n}" for n in names if f"`{n}`" not in text]
    assert not missing
