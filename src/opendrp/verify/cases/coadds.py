"""DRP-00-35 (placeholder until implemented)."""

from __future__ import annotations

from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds


def run(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    return CaseResult(
        "DRP-00-35", th.title("DRP-00-35"), th.section("DRP-00-35"), comments=["not implemented yet"]
    )
