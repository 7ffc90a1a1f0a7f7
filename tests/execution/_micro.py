"""A micro survey for execution tests: 2 CCDs of 1024 x 512, 1 band x 2 visits, 3 biases, 3 flats."""

from __future__ import annotations

from pathlib import Path

import yaml
from astropy.table import Table

from opendrp.instrument import Camera
from opendrp.sim import simulate
from opendrp.sim.config import load_sim_config, preset_yaml


def micro_sim_config(path: Path) -> Path:
    """Write the micro survey's simulation YAML (from the ``tiny`` preset) and return its path."""
    cfg = yaml.safe_load(preset_yaml("tiny"))
    cfg["camera"].update({"n_detectors": 2, "nx": 1024, "ny": 512})
    cfg["bands"] = {"g": {**cfg["bands"]["g"], "n_visits": 2}}
    cfg["calibration"].update({"n_bias": 3, "n_flat": 3})
    cfg["survey"]["dither_radius_arcsec"] = 20.0
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_micro_repo(root: Path, *, registry_db: str | None = None) -> Path:
    """Simulate the micro survey in ``root/sim`` and ingest it into a new repository ``root/repo``."""
    from opendrp.cli.main import _skymap_config_from
    from opendrp.repo import create_repo, ingest_raws, ingest_refcat

    root.mkdir(parents=True, exist_ok=True)
    sim_dir = root / "sim"
    cfg = load_sim_config(micro_sim_config(root / "micro.yaml"))
    simulate(cfg, sim_dir, processes=1, progress=False)
    camera = Camera.from_yaml(sim_dir / "camera.yaml")
    butler = create_repo(
        root / "repo",
        camera=camera,
        skymap_config=_skymap_config_from(str(sim_dir / "sim_config.yaml")),
        registry_db=registry_db,
    )
    ingest_refcat(butler, Table.read(sim_dir / "refcat" / "refcat.parquet"))
    report = ingest_raws(butler, sorted((sim_dir / "raw").rglob("*.fits")), transfer="copy")
    assert not report.failed, report.failed
    return root / "repo"
