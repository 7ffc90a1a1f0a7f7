"""The survey simulator: HSC-like raws, calibration exposures, truth and reference catalogues.

``simulate(load_sim_config("tiny"), "out/")`` writes a complete, small survey; see ``docs/simulator.md``.
"""

from .catalog import TruthCatalog, make_refcat, make_truth_catalog
from .config import (
    BandConfig,
    CalibrationConfig,
    CameraConfig,
    ConditionsConfig,
    GalaxyConfig,
    InstrumentConfig,
    PsfConfig,
    RefcatConfig,
    SimConfig,
    StarConfig,
    SurveyConfig,
    load_sim_config,
    preset_names,
    preset_yaml,
)
from .simulate import SimResult, build_camera, raw_filename, simulate
from .survey import ExposurePlan, plan_exposures

__all__ = [
    "BandConfig",
    "CalibrationConfig",
    "CameraConfig",
    "ConditionsConfig",
    "ExposurePlan",
    "GalaxyConfig",
    "InstrumentConfig",
    "PsfConfig",
    "RefcatConfig",
    "SimConfig",
    "SimResult",
    "StarConfig",
    "SurveyConfig",
    "TruthCatalog",
    "build_camera",
    "load_sim_config",
    "make_refcat",
    "make_truth_catalog",
    "plan_exposures",
    "preset_names",
    "preset_yaml",
    "raw_filename",
    "simulate",
]
