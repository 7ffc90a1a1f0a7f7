"""Failure classification: transient (retried), algorithm (fails alone), configuration (stops)."""

from __future__ import annotations

import errno

import pytest

from opendrp.errors import AlgorithmError, ConfigurationError
from opendrp.execution._failures import classify_exception


class InvalidQuantumError(Exception):  # same name as pipe_base's: matched by name through the MRO
    pass


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("task failed") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.EIO, "I/O error"), "transient"),
        (TimeoutError("node timed out"), "transient"),
        (ConnectionError("reset"), "transient"),
        (_wrapped(OSError(errno.EIO, "read failed")), "transient"),
        (RuntimeError("(sqlite3.OperationalError) database is locked"), "transient"),
        (AlgorithmError("no stars", where="visit 1 detector 2"), "algorithm"),
        (ValueError("bad pixel value"), "algorithm"),
        (ConfigurationError("bad field", where="calibrateImage.do_flat"), "configuration"),
        (InvalidQuantumError("inconsistent quantum"), "configuration"),
        (ModuleNotFoundError("no module named foo"), "configuration"),
        (OSError(errno.ENOSPC, "No space left on device"), "configuration"),
    ],
)
def test_classify(exc: BaseException, expected: str) -> None:
    assert classify_exception(exc) == expected
