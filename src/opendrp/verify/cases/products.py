"""DRP-00-05 / DRP-00-10 (placeholder until implemented)."""

from __future__ import annotations

from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds


def run_execution(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    return CaseResult(
        "DRP-00-05", th.title("DRP-00-05"), th.section("DRP-00-05"), comments=["not implemented yet"]
    )


def run_products(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    return CaseResult(
        "DRP-00-10", th.title("DRP-00-10"), th.section("DRP-00-10"), comments=["not implemented yet"]
    )
