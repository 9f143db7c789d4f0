"""Where cached model answers live: one SQLite file per checkpoint, the folder bounded in size.

The keys are made by ``tripwire.runner.responses`` (content hash, task identity, request);
this module only stores them, and imports no model library, so ``tripwire cache`` and the
settings that build a cache stay light.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tripwire.settings import Settings

_SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)"
_RESULTS = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT NOT NULL)"


@dataclass(frozen=True, slots=True)
class CacheInfo:
    checkpoints: int
    answers: int
    size_bytes: int
    max_bytes: int


def response_cache_for(settings: Settings) -> ResponseCache | None:
    """The response cache these settings describe (None when ``TRIPWIRE_RESPONSE_CACHE=false``)."""
    if not settings.response_cache:
        return None
    return ResponseCache(
        settings.response_cache_dir(), int(settings.response_cache_max_gb * 1024**3)
    )


class ResponseCache:
    """The answers of every checkpoint evaluated here, one SQLite file each, bounded in size."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _file(self, identity: str) -> Path:
        return self.root / identity[:2] / f"{identity}.sqlite"

    def open(self, identity: str) -> CheckpointAnswers:
        path = self._file(identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        return CheckpointAnswers(path)

    def files(self) -> list[Path]:
        return sorted(self.root.glob("*/*.sqlite")) if self.root.is_dir() else []

    def info(self) -> CacheInfo:
        files = self.files()
        answers = 0
        for path in files:
            with sqlite3.connect(path) as db:
                answers += int(db.execute("SELECT count(*) FROM answers").fetchone()[0])
        size = sum(_size(p) for p in files)
        return CacheInfo(len(files), answers, size, self.max_bytes)

    def clear(self) -> int:
        """Remove every cached answer; the number of checkpoint files removed."""
        files = self.files()
        for path in files:
            _remove(path)
        return len(files)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the checkpoints used longest ago until the folder fits its bound."""
        files = sorted(self.files(), key=lambda p: p.stat().st_mtime)
        total = sum(_size(p) for p in files)
        removed: list[Path] = []
        for path in files:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            total -= _size(path)
            _remove(path)
            removed.append(path)
        return removed


def _size(path: Path) -> int:
    return sum(
        p.stat().st_size
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if p.exists()
    )


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def tokenizer_digest(checkpoint: Path) -> str:
    """A hash of the checkpoint folder's files other than weights and config (tokenizer and
    generation settings): they change answers as much as the weights do."""
    import hashlib

    from tripwire.sources.layout import list_dir

    listing = list_dir(checkpoint)
    skip = set(listing.identity_files())
    hashes = []
    for name in sorted(listing.files):
        if name in skip or name.startswith(".") or name == "tripwire.json":
            continue
        hashes.append((name, hashlib.sha256(listing.files[name].path.read_bytes()).hexdigest()))
    return hashlib.sha256(json.dumps(hashes).encode()).hexdigest()


class CheckpointAnswers:
    """One checkpoint's cached answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_RESULTS)
        os.utime(path)  # the eviction order is the order of last use

    def result(self, key: str) -> str | None:
        """A whole suite's result stored under ``key`` (JSON), if this checkpoint has one."""
        row = self._db.execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else None

    def put_result(self, key: str, result: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results (key, result) VALUES (?, ?)", (key, result)
        )

    def get(self, keys: Iterable[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, answer in self._db.execute(
                f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk
            ):
                found[key] = json.loads(answer)
        return found

    def put(self, answers: dict[str, Any]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in answers.items()],
            )

    def close(self) -> None:
        self._db.close()
