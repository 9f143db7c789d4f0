"""What a source reports: checkpoints ready to evaluate, still pending, or failed.

Every candidate directory a scan sees lands in exactly one of the three lists, so nothing is
lost silently: pending ones are looked at again on the next scan, failed ones carry a reason a
person can act on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tripwire.errors import CheckpointError, UnsafeCheckpointError
from tripwire.sources.identity import Fingerprint
from tripwire.sources.metadata import CONTENT_HASH_PATTERN, CheckpointMetadata


class DiscoveredCheckpoint(BaseModel):
    """A complete, valid checkpoint, identified by the hash of its weights and config."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    path: Path
    """Resolved absolute checkpoint directory."""
    content_hash: str = Field(pattern=CONTENT_HASH_PATTERN)
    """``sha256:<hex>`` over the weight files and ``config.json`` (names and contents)."""
    run: str
    step: int | None
    metadata: CheckpointMetadata
    """The sidecar's fields, with ``run`` and ``step`` filled in when the sidecar left them out."""
    weight_files: list[str]
    """Weight file names, relative to ``path``, sorted."""
    total_bytes: int
    """Size of the weight files together."""
    format: Literal["safetensors", "pickle"]
    fingerprint: Fingerprint | None = None
    """Size, mtime and inode of each hashed file when it was hashed: a job compares it with
    the folder's to tell cheaply that the content is unchanged."""
    uri: str | None = None
    """Where an object-store source found it (``s3://bucket/run/step-100``); ``path`` is then
    the local copy in the download cache."""


WaitingFor = Literal[
    "shards", "quiet period", "file being written", "symlink target", "stable files"
]


class PendingCheckpoint(BaseModel):
    """A checkpoint not complete yet; a later scan looks at it again."""

    model_config = ConfigDict(frozen=True)

    path: Path | str
    """The folder, or the object-store URI (``s3://bucket/run/step-100``)."""
    reason: str
    """Why it is not taken yet, e.g. ``waiting for quiet period (12.0 s of 30.0 s)``."""
    waiting_for: WaitingFor = "quiet period"
    """What would make it complete: its missing ``shards``, the ``quiet period`` (or a ready
    marker), a ``file being written``, a ``symlink target``, or ``stable files`` (it changed
    while it was read)."""


class DiscoveryFailure(BaseModel):
    """A checkpoint that is complete but cannot be used, with the reason."""

    model_config = ConfigDict(frozen=True)

    path: Path | str
    """The folder, or the object-store URI."""
    reason: str
    """What is wrong and, where there is one, the fix."""
    unsafe: bool = False
    """Refused by a safety setting (pickle weights, a path outside the root)."""

    def as_error(self) -> CheckpointError:
        """The matching exception, for callers that raise rather than report."""
        cls = UnsafeCheckpointError if self.unsafe else CheckpointError
        return cls(self.path, self.reason)


class ScanResult(BaseModel):
    """One pass over a source; lists are sorted by path."""

    ready: list[DiscoveredCheckpoint] = Field(default_factory=list)
    pending: list[PendingCheckpoint] = Field(default_factory=list)
    failed: list[DiscoveryFailure] = Field(default_factory=list)
    unlisted: list[Path] = Field(default_factory=list)
    """Folders the scan could not list (also in ``failed``): what lies under them is unknown."""
    scanned_at: float
    """Unix time (s) the scan judged the quiet period against."""


Outcome = DiscoveredCheckpoint | PendingCheckpoint | DiscoveryFailure


class CheckpointSource(Protocol):
    """Where checkpoints land. Implementations: ``LocalDirectorySource``,
    ``ObjectStoreSource``."""

    @property
    def root(self) -> Path | str:
        """The folder or URI watched."""
        ...

    def scan(self, now: float | None = None) -> ScanResult:
        """Look at every candidate checkpoint once; ``now`` is Unix time in seconds."""
        ...

    def wait_for_change(self, timeout_s: float) -> bool:
        """Block until something may have changed (True) or ``timeout_s`` passed (False)."""
        ...

    def close(self) -> None:
        """Release threads and files."""
        ...
