"""Error hierarchy of openDRP.

Every error a user can meet derives from `OpenDRPError` and from the matching builtin, carries the fields a
user needs (file, data ID), renders as one line that says what is wrong, where, and what to do, and is
picklable so that it crosses process boundaries.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlgorithmError",
    "BadRawFileError",
    "ConfigurationError",
    "NoWorkFoundError",
    "OpenDRPError",
    "RepositoryError",
]


class OpenDRPError(Exception):
    """Root of all openDRP errors.

    Parameters
    ----------
    what : `str`
        What is wrong.
    where : `str`, optional
        Where (a file, a data ID, a config field).
    fix : `str`, optional
        What the user can do about it.
    """

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``where: what -- fix`` on one line (newlines and runs of spaces of embedded messages collapsed)."""
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(self.fix)
        return " ".join(" -- ".join(parts).split())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.what, self.where, self.fix))


def _rebuild(cls: type[OpenDRPError], what: str, where: str, fix: str) -> OpenDRPError:
    return cls(what, where=where, fix=fix)


class ConfigurationError(OpenDRPError, ValueError):
    """A configuration (YAML, config field, command-line option) is invalid: stop early."""


class BadRawFileError(OpenDRPError, ValueError):
    """A raw file cannot be ingested (unreadable, truncated, missing or wrong header, unknown detector)."""


class RepositoryError(OpenDRPError, RuntimeError):
    """The data repository is missing, inconsistent, or lacks what a command needs."""


class AlgorithmError(OpenDRPError, RuntimeError):
    """An algorithm could not process this unit of data (e.g. no stars, no astrometric matches).

    The unit fails alone; the rest of the campaign goes on.
    """


class NoWorkFoundError(OpenDRPError, LookupError):
    """There is nothing to do for this unit of data (e.g. a patch with no inputs): skip it."""
