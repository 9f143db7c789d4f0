"""Content hashes of checkpoints, with a persistent cache of file hashes.

Weights are large and scans are frequent, so each file's sha256 is cached under its
(absolute path, size, mtime_ns, inode): an unchanged file is never read twice. The cache is a
SQLite file in WAL mode written in one-statement transactions, so several processes (a watcher
and workers) can share it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

CHUNK_BYTES = 1024 * 1024
"""Files are streamed in chunks of this size, never read whole."""
BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process holding the SQLite lock."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (
    path TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""


class FileChangedError(OSError):
    """A file changed while it was being hashed; hash it again once it is still."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, streamed in ``CHUNK_BYTES`` chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(file_hashes: Iterable[tuple[str, str]]) -> str:
    """``"sha256:<hex>"`` over (relative file name, file sha256) pairs, in sorted name order.

    Paths outside the checkpoint do not enter, so the same files under two folders give the
    same hash.
    """
    digest = hashlib.sha256()
    for name, file_sha in sorted(file_hashes):
        digest.update(f"{name}\0{file_sha}\n".encode())
    return "sha256:" + digest.hexdigest()


class HashCache:
    """Persistent map from (absolute path, size, mtime_ns, inode) to a file's sha256.

    Use ``HashCache.in_memory()`` for a cache that lives only as long as the process.
    Safe to share between threads of one process and between processes.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.hashed_bytes = 0
        """Bytes read to compute hashes so far (cache misses only)."""
        self.hits = 0
        """Files whose hash came from the cache."""
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    @classmethod
    def in_memory(cls) -> HashCache:
        """A cache kept in this process only (the default of a source without one)."""
        return cls(":memory:")

    def hash_file(self, path: Path) -> str:
        """Hex sha256 of ``path``, read from the cache when the file has not changed.

        Raises ``FileChangedError`` if the file changes while it is read.
        """
        key = str(path.resolve())
        before = os.stat(key)
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM file_hash WHERE path = ? AND size_bytes = ? "
                "AND mtime_ns = ? AND inode = ?",
                (key, before.st_size, before.st_mtime_ns, before.st_ino),
            ).fetchone()
            if row is not None:
                self.hits += 1
                return str(row[0])
        sha = sha256_file(Path(key))
        after = os.stat(key)
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ino,
        ):
            raise FileChangedError(f"{key} changed while it was hashed")
        with self._lock:
            self.hashed_bytes += before.st_size
            self._db.execute(
                "INSERT OR REPLACE INTO file_hash (path, size_bytes, mtime_ns, inode, sha256) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, before.st_size, before.st_mtime_ns, before.st_ino, sha),
            )
        return sha

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
