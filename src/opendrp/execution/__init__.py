"""Execution: build quantum graphs and run them, step by step, with progress and failure isolation."""

from .drp import STEPS, coverage_polygons, default_output, drp_pipeline_path, export_object_table, run_drp
from .runner import QuantumOutcome, RunReport, run_pipeline

__all__ = [
    "STEPS",
    "coverage_polygons",
    "QuantumOutcome",
    "RunReport",
    "default_output",
    "drp_pipeline_path",
    "export_object_table",
    "run_drp",
    "run_pipeline",
]
