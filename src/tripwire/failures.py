"""Which failures of a job are transient (retried later) and which are permanent (fail at once).

The one table of it, used where the retry decision is made (``tripwire.jobs.pipeline``), by the
runner (which halves the batch on out-of-memory and must not wrap a transient I/O error into a
permanent ``EvaluationError``) and by the watch loop and the CLI (which report a transient
error in one line). The same table, with what happens in each case, is in
``docs/operations.md`` ("Transient and permanent failures").

    permanent   CheckpointError (corrupt, refused, missing, content changed), ConfigError
                (bad or changed suite or policy), DataError (benchmark data missing from the
                store: import it, then re-run), EvaluationError (lm-eval cannot load a task,
                out of memory at batch size 1), FileNotFoundError, NotADirectoryError,
                IsADirectoryError, PermissionError, out of memory outside the runner
    transient   OSError carrying an errno (EIO, ESTALE, ETIMEDOUT, ENOSPC, ...), ConnectionError,
                TimeoutError, a file changing while it is hashed, SQLAlchemy OperationalError,
                InterfaceError, DisconnectionError and pool TimeoutError, redis ConnectionError
                and TimeoutError, kombu OperationalError and ConnectionError, BrokerError,
                StoreError
    unexpected  anything else (most likely a bug): retried like a transient error, with the
                traceback kept in the job's error
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from tripwire.errors import (
    BrokerError,
    CheckpointError,
    ConfigError,
    DataError,
    EvaluationError,
    StoreError,
)
from tripwire.sources.hashing import FileChangedError


class FailureKind(enum.StrEnum):
    """What a job does after an error."""

    transient = "transient"
    """Likely to pass by itself: the job is retried after an exponential backoff."""
    permanent = "permanent"
    """Another attempt cannot fix it: the job fails at once with the reason."""
    unexpected = "unexpected"
    """Not in the table (most likely a bug): retried like a transient error, traceback kept."""


@dataclass(frozen=True)
class Failure:
    """An error classified: its kind and a one-line reason for the job's record."""

    kind: FailureKind
    reason: str


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    ConfigError,
    DataError,
    EvaluationError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
"""Errors another attempt cannot fix: a missing or unreadable file, a bad or changed input."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = tuple(
    {
        ConnectionError,
        TimeoutError,
        FileChangedError,
        BrokerError,
        StoreError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.DisconnectionError,
        sqlalchemy.exc.TimeoutError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        kombu.exceptions.OperationalError,
        kombu.exceptions.ConnectionError,
    }
)
"""Connection and I/O errors that usually pass: a database, broker or file server blipped."""


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA or CPU out-of-memory error: torch's ``OutOfMemoryError``, a ``RuntimeError``
    saying "out of memory" (older torch, other backends) or ``MemoryError``."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # never imported here: a process without torch has no OOM
    if torch is not None:
        oom = tuple(
            t
            for t in (getattr(torch, "OutOfMemoryError", None), _cuda_oom(torch))
            if isinstance(t, type)
        )
        if oom and isinstance(exc, oom):
            return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _cuda_oom(torch: object) -> object:
    cuda = getattr(torch, "cuda", None)
    return getattr(cuda, "OutOfMemoryError", None)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection or I/O error worth retrying after a pause.

    An ``OSError`` counts only when it carries an errno (the operating system reported it) and
    is not a missing or forbidden file: libraries such as transformers raise bare ``OSError``
    for a checkpoint they cannot use, which no retry fixes.
    """
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, OSError) and exc.errno is not None


def classify_failure(exc: BaseException) -> Failure:
    """The kind of ``exc`` and the reason to record."""
    if is_out_of_memory(exc):
        return Failure(
            FailureKind.permanent,
            f"out of memory outside the evaluation ({type(exc).__name__}: {exc}); "
            "the runner retries smaller batches itself, so this needs a larger device",
        )
    if isinstance(exc, PERMANENT_ERRORS):
        if isinstance(exc, CheckpointError | ConfigError | EvaluationError):
            return Failure(FailureKind.permanent, str(exc))
        return Failure(FailureKind.permanent, f"{type(exc).__name__}: {exc}")
    if is_transient(exc):
        return Failure(FailureKind.transient, f"{type(exc).__name__}: {exc}")
    return Failure(FailureKind.unexpected, f"{type(exc).__name__}: {exc}")
