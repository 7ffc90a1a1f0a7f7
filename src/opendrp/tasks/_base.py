"""Shared pieces of openDRP's PipelineTasks: error translation and metadata recording."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lsst.pipe.base as pipe_base

from ..errors import AlgorithmError, NoWorkFoundError

__all__ = ["record_metrics", "translate_errors"]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map openDRP's "no work" onto the middleware's, so the quantum is skipped rather than failed.

    `AlgorithmError` propagates: the quantum fails alone (its reason is logged and reported by the
    executor) and downstream quanta run with the inputs that exist.
    """
    try:
        yield
    except NoWorkFoundError as exc:
        raise pipe_base.NoWorkFound(exc.one_line()) from exc
    except AlgorithmError:
        raise


def record_metrics(task: pipe_base.Task, metrics: dict[str, Any], *, prefix: str = "") -> None:
    """Copy scalar metrics into the task metadata (``<label>_metadata`` dataset)."""
    for key, value in metrics.items():
        if isinstance(value, bool | int | float | str):
            task.metadata[f"{prefix}{key}"] = value
        elif hasattr(value, "item"):
            task.metadata[f"{prefix}{key}"] = value.item()
