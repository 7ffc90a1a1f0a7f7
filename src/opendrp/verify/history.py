"""Placeholder: the metrics store (implemented by the history/dashboard work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def append_run(repo: Path, doc: dict[str, Any]) -> None:
    """Append one verify run's metrics to the repository's metrics store."""
    return None
