"""Verification of a data release: the DRP-00 acceptance suite (reference 000 §5), SRD metrics, the report
and the metrics history.

`run_verify` runs every test case against one collection of a repository and writes verify.json, verify.md
and index.html; the thresholds are in the versioned ``thresholds.yaml`` shipped with the package.
"""

from .model import CaseResult, Check, Status
from .report import summary_lines, write_report
from .run import run_verify
from .thresholds import Thresholds, load_thresholds

__all__ = [
    "CaseResult",
    "Check",
    "Status",
    "Thresholds",
    "load_thresholds",
    "run_verify",
    "summary_lines",
    "write_report",
]
