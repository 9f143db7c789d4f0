"""Checkpoints in an object store (S3 and S3-compatible stores through s3fs, or any fsspec
file system), listed with a persisted cursor and downloaded to a bounded local cache.

Layout: ``<root>/<run>/<checkpoint>/<files>``. Each scan lists the run folders, then in each
run only the checkpoint folders after the run's cursor (S3 ``StartAfter``), plus those still
pending or failed. The cursor moves past a folder only once it is taken (``confirm``, after the
watcher has recorded it) and nothing before it is still open; so a restart, even in the middle
of a listing, lists neither everything again nor skips anything, and a taken checkpoint is not
taken twice. Names must sort in the order they are written (zero-padded steps:
``step-000100``); see docs/sources.md.

A folder is complete, in this order, when a ready marker is present; when its shard index lists
only shards that are present with the size their safetensors header gives, beside
``config.json`` and a tokenizer; or when nothing in it changed for the quiet period and no
file is still being written. Only a complete folder is downloaded; it is then validated and
hashed like a local one (``read_checkpoint``).
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from tripwire.errors import CheckpointError
from tripwire.settings import Settings
from tripwire.sources.base import (
    DiscoveredCheckpoint,
    DiscoveryFailure,
    PendingCheckpoint,
    ScanResult,
)
from tripwire.sources.hashing import HashCache
from tripwire.sources.layout import (
    CONFIG_NAME,
    DEFAULT_READY_MARKERS,
    IN_PROGRESS_SUFFIXES,
    INDEX_NAME,
    SIDECAR_NAME,
    TOKENIZER_FILE_SETS,
    TRAINER_STATE_PATTERNS,
    is_pickle_weights,
)
from tripwire.sources.local import read_checkpoint
from tripwire.sources.metadata import load_sidecar, step_from_name
from tripwire.sources.object_cache import CheckpointCache, listing_key
from tripwire.sources.object_cursor import Cursor, CursorStore, RunCursor, compact
from tripwire.store.db import Database

log = logging.getLogger(__name__)

MAX_INDEX_DOWNLOAD = 64 * 1024 * 1024
"""A shard index larger than this (bytes) is not read from the store."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    size_bytes: int
    etag: str
    """The store's ETag (or the modification time where there is none)."""
    mtime_s: float


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class ObjectStoreSource:
    """Finds checkpoints under ``root`` (``s3://bucket/prefix``) of the fsspec file system
    ``fs``; ``cursors`` keeps the listing position, ``cache`` the downloaded copies."""

    def __init__(
        self,
        root: str,
        fs: Any,
        *,
        cursors: CursorStore,
        cache: CheckpointCache,
        quiet_period_s: float = 30.0,
        ready_markers: tuple[str, ...] = DEFAULT_READY_MARKERS,
        allow_pickle: bool = False,
        hash_cache: HashCache | None = None,
        page_size: int = 1000,
        max_ready_per_scan: int = 16,
        full_sweep_every: int = 0,
    ) -> None:
        self.root = root.rstrip("/")
        self.fs = fs
        self.cursors = cursors
        self.cache = cache
        self.quiet_period_s = quiet_period_s
        self.ready_markers = tuple(ready_markers)
        self.allow_pickle = allow_pickle
        self.hash_cache = hash_cache if hash_cache is not None else HashCache.in_memory()
        self.page_size = page_size
        self.max_ready_per_scan = max_ready_per_scan
        """Ready checkpoints a scan returns at most; the rest wait for the next one, so work
        is recorded (and the cursor moved) while a large backlog downloads."""
        self.full_sweep_every = full_sweep_every
        """Every this many scans (0: never) a scan lists each run from its start and takes any
        folder behind the cursor that was never recorded: a name that sorted before the
        cursor when it landed is found then."""
        self.downloads = 0
        """Checkpoints downloaded by this source (cache misses)."""
        self.listed = 0
        """Listing requests made by this source (pages and folders)."""
        self._bucket_path = (
            fs._strip_protocol(self.root) if hasattr(fs, "_strip_protocol") else self.root
        )

    # ------------------------------------------------------------ the cursor

    def _cursor(self) -> Cursor:
        return Cursor.model_validate(self.cursors.load(self.root) or {})

    def _save(self, cursor: Cursor) -> None:
        self.cursors.save(self.root, cursor.model_dump(mode="json"))

    def confirm(self, found: DiscoveredCheckpoint) -> None:
        """``found`` is recorded: the cursor moves past it (once nothing before it is open)."""
        if found.uri is None or not found.uri.startswith(self.root + "/"):
            return
        run, _, name = found.uri[len(self.root) + 1 :].rpartition("/")
        cursor = self._cursor()
        rc = cursor.runs.setdefault(run, RunCursor())
        if name > rc.after and name not in rc.taken:
            rc.taken.append(name)
        rc.open = [n for n in rc.open if n != name]
        compact(rc)
        self._save(cursor)
        self.cursors.remember(found.uri)

    # ------------------------------------------------------------ listing

    def _dirs(self, prefix: str, start_after: str) -> Iterator[str]:
        """Child folder names of ``prefix`` after ``start_after``, in key order."""
        if hasattr(self.fs, "call_s3"):
            bucket, _, key = prefix.partition("/")
            key_prefix = key + "/" if key else ""
            kwargs: dict[str, Any] = {
                "Bucket": bucket,
                "Prefix": key_prefix,
                "Delimiter": "/",
                "MaxKeys": self.page_size,
            }
            if start_after:
                kwargs["StartAfter"] = key_prefix + start_after
            while True:
                self.listed += 1
                page = self.fs.call_s3("list_objects_v2", **kwargs)
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(key_prefix) :].rstrip("/")
                    if name > start_after:
                        yield name
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return
                kwargs["ContinuationToken"] = token
        else:
            self.listed += 1
            try:
                entries = self.fs.ls(prefix, detail=True)
            except FileNotFoundError:
                return
            names = sorted(
                e["name"].rstrip("/").rsplit("/", 1)[-1]
                for e in entries
                if e["type"] == "directory"
            )
            yield from (n for n in names if n > start_after)

    def _files(self, prefix: str) -> dict[str, RemoteFile]:
        self.listed += 1
        self.fs.invalidate_cache(prefix)
        try:
            entries = self.fs.ls(prefix, detail=True)
        except FileNotFoundError:
            return {}
        files = {}
        for e in entries:
            if e.get("type") != "file":
                continue
            name = e["name"].rsplit("/", 1)[-1]
            modified = e.get("LastModified") or e.get("mtime") or e.get("created") or 0
            mtime = modified.timestamp() if hasattr(modified, "timestamp") else float(modified)
            etag = str(e.get("ETag") or e.get("etag") or f"{e['size']}-{mtime}")
            files[name] = RemoteFile(int(e["size"]), etag, mtime)
        return files

    # ------------------------------------------------------------ scanning

    def scan(self, now: float | None = None) -> ScanResult:
        """List what is new (and what is still open) and judge each checkpoint folder."""
        now = time.time() if now is None else now
        cursor = self._cursor()
        cursor.scans += 1
        sweep = self.full_sweep_every > 0 and cursor.scans % self.full_sweep_every == 0
        ready: list[DiscoveredCheckpoint] = []
        pending: list[PendingCheckpoint] = []
        failed: list[DiscoveryFailure] = []
        for run in list(self._dirs(self._bucket_path, "")):
            if len(ready) >= self.max_ready_per_scan:
                break
            rc = cursor.runs.setdefault(run, RunCursor())
            run_path = _join(self._bucket_path, run)
            names = sorted(set(rc.open) | set(self._new(run_path, rc)))
            if sweep:
                names = sorted(set(names) | set(self._missed(run, run_path, rc)))
            still_open = []
            for name in names:
                if len(ready) >= self.max_ready_per_scan:
                    still_open += [n for n in names if n >= name and n in rc.open]
                    break
                outcome = self._judge(run, name, now)
                if outcome is None:
                    continue  # nothing there (removed): forgotten
                if isinstance(outcome, DiscoveredCheckpoint):
                    ready.append(outcome)
                else:
                    still_open.append(name)
                    (pending if isinstance(outcome, PendingCheckpoint) else failed).append(outcome)  # type: ignore[arg-type]
            rc.open = sorted(set(still_open))
            compact(rc)
        self._save(cursor)
        return ScanResult(ready=ready, pending=pending, failed=failed, scanned_at=now)

    def _missed(self, run: str, run_path: str, rc: RunCursor) -> list[str]:
        """Folders behind the cursor never recorded (they landed out of order)."""
        behind = [n for n in self._dirs(run_path, "") if n <= rc.after and n not in rc.open]
        missed = []
        for start in range(0, len(behind), 500):
            chunk = behind[start : start + 500]
            uris = {f"{self.root}/{run}/{n}": n for n in chunk}
            known = self.cursors.recorded(list(uris))
            missed += [n for uri, n in uris.items() if uri not in known]
        if missed:
            log.warning(
                "%s: %d folder(s) behind the cursor were never taken", self.root, len(missed)
            )
        return missed

    def _new(self, run_path: str, rc: RunCursor) -> Iterator[str]:
        taken = set(rc.taken)
        for name in self._dirs(run_path, rc.after):
            if name not in taken:
                yield name

    def _judge(
        self, run: str, name: str, now: float
    ) -> DiscoveredCheckpoint | PendingCheckpoint | DiscoveryFailure | None:
        uri = f"{self.root}/{run}/{name}"
        prefix = _join(self._bucket_path, run, name)
        where = uri
        try:
            files = self._files(prefix)
            if not files:
                return None
            waiting = self._incomplete(prefix, files, now)
            if waiting is not None:
                return PendingCheckpoint(path=where, reason=waiting[1], waiting_for=waiting[0])
            folder = self._download(uri, prefix, files)
            return self._identify(folder, uri, run, name)
        except CheckpointError as exc:
            return DiscoveryFailure(path=where, reason=exc.reason)
        except OSError as exc:
            return PendingCheckpoint(
                path=where, reason=f"the store could not be read ({exc}); tried again next scan"
            )

    def _incomplete(
        self, prefix: str, files: dict[str, RemoteFile], now: float
    ) -> tuple[Literal["shards", "quiet period", "file being written"], str] | None:
        """None when complete; else what is awaited and why."""
        if any(m in files for m in self.ready_markers):
            return None
        if INDEX_NAME in files and self._index_complete(prefix, files):
            return None
        writing = sorted(n for n in files if n.endswith(IN_PROGRESS_SUFFIXES))
        if writing:
            return "file being written", f"waiting for {', '.join(writing)} to be finished"
        quiet = now - max(f.mtime_s for f in files.values())
        if INDEX_NAME in files:
            return "shards", "waiting for the shards the index lists, with their full sizes"
        if quiet < self.quiet_period_s:
            return (
                "quiet period",
                f"waiting for quiet period ({quiet:.1f} s of {self.quiet_period_s:.1f} s)",
            )
        return None

    def _index_complete(self, prefix: str, files: dict[str, RemoteFile]) -> bool:
        if files[INDEX_NAME].size_bytes > MAX_INDEX_DOWNLOAD or CONFIG_NAME not in files:
            return False
        if not any(all(n in files for n in names) for names in TOKENIZER_FILE_SETS):
            return False
        try:
            index = json.loads(self.fs.cat_file(f"{prefix}/{INDEX_NAME}"))
            shards = sorted(set(index["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            return False  # not parsable yet (or broken): the quiet period decides
        for shard in shards:
            if not isinstance(shard, str) or "/" in shard or shard not in files:
                return False
            if files[shard].size_bytes != self._expected_size(f"{prefix}/{shard}"):
                return False
        return True

    def _expected_size(self, path: str) -> int | None:
        """8 + header length + the largest tensor end, from two range reads."""
        try:
            (length,) = struct.unpack("<Q", self.fs.cat_file(path, start=0, end=8))
            if length > 100 * 1024 * 1024:
                return None
            header = json.loads(self.fs.cat_file(path, start=8, end=8 + length))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
            return 8 + int(length) + max(ends, default=0)
        except (ValueError, KeyError, TypeError, struct.error):
            return None

    def _download(self, uri: str, prefix: str, files: dict[str, RemoteFile]) -> Path:
        wanted = {n: f for n, f in files.items() if _wanted(n, self.allow_pickle)}
        key = listing_key(uri, {n: (f.size_bytes, f.etag) for n, f in wanted.items()})
        cached = self.cache.lookup(key)
        if cached is not None:
            return cached
        incoming = self.cache.incoming()
        for name in sorted(wanted):
            self.fs.get_file(f"{prefix}/{name}", str(incoming / name))
        self.downloads += 1
        found = read_checkpoint(
            incoming, allow_pickle=self.allow_pickle, hash_cache=self.hash_cache
        )
        return self.cache.put(key, found.content_hash, incoming)

    def _identify(self, folder: Path, uri: str, run: str, name: str) -> DiscoveredCheckpoint:
        found = read_checkpoint(folder, allow_pickle=self.allow_pickle, hash_cache=self.hash_cache)
        sidecar = folder / SIDECAR_NAME
        declared = load_sidecar(sidecar) if sidecar.is_file() else None
        run_name = declared.run if declared is not None and declared.run else run
        step = (
            declared.step
            if declared is not None and declared.step is not None
            else step_from_name(name)
        )
        metadata = found.metadata.model_copy(update={"run": run_name, "step": step})
        return found.model_copy(
            update={"run": run_name, "step": step, "metadata": metadata, "uri": uri}
        )

    # ------------------------------------------------------------ the CheckpointSource rest

    def fetch(self, uri: str) -> DiscoveredCheckpoint:
        """The checkpoint at ``uri`` (announced through the webhook), downloaded and identified
        as if found by a scan (its run from its place under ``root``); taken as complete."""
        uri = uri.rstrip("/")
        prefix = self.fs._strip_protocol(uri) if hasattr(self.fs, "_strip_protocol") else uri
        files = self._files(prefix)
        if not files:
            raise CheckpointError(Path(uri), "nothing at this URI; upload the files first")
        relative = uri[len(self.root) + 1 :] if uri.startswith(self.root + "/") else uri
        run, _, name = relative.rpartition("/")
        run = run or self.root.rsplit("/", 1)[-1]
        return self._identify(self._download(uri, prefix, files), uri, run, name)

    def wait_for_change(self, timeout_s: float) -> bool:
        """Object stores send no events here: sleeps ``timeout_s`` and returns False."""
        time.sleep(max(timeout_s, 0.0))
        return False

    def close(self) -> None:
        """Nothing to release."""


def is_uri(root: str) -> bool:
    """Whether a watched root is an object-store prefix (``s3://...``), not a folder."""
    return "://" in root and not root.startswith("file://")


def object_store_source(
    root: str, settings: Settings, db: Database, hash_cache: HashCache | None = None
) -> ObjectStoreSource:
    """An object-store source configured by ``TRIPWIRE_*`` settings: the endpoint
    (``TRIPWIRE_S3_ENDPOINT_URL``; credentials from the usual AWS variables or files), a cursor
    in the database, a cache of ``TRIPWIRE_OBJECT_CACHE_BYTES`` under ``<home>/objects``."""
    import fsspec

    from tripwire.store.cursors import DatabaseCursors

    protocol = root.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol == "s3" and settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    return ObjectStoreSource(
        root,
        fsspec.filesystem(protocol, **options),
        cursors=DatabaseCursors(db),
        cache=CheckpointCache(settings.home / "objects", settings.object_cache_bytes),
        quiet_period_s=settings.quiet_period_s,
        allow_pickle=settings.allow_pickle,
        hash_cache=hash_cache,
        full_sweep_every=settings.object_full_sweep_every,
    )


def _wanted(name: str, allow_pickle: bool) -> bool:
    """Files downloaded: all but trainer state (optimizer, scheduler: often larger than the
    weights) and, unless allowed, pickle weights."""
    if name == "training_args.bin" or any(fnmatch(name, p) for p in TRAINER_STATE_PATTERNS):
        return False
    return allow_pickle or not is_pickle_weights(name)
