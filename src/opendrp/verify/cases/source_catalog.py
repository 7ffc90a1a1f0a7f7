"""DRP-00-15 (placeholder until implemented)."""

from __future__ import annotations

from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    return CaseResult(
        "DRP-00-15", th.title("DRP-00-15"), th.section("DRP-00-15"), comments=["not implemented yet"]
    )
