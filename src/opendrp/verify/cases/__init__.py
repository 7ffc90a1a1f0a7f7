"""The DRP-00 test cases (reference 000 §5), one module per concern.

Each case is a function ``(ctx: VerifyContext, th: Thresholds) -> CaseResult`` registered in `CASES` in the
order of the report.  A case computes its checks from the repository (and the truth, when given), draws its
figures through its own ``_plots`` functions, and records SRD-style metrics in ``ctx.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import VerifyContext
from ..model import CaseResult
from ..thresholds import Thresholds

__all__ = ["CASES", "CaseFunction"]

CaseFunction = Callable[[VerifyContext, Thresholds], CaseResult]


def _cases() -> dict[str, CaseFunction]:
    from . import coadds, installation, object_catalog, products, source_catalog, visit_images

    return {
        "DRP-00-00": installation.run,
        "DRP-00-05": products.run_execution,
        "DRP-00-10": products.run_products,
        "DRP-00-15": source_catalog.run,
        "DRP-00-25": object_catalog.run,
        "DRP-00-30": visit_images.run,
        "DRP-00-35": coadds.run,
    }


CASES: tuple[str, ...] = (
    "DRP-00-00",
    "DRP-00-05",
    "DRP-00-10",
    "DRP-00-15",
    "DRP-00-25",
    "DRP-00-30",
    "DRP-00-35",
)


def case_functions() -> dict[str, CaseFunction]:
    """The case functions by case id, in report order."""
    return _cases()
