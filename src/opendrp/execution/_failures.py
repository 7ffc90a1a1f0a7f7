"""Failure classes of a quantum and the test-only fault hook.

Three classes, after reference 004 §4 (as-is mitigation procedures):

``transient``
    I/O and node errors (`OSError`, timeouts, a locked database, a worker process that died): the quantum is
    retried with exponential back-off, up to a limit.
``algorithm``
    A reproducible failure of this unit of data (`opendrp.errors.AlgorithmError`, pipe_base's
    ``AlgorithmError``, and any other exception a task raises): this quantum fails, quanta that need one of
    its outputs as a required input are skipped, the rest of the campaign goes on.
``configuration``
    The campaign cannot work as configured (`opendrp.errors.ConfigurationError`, pipe_base's
    ``InvalidQuantumError``, a config field that does not validate, a task that cannot be imported): stop at
    once and say why.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

from ..errors import AlgorithmError, ConfigurationError, OpenDRPError

__all__ = ["ALGORITHM", "CONFIGURATION", "FAULT_ENV", "TRANSIENT", "classify_exception", "inject_fault"]

TRANSIENT = "transient"
ALGORITHM = "algorithm"
CONFIGURATION = "configuration"

FAULT_ENV = "OPENDRP_FAULT_INJECT"
"""Test-only: ``KIND@LABEL[,KIND@LABEL...]``, KIND in ``oserror``, ``kill``, ``config``; each fires once."""
FAULT_STATE_ENV = "OPENDRP_FAULT_STATE"
"""Directory where the fault hook records which faults have fired (shared by all worker processes)."""

_CONFIG_TYPE_NAMES = {"InvalidQuantumError", "FieldValidationError", "PipelineDatasetTypeError"}
_TRANSIENT_TYPE_NAMES = {
    "OperationalError",
    "BrokenProcessPool",
    "WorkerDiedError",
    "DBAPIError",
    "ManagerLost",  # Parsl: a worker node stopped sending heartbeats
    "WorkerLost",  # Parsl: a worker process died
}
_TRANSIENT_MESSAGES = ("database is locked", "could not connect", "connection refused", "server closed")


class WorkerDiedError(OpenDRPError, RuntimeError):
    """The worker process running a quantum died (killed, out of memory, node lost)."""


def _type_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def classify_exception(exc: BaseException) -> str:
    """The failure class (`TRANSIENT`, `ALGORITHM` or `CONFIGURATION`) of an exception raised by a quantum.

    The exception's cause chain is looked at too, so a task that wraps an `OSError` in its own error is
    still retried.
    """
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:
        names = _type_names(err)
        if isinstance(err, ConfigurationError) or names & _CONFIG_TYPE_NAMES:
            return CONFIGURATION
        if isinstance(err, ImportError | ModuleNotFoundError):
            return CONFIGURATION
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return CONFIGURATION  # a full disk stops the campaign: retrying or going on cannot help
    first = chain[0]
    if isinstance(first, AlgorithmError) or "AlgorithmError" in _type_names(first):
        return ALGORITHM
    for err in chain:
        if isinstance(err, MemoryError | TimeoutError | ConnectionError | WorkerDiedError):
            return TRANSIENT
        if isinstance(err, OSError) and not isinstance(err, OpenDRPError):
            # The middleware checks that inputs exist before a task runs, so an I/O error while it runs is
            # the file system's or the node's doing.
            return TRANSIENT
        names = _type_names(err)
        if names & _TRANSIENT_TYPE_NAMES or any(m in str(err).lower() for m in _TRANSIENT_MESSAGES):
            return TRANSIENT
    return ALGORITHM


def inject_fault(label: str) -> None:
    """Test-only hook run by a worker before each quantum: fire a configured fault once per campaign.

    Controlled by `FAULT_ENV` (``oserror@calibrateImage``) and `FAULT_STATE_ENV` (a directory); never set in
    production.  A fault fires once in all processes together: the first worker to create its marker file
    raises it.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    state = Path(os.environ.get(FAULT_STATE_ENV, "."))
    for item in spec.split(","):
        kind, _, target = item.strip().partition("@")
        if target != label:
            continue
        try:
            fd = os.open(state / f"fault-{kind}-{label}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        if kind == "oserror":
            raise OSError(errno.EIO, f"injected I/O error in {label}")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "config":
            raise ConfigurationError(f"injected configuration error in {label}", fix="test only")
