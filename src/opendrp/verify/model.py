"""The verification result model: statuses, checks, test cases, and how a case's status follows.

A **check** is one number compared with one threshold (or a fact that holds or not). Its status is

- ``pass``: the value satisfies the threshold;
- ``fail``: it does not;
- ``not available``: the value could not be measured (the product, the selection or the production-service
  part it needs is missing); never counted as a pass.

A **test case** (DRP-00-00 ... DRP-00-35, reference 000 §5) passes when every check passes; it is
``partial`` when the only failing checks are marked ``partial_ok`` in the thresholds file or when some checks
are not available and none fails; it fails when any other check fails; it is ``not available`` when it has no
check that could be measured.  ``opendrp verify`` exits 1 when any case fails.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CaseResult", "Check", "Status", "case_status"]


class Status(enum.StrEnum):
    """Status of a check or a test case (the strings are those of verify.json)."""

    PASS = "pass"
    PARTIAL = "partial"
    FAIL = "fail"
    NOT_AVAILABLE = "not available"


@dataclass
class Check:
    """One check of a test case.

    Attributes
    ----------
    name : `str`
        Stable name: the check's key in the thresholds file, followed by its scope, e.g.
        ``src_ref_phot_offset[band=g, tract=0]``.
    value : `float` or `None`
        The measured value (None: not measured).
    unit : `str`
        Unit of ``value`` and ``threshold`` (``fraction``, ``mmag``, ``mas``, ``count``, ...).
    threshold : `float` or `None`
        The threshold the value is compared with (None for a fact that holds or not).
    comparison : `str`
        ``<=``, ``>=``, ``abs<=`` or ``==``.
    status : `Status`
    reason : `str`
        Why it has its status, in words (what was measured on what selection).
    section : `str`
        The reference section the check implements (e.g. ``000 §5.4``).
    partial_ok : `bool`
        A failure of this check makes its case partial rather than failed.
    plot : `str` or `None`
        The figure that shows it, relative to the report directory.
    n : `int` or `None`
        Number of objects the value was measured on.
    """

    name: str
    value: float | None
    unit: str
    threshold: float | None
    comparison: str
    status: Status
    reason: str
    section: str = ""
    partial_ok: bool = False
    plot: str | None = None
    n: int | None = None

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        return {
            "name": self.name,
            "value": value,
            "unit": self.unit,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "status": str(self.status),
            "reason": self.reason,
            "section": self.section,
            "partial_ok": self.partial_ok,
            "plot": self.plot,
            "n": self.n,
        }


@dataclass
class CaseResult:
    """The result of one test case."""

    case_id: str
    title: str
    section: str
    checks: list[Check] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    """Extra remarks for the summary table (e.g. why a whole case is not available)."""
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Tables shown with the case in verify.md and index.html (e.g. reference 000 Table 1: expected vs actual
    counts per dataset type and tract): name -> rows, each row a dict column -> value (same keys)."""
    figures: list[str] = field(default_factory=list)
    """Figures of the case not tied to one check (relative paths), shown with the case."""

    @property
    def status(self) -> Status:
        return case_status(self.checks)

    def summary(self) -> str:
        """The comment of the summary table: the failing checks first, then what was not available."""
        failed = [c for c in self.checks if c.status == Status.FAIL]
        missing = [c for c in self.checks if c.status == Status.NOT_AVAILABLE]
        parts = [f"fails {c.name}: {c.reason}" for c in failed[:3]]
        if len(failed) > 3:
            parts.append(f"and {len(failed) - 3} more failing checks")
        if missing:
            names = ", ".join(c.name for c in missing[:3]) + (" ..." if len(missing) > 3 else "")
            parts.append(f"{len(missing)} checks not available ({names})")
        parts.extend(self.comments)
        n_pass = sum(c.status == Status.PASS for c in self.checks)
        parts.append(f"{n_pass}/{len(self.checks)} checks pass")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "title": self.title,
            "section": self.section,
            "summary": self.summary(),
            "comments": list(self.comments),
            "checks": [c.to_json() for c in self.checks],
            "tables": self.tables,
            "figures": list(self.figures),
        }


def case_status(checks: list[Check]) -> Status:
    """The status of a case from those of its checks (rules in the module docstring)."""
    measured = [c for c in checks if c.status != Status.NOT_AVAILABLE]
    if not measured:
        return Status.NOT_AVAILABLE
    failed = [c for c in measured if c.status == Status.FAIL]
    if any(not c.partial_ok for c in failed):
        return Status.FAIL
    if failed or len(measured) < len(checks):
        return Status.PARTIAL
    return Status.PASS
