"""Tripwire's exceptions.

Every error a user can cause is a ``TripwireError`` that carries its context and names the fix.
The CLI prints these in one or two lines, without a traceback, and exits non-zero.

    TripwireError
    ├── ConfigError            a suite, policy or settings file is invalid (file, field, value)
    │   ├── SuiteError
    │   └── PolicyError
    ├── CheckpointError        a checkpoint cannot be read or is refused (path, reason)
    │   └── UnsafeCheckpointError   pickle weights without allow_pickle, or a path outside the roots
    ├── EvaluationError        lm-eval failed on a checkpoint (task, reason)
    ├── StoreError             the database is missing or in an unexpected state
    └── JobError               a job cannot be claimed or run (job, reason)
"""

from __future__ import annotations

from pathlib import Path


class TripwireError(Exception):
    """Base of every error Tripwire raises on purpose."""


class ConfigError(TripwireError):
    """A configuration file is invalid.

    The message names the file, the field path, the bad value and what is allowed.
    """

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        joined = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: invalid\n{joined}")


class SuiteError(ConfigError):
    """A suite file (evals/*.yaml) is invalid."""


class PolicyError(ConfigError):
    """A policy file (triggers/*.yaml) is invalid."""


class CheckpointError(TripwireError):
    """A checkpoint cannot be read: missing files, corrupt weights, bad config."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint was refused by a safety setting (pickle weights, path outside the roots)."""


class EvaluationError(TripwireError):
    """lm-eval could not evaluate a checkpoint on a task."""


class StoreError(TripwireError):
    """The database is missing, unreachable, or in an unexpected state."""


class JobError(TripwireError):
    """A job cannot be claimed or run."""
