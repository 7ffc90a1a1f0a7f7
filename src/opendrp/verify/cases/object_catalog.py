"""DRP-00-25 (placeholder until implemented)."""

from __future__ import annotations

from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    return CaseResult(
        "DRP-00-25", th.title("DRP-00-25"), th.section("DRP-00-25"), comments=["not implemented yet"]
    )
