"""Checkpoints that land in a local (or mounted) directory."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from types import TracebackType

from tripwire.errors import CheckpointError
from tripwire.settings import Settings
from tripwire.sources.base import (
    DiscoveredCheckpoint,
    DiscoveryFailure,
    Outcome,
    PendingCheckpoint,
    ScanResult,
)
from tripwire.sources.classify import Rules, classify
from tripwire.sources.hashing import HashCache
from tripwire.sources.layout import DEFAULT_READY_MARKERS, is_candidate
from tripwire.sources.parsed import ParsedFiles
from tripwire.sources.walk import FolderWalk
from tripwire.sources.watch import ChangeWatcher


class LocalDirectorySource:
    """Finds Hugging Face checkpoint directories anywhere under ``root``.

    ``scan`` reports each candidate directory (one holding ``config.json``, weights or a ready
    marker) as ready, pending or failed. ``wait_for_change`` lets a watch loop sleep until files
    land. Use as a context manager, or call ``close``, to stop the watcher thread.

    Without ``hash_cache`` file hashes are cached in memory for the life of the source.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        quiet_period_s: float = 30.0,
        ready_markers: tuple[str, ...] = DEFAULT_READY_MARKERS,
        allow_pickle: bool = False,
        hash_cache: HashCache | None = None,
    ) -> None:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise CheckpointError(
                resolved, "the directory to watch does not exist or is not a directory"
            )
        if quiet_period_s < 0:
            raise ValueError(f"quiet_period_s must be >= 0, got {quiet_period_s}")
        self.root = resolved
        self.rules = Rules(resolved, quiet_period_s, tuple(ready_markers), allow_pickle)
        self._owns_cache = hash_cache is None
        self.hash_cache = hash_cache if hash_cache is not None else HashCache.in_memory()
        self.parsed = ParsedFiles()
        """Parsed configs, shard indexes and sidecars, kept while their files are unchanged."""
        self._watcher = ChangeWatcher(resolved)
        self.folders = FolderWalk(resolved)
        """The walk, remembering folder listings between scans (its counters: the last scan)."""

    @classmethod
    def from_settings(cls, root: Path | str, settings: Settings) -> LocalDirectorySource:
        """A source configured by ``TRIPWIRE_*`` settings, caching hashes in ``<home>``."""
        cache = HashCache(settings.home / "file-hashes.db")
        source = cls(
            root,
            quiet_period_s=settings.quiet_period_s,
            allow_pickle=settings.allow_pickle,
            hash_cache=cache,
        )
        source._owns_cache = True
        return source

    def scan(self, now: float | None = None) -> ScanResult:
        """Walk ``root`` once and judge every candidate checkpoint directory.

        ``now`` (Unix time, s; default the current time) is what the quiet period is measured
        against. One bad checkpoint never stops the others: it is reported in ``failed``.
        """
        now = time.time() if now is None else now
        ready: list[DiscoveredCheckpoint] = []
        pending: list[PendingCheckpoint] = []
        failed: list[DiscoveryFailure] = []
        unlisted: list[Path] = []
        for outcome in self._walk(now, unlisted):
            if isinstance(outcome, DiscoveredCheckpoint):
                ready.append(outcome)
            elif isinstance(outcome, PendingCheckpoint):
                pending.append(outcome)
            else:
                failed.append(outcome)
        return ScanResult(
            ready=sorted(ready, key=lambda c: c.path),
            pending=sorted(pending, key=lambda c: c.path),
            failed=sorted(failed, key=lambda c: c.path),
            unlisted=sorted(unlisted),
            scanned_at=now,
        )

    def wait_for_change(self, timeout_s: float) -> bool:
        """Block until files change under ``root`` (True) or ``timeout_s`` passes (False).

        A hint only, to wake a watch loop early: keep rescanning periodically, since file events
        are missed on network file systems. The watcher starts on the first call (or on
        ``__enter__``); changes made before it started are found by the next scan.
        """
        return self._watcher.wait(timeout_s)

    def close(self) -> None:
        """Stop the watcher thread and close the hash cache if the source created it."""
        self._watcher.stop()
        if self._owns_cache:
            self.hash_cache.close()

    def __enter__(self) -> LocalDirectorySource:
        self._watcher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _walk(self, now: float, unlisted: list[Path]) -> list[Outcome]:
        """Judge every candidate directory; report symlinked folders that lead outside root.

        Symlinked folders are never followed: one inside ``root`` is found at its real place.
        Folders that cannot be listed are added to ``unlisted``. Unchanged folders are not
        listed again, and unchanged ready checkpoints not judged again (``walk.FolderWalk``).
        """
        outcomes: list[Outcome] = []

        def unlistable(exc: OSError) -> None:
            failure = unlistable_failure(exc, self.root)
            if failure is not None:
                unlisted.append(Path(failure.path))
                outcomes.append(failure)

        def symlink(link: Path) -> None:
            if not link.resolve().is_relative_to(self.root):
                reason = (
                    f"symlink to {link.resolve()}, outside the watched root {self.root}; "
                    "copy the checkpoint in, or watch the directory it lives in"
                )
                outcomes.append(DiscoveryFailure(path=link, reason=reason, unsafe=True))

        found = self.folders.walk(
            lambda names: is_candidate(names, self.rules.ready_markers),
            lambda path: classify(path, self.rules, self.hash_cache, now, parsed=self.parsed),
            symlink,
            unlistable,
        )
        return outcomes + found


GONE_ERRNOS = (errno.ENOENT, errno.ENOTDIR)
"""A folder that is no longer there when the walk reaches it was renamed or removed meanwhile."""


def unlistable_failure(exc: OSError, root: Path) -> DiscoveryFailure | None:
    """What a folder that ``os.walk`` could not list means.

    A folder renamed or removed between listing its parent and listing it (a trainer's
    copy-then-rename) is no failure: the scan finds it at its new place, now or next time.
    Only a refusal to read is met with "give Tripwire read access".
    """
    if exc.errno in GONE_ERRNOS:
        return None
    path = Path(exc.filename or root)
    if isinstance(exc, PermissionError):
        reason = f"cannot list the folder ({exc.strerror}); give Tripwire read access to it"
    else:
        reason = f"cannot list the folder ({exc.strerror or exc}); it is tried again at each scan"
    return DiscoveryFailure(path=path, reason=reason)


def read_checkpoint(
    directory: Path | str, *, allow_pickle: bool = False, hash_cache: HashCache | None = None
) -> DiscoveredCheckpoint:
    """Validate and identify one checkpoint directory that a person named (``tripwire eval``).

    The directory is taken as complete (no marker or quiet period needed). Its parent plays the
    part of the root: symlinks must stay inside it, and the run is named after it.
    Raises ``CheckpointError`` (``UnsafeCheckpointError`` for a safety refusal) with the reason.
    """
    path = Path(directory).expanduser().resolve()
    if not path.is_dir():
        raise CheckpointError(path, "not a directory; pass a Hugging Face checkpoint folder")
    rules = Rules(path.parent, 0.0, DEFAULT_READY_MARKERS, allow_pickle)
    cache = hash_cache if hash_cache is not None else HashCache.in_memory()
    try:
        outcome = classify(path, rules, cache, time.time(), assume_complete=True)
    finally:
        if hash_cache is None:
            cache.close()
    if isinstance(outcome, DiscoveryFailure):
        raise outcome.as_error()
    if isinstance(outcome, PendingCheckpoint):
        raise CheckpointError(path, outcome.reason)
    return outcome
