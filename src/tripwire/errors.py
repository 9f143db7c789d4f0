"""Tripwire's exceptions.

Every error a user can cause is a ``TripwireError`` that carries its context and names the fix.
The CLI prints these in one or two lines, without a traceback, and exits non-zero.

    TripwireError
    ├── ConfigError            a suite, policy or settings file is invalid (file, field, value)
    │   ├── SuiteError
    │   │   └── SuiteChangedError      a suite's files changed after a job was created for it
    │   ├── PolicyError
    │   └── NotifyConfigError  the notification channels file (TRIPWIRE_NOTIFY_CONFIG) is invalid
    ├── CheckpointError        a checkpoint cannot be read or is refused (path, reason)
    │   ├── UnsafeCheckpointError   pickle weights without allow_pickle, or a path outside the roots
    │   └── CheckpointChangedError  no known location still holds the content a job was made for
    │       └── CheckpointGoneError  every known location is gone (deleted or moved away)
    ├── EvaluationError        lm-eval failed on a checkpoint (task, reason)
    ├── DataError              benchmark data cannot be imported (benchmark, file, layout)
    │   └── MissingDataError   a suite's benchmarks are not in the data store (each import command)
    ├── StoreError             the database is missing, unreachable or in an unexpected state
    ├── BrokerError            the Celery broker (TRIPWIRE_BROKER_URL) cannot be reached
    ├── DeviceError            the GPUs asked for (--gpus, TRIPWIRE_DEVICE) are not usable here
    ├── DeliveryError          a notification could not be delivered to its channel (retried)
    ├── JobError               a job cannot be claimed or run (job, reason)
    ├── TokenError             a token name is taken or unknown (name)
    └── ReviewError            a review action or a checkpoint lookup is refused (status, field)
        ├── CheckpointNotFound     no checkpoint matches an identifier (404)
        ├── AmbiguousCheckpoint    a prefix matches several checkpoints (409)
        ├── InvalidReview          a field of a review action is missing or wrong (422)
        └── ReviewConflict         the action does not fit the checkpoint's state (409)

Which errors a job retries and which fail it at once: ``tripwire.failures``.
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


class NotifyConfigError(ConfigError):
    """The notification channels file (``TRIPWIRE_NOTIFY_CONFIG``) is invalid."""


class CheckpointError(TripwireError):
    """A checkpoint cannot be read: missing files, corrupt weights, bad config."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint was refused by a safety setting (pickle weights, path outside the roots)."""


class CheckpointChangedError(CheckpointError):
    """No known location of a checkpoint still holds the content its job was created for.

    New weights written over an old path are a new checkpoint; scoring them as the old one
    would attach the wrong scores to it. The reason names each location and what it holds now.
    """


class CheckpointGoneError(CheckpointChangedError):
    """Every known location of a checkpoint is gone: deleted or moved away, before or while it
    was evaluated. Not the model's failure: if the same content is seen again, it is taken
    again."""


class SuiteChangedError(SuiteError):
    """A suite's files changed between the creation of a job and its run."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.problems = [reason]
        Exception.__init__(self, f"{self.path}: {reason}")


class EvaluationError(TripwireError):
    """lm-eval could not evaluate a checkpoint on a task."""


class DataError(TripwireError):
    """Benchmark data cannot be imported or read (``tripwire data import``)."""


class MissingDataError(DataError):
    """A suite needs benchmark data the local store does not hold; raised before any model
    loads, naming every missing benchmark and the command that imports it."""

    def __init__(self, suite: Path | str, missing: dict[str, list[str]], commands: list[str]):
        self.suite = Path(suite)
        self.missing = missing
        """Benchmark (or hub dataset) -> the suite tasks that need it."""
        self.commands = commands
        lines = [f"  - {name}: needed by {', '.join(tasks)}" for name, tasks in missing.items()]
        todo = "\n".join(f"    {c}" for c in commands)
        super().__init__(
            f"{self.suite}: benchmark data missing from the local store\n"
            + "\n".join(lines)
            + f"\n  import it first (docs/benchmarks.md):\n{todo}"
        )


class StoreError(TripwireError):
    """The database is missing, unreachable, or in an unexpected state."""


class BrokerError(TripwireError):
    """The Celery broker cannot be reached."""


class DeviceError(TripwireError):
    """The devices asked for (``tripwire worker --gpus``, ``TRIPWIRE_DEVICE=cuda``) are not
    usable on this machine: no CUDA build of torch, no driver, or fewer GPUs. The message names
    the fix."""


class DeliveryError(TripwireError):
    """A notification could not be delivered: the channel refused it, did not answer, or a
    secret it needs is not in the environment. The outbox retries it after a backoff.

    The message never holds a secret (a webhook URL's token, a password, a signing key).
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        """The receiver asked to wait at least this long (HTTP ``Retry-After``)."""
        super().__init__(message)


class JobError(TripwireError):
    """A job cannot be claimed or run."""


class TokenError(TripwireError):
    """A token cannot be created or revoked: the name is taken, or no token has it."""


class ReviewError(TripwireError):
    """A review action or a checkpoint lookup is refused; ``status`` is its HTTP status."""

    status: int = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        """The request field at fault, when one is (``comment``, ``decision_id``)."""
        super().__init__(message)


class CheckpointNotFound(ReviewError):
    """No checkpoint matches the identifier (a content hash or a prefix of one)."""

    status = 404


class AmbiguousCheckpoint(ReviewError):
    """A hash prefix matches more than one checkpoint: give more characters."""

    status = 409


class InvalidReview(ReviewError):
    """A field of a review action is missing or wrong (``field`` names it)."""

    status = 422


class ReviewConflict(ReviewError):
    """The action does not fit the checkpoint's state (releasing a checkpoint that is not held)."""

    status = 409
