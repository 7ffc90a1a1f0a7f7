"""Synthetic verify documents (the shape `run_verify` returns) for the metrics-history and dashboard tests."""

from __future__ import annotations

from typing import Any

CASE = "DRP-00-15"
CHECK = "src_ref_phot_offset[band=g, tract=0]"
FACT = "src_schema_complete[tract=0]"


def check(name: str, value: float | None, *, threshold: float | None, comparison: str, status: str) -> dict:
    """One check as in verify.json."""
    return {
        "name": name,
        "value": value,
        "unit": "mmag",
        "threshold": threshold,
        "comparison": comparison,
        "status": status,
        "reason": "synthetic",
        "section": "000 §5.4",
        "partial_ok": False,
        "plot": None,
        "n": 100,
    }


def make_doc(
    *,
    created: str,
    collection: str = "HSC/runs/drp",
    pa1_g: float = 10.0,
    pa1_r: float = 12.0,
    pa1_threshold: float | None = None,
    offset: float = 5.0,
    offset_status: str = "pass",
    fact_status: str = "pass",
) -> dict[str, Any]:
    """A verify document with two SRD metrics (PA1 in g and r) and one case of two checks.

    ``offset`` is an ``abs<=`` check with threshold 20 mmag; ``src_schema_complete`` an ``==`` fact;
    ``pa1_threshold`` the threshold recorded with the PA1 metrics (default none).
    """
    case_status = "pass" if offset_status == fact_status == "pass" else "fail"
    return {
        "schema_version": 1,
        "opendrp_version": "0.1.0",
        "software": {"opendrp": "0.1.0", "numpy": "2.5.5"},
        "created": created,
        "repo": "/tmp/repo",
        "collection": collection,
        "truth": None,
        "config_digest": "0123456789abcdef",
        "thresholds": {"source": "opendrp/verify/thresholds.yaml", "version": "1"},
        "status": case_status,
        "test_cases": {
            CASE: {
                "status": case_status,
                "title": "Source catalogue photometry",
                "section": "000 §5.4",
                "summary": "",
                "checks": [
                    check(CHECK, offset, threshold=20.0, comparison="abs<=", status=offset_status),
                    check(FACT, 1.0, threshold=None, comparison="==", status=fact_status),
                ],
                "tables": {},
                "figures": [],
            }
        },
        "metrics": {
            "PA1": {
                "g": {"value": pa1_g, "unit": "mmag", "threshold": pa1_threshold},
                "r": {"value": pa1_r, "unit": "mmag", "threshold": pa1_threshold},
            }
        },
    }


def append_many(repo: str, collection: str, n: int, barrier: Any) -> None:
    """Append ``n`` runs of ``collection`` (PA1 g = 0, 1, ...) once both processes reach ``barrier``."""
    from opendrp.verify.history import append_run

    barrier.wait()
    for i in range(n):
        append_run(repo, make_doc(created=f"2026-11-01T00:00:{i:02d}+00:00", collection=collection, pa1_g=i))
