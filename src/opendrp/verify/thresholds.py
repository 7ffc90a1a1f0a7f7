"""The thresholds of the DRP-00 checks: a versioned YAML shipped with the package (``thresholds.yaml``).

Each check of the file has a ``threshold``, a ``unit``, a ``comparison`` (``<=``, ``>=``, ``abs<=``, ``==``),
the ``section`` of the reference it implements, a one-line ``description``, and optionally ``partial_ok``
(a failure makes the case partial, not failed) and ``truth: true`` (run only on simulations, with
``--truth``).  ``opendrp verify --thresholds FILE.yaml`` overrides any subset of the fields of any check:
the file is merged over the shipped one, field by field, and every override is validated.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigurationError
from .model import Check, Status

__all__ = ["CheckSpec", "Thresholds", "load_thresholds"]

_COMPARISONS = ("<=", ">=", "abs<=", "==")
_FIELDS = {"threshold", "unit", "comparison", "section", "description", "partial_ok", "truth"}


@dataclass(frozen=True)
class CheckSpec:
    """One check of the thresholds file."""

    case: str
    key: str
    threshold: float | None
    unit: str
    comparison: str
    section: str
    description: str
    partial_ok: bool = False
    truth: bool = False

    def passes(self, value: float) -> bool:
        t = self.threshold
        if t is None:
            return bool(value)
        if self.comparison == "<=":
            return value <= t
        if self.comparison == ">=":
            return value >= t
        if self.comparison == "abs<=":
            return abs(value) <= t
        return value == t


class Thresholds:
    """The checks of every case, from the shipped YAML merged with an optional override file."""

    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.source = source
        self.version = str(doc.get("version", ""))
        self.cases: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, CheckSpec] = {}
        for case_id, case in (doc.get("cases") or {}).items():
            self.cases[case_id] = {k: v for k, v in case.items() if k != "checks"}
            for key, spec in (case.get("checks") or {}).items():
                self.specs[key] = _make_spec(case_id, key, spec, source)

    def spec(self, key: str) -> CheckSpec:
        try:
            return self.specs[key]
        except KeyError:
            raise ConfigurationError(
                f"no check {key!r} in the thresholds", where=self.source, fix="add it to thresholds.yaml"
            ) from None

    def title(self, case_id: str) -> str:
        return str(self.cases.get(case_id, {}).get("title", case_id))

    def section(self, case_id: str) -> str:
        return str(self.cases.get(case_id, {}).get("section", ""))

    def evaluate(
        self,
        key: str,
        value: float | bool | None,
        *,
        scope: dict[str, Any] | None = None,
        reason: str = "",
        n: int | None = None,
        plot: str | None = None,
        missing: str = "",
    ) -> Check:
        """Compare ``value`` with the threshold of check ``key``; a None or NaN value is 'not available'.

        Parameters
        ----------
        scope : `dict`, optional
            What the value is of (``{"band": "g", "tract": 0}``): appended to the check's name.
        reason : `str`
            What was measured (the selection), shown beside the status.
        missing : `str`
            Why the value is not available, when it is None or NaN.
        """
        spec = self.spec(key)
        name = key + ("[" + ", ".join(f"{k}={v}" for k, v in scope.items()) + "]" if scope else "")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            status = Status.NOT_AVAILABLE
            text = missing or reason or "could not be measured"
            out_value = None
        else:
            out_value = float(value)
            ok = spec.passes(out_value)
            status = Status.PASS if ok else Status.FAIL
            bound = "" if spec.threshold is None else f" (threshold {spec.comparison} {spec.threshold:g})"
            text = f"{_fmt(out_value, spec.unit)}{bound}" + (f"; {reason}" if reason else "")
        return Check(
            name=name,
            value=out_value,
            unit=spec.unit,
            threshold=spec.threshold,
            comparison=spec.comparison,
            status=status,
            reason=text,
            section=spec.section,
            partial_ok=spec.partial_ok,
            plot=plot,
            n=n,
        )

    def not_available(self, key: str, why: str, *, scope: dict[str, Any] | None = None) -> Check:
        """A check that cannot be made (the product or the service part it needs is missing)."""
        return self.evaluate(key, None, scope=scope, missing=why)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "checks": {
                k: {
                    "case": s.case,
                    "threshold": s.threshold,
                    "unit": s.unit,
                    "comparison": s.comparison,
                    "section": s.section,
                    "partial_ok": s.partial_ok,
                    "truth": s.truth,
                }
                for k, s in self.specs.items()
            },
        }


def _fmt(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{100 * value:.3g} %"
    if unit in ("", "count", "bool"):
        return f"{value:.4g}"
    return f"{value:.4g} {unit}"


def _make_spec(case_id: str, key: str, spec: Any, source: str) -> CheckSpec:
    where = f"{source}: cases.{case_id}.checks.{key}"
    if not isinstance(spec, dict):
        raise ConfigurationError("must be a mapping", where=where)
    unknown = set(spec) - _FIELDS
    if unknown:
        raise ConfigurationError(
            f"unknown field(s) {sorted(unknown)}", where=where, fix=f"fields: {sorted(_FIELDS)}"
        )
    threshold = spec.get("threshold")
    if threshold is not None and not (
        isinstance(threshold, int | float) and not isinstance(threshold, bool) and math.isfinite(threshold)
    ):
        raise ConfigurationError(f"threshold must be a finite number or null, got {threshold!r}", where=where)
    comparison = spec.get("comparison", "<=")
    if comparison not in _COMPARISONS:
        raise ConfigurationError(f"comparison {comparison!r} is not one of {list(_COMPARISONS)}", where=where)
    for flag in ("partial_ok", "truth"):
        if not isinstance(spec.get(flag, False), bool):
            raise ConfigurationError(f"{flag} must be true or false", where=where)
    return CheckSpec(
        case=case_id,
        key=key,
        threshold=None if threshold is None else float(threshold),
        unit=str(spec.get("unit", "")),
        comparison=comparison,
        section=str(spec.get("section", "")),
        description=str(spec.get("description", "")),
        partial_ok=bool(spec.get("partial_ok", False)),
        truth=bool(spec.get("truth", False)),
    )


def _shipped() -> tuple[dict[str, Any], str]:
    text = (resources.files("opendrp.verify") / "thresholds.yaml").read_text()
    return yaml.safe_load(text), "opendrp/verify/thresholds.yaml"


def load_thresholds(override: str | Path | None = None) -> Thresholds:
    """The shipped thresholds with the fields of ``override`` (a YAML file of the same shape) merged over."""
    doc, source = _shipped()
    if override is None:
        return Thresholds(doc, source)
    path = Path(override)
    try:
        extra = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigurationError(f"cannot read: {exc.strerror}", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"not valid YAML{at}", where=str(path), fix="fix the syntax") from None
    if not isinstance(extra, dict) or not isinstance(extra.get("cases", {}), dict):
        raise ConfigurationError("must be a mapping with a 'cases' mapping", where=str(path))
    merged = copy.deepcopy(doc)
    for case_id, case in (extra.get("cases") or {}).items():
        if case_id not in merged["cases"]:
            raise ConfigurationError(
                f"unknown test case {case_id!r}", where=str(path), fix=f"cases: {sorted(merged['cases'])}"
            )
        for key, fields in ((case or {}).get("checks") or {}).items():
            target = merged["cases"][case_id].setdefault("checks", {})
            if key not in target:
                raise ConfigurationError(
                    f"unknown check {key!r} of {case_id}", where=str(path), fix=f"checks: {sorted(target)}"
                )
            if not isinstance(fields, dict):
                raise ConfigurationError("must be a mapping of fields", where=f"{path}: {case_id}.{key}")
            target[key].update(fields)
    if "version" in extra:
        merged["version"] = f"{doc.get('version')}+{extra['version']}"
    else:
        merged["version"] = f"{doc.get('version')}+{path.name}"
    return Thresholds(merged, f"{source} + {path}")


def markdown_table(th: Thresholds) -> str:
    """The checks of every case as a markdown table (docs/verification.md embeds it)."""
    lines = [
        "| case | check | threshold | unit | reference | what it measures |",
        "|---|---|---|---|---|---|",
    ]
    for key, spec in th.specs.items():
        bound = "holds" if spec.threshold is None else f"{spec.comparison} {spec.threshold:g}"
        flags = " (partial_ok)" if spec.partial_ok else ""
        flags += " (simulations only)" if spec.truth else ""
        desc = spec.description.replace("|", "\\|")
        lines.append(f"| {spec.case} | `{key}`{flags} | {bound} | {spec.unit} | {spec.section} | {desc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m opendrp.verify.thresholds: the table of docs/verification.md
    print(markdown_table(load_thresholds()))
