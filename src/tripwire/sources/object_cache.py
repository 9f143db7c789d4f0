"""Local copies of checkpoints downloaded from an object store, keyed by content hash, bounded,
least recently used evicted first.

``<dir>/<hex of the content hash>/`` holds one checkpoint's files. ``<dir>/index.json`` maps
each listing seen (URI and every file's name, size and ETag) to its content hash, so a listing
seen before is never downloaded again, and keeps each entry's size and last use. A download is
written under ``<dir>/.incoming/`` and renamed into place once hashed: a crash leaves no
half-copied entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

INDEX_NAME = "index.json"
INCOMING = ".incoming"


class Entry(BaseModel):
    size_bytes: int
    last_used: float
    """Unix time (s) of the last ``get`` or ``put``."""


class Index(BaseModel):
    schema_version: int = 1
    listings: dict[str, str] = Field(default_factory=dict)
    """Listing key (``listing_key``) to content hash."""
    entries: dict[str, Entry] = Field(default_factory=dict)
    """Content hash to its cached folder's size and last use."""


def listing_key(uri: str, files: dict[str, tuple[int, str]]) -> str:
    """A digest of a remote folder's listing: its URI and each file's (size, ETag)."""
    blob = json.dumps([uri, sorted((k, v[0], v[1]) for k, v in files.items())])
    return hashlib.sha256(blob.encode()).hexdigest()


class CheckpointCache:
    """Downloaded checkpoints under ``directory``, at most ``max_bytes`` together (a single
    checkpoint larger than the bound is kept until the next one arrives)."""

    def __init__(self, directory: Path | str, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.evicted: list[str] = []
        """Content hashes evicted by this instance, oldest first."""

    def _load(self) -> Index:
        try:
            return Index.model_validate_json((self.directory / INDEX_NAME).read_text())
        except (OSError, ValueError):
            return Index()

    def _save(self, index: Index) -> None:
        tmp = self.directory / f".{INDEX_NAME}.{os.getpid()}"
        tmp.write_text(index.model_dump_json())
        tmp.replace(self.directory / INDEX_NAME)

    def folder(self, content_hash: str) -> Path:
        return self.directory / content_hash.removeprefix("sha256:")

    def lookup(self, key: str) -> Path | None:
        """The cached folder of a listing seen before (its use noted), or None."""
        with self._lock:
            index = self._load()
            found = index.listings.get(key)
            if found is None or found not in index.entries or not self.folder(found).is_dir():
                return None
            index.entries[found].last_used = time.time()
            self._save(index)
            return self.folder(found)

    def incoming(self) -> Path:
        """A fresh folder to download into (hidden: sources skip it)."""
        path = self.directory / INCOMING / f"{os.getpid()}-{time.time_ns()}"
        path.mkdir(parents=True)
        return path

    def put(self, key: str, content_hash: str, downloaded: Path) -> Path:
        """Move ``downloaded`` into place as ``content_hash`` (kept if already there: same
        content), remember ``key``, and evict least recently used entries over the bound."""
        target = self.folder(content_hash)
        with self._lock:
            if target.is_dir():
                shutil.rmtree(downloaded, ignore_errors=True)
            else:
                downloaded.rename(target)
            index = self._load()
            size = sum(f.stat().st_size for f in target.iterdir() if f.is_file())
            index.entries[content_hash] = Entry(size_bytes=size, last_used=time.time())
            index.listings[key] = content_hash
            self._evict(index, keep=content_hash)
            self._save(index)
        return target

    def _evict(self, index: Index, keep: str) -> None:
        total = sum(e.size_bytes for e in index.entries.values())
        for digest, entry in sorted(index.entries.items(), key=lambda kv: kv[1].last_used):
            if total <= self.max_bytes:
                break
            if digest == keep:
                continue
            shutil.rmtree(self.folder(digest), ignore_errors=True)
            del index.entries[digest]
            total -= entry.size_bytes
            self.evicted.append(digest)
        index.listings = {k: v for k, v in index.listings.items() if v in index.entries}

    def total_bytes(self) -> int:
        return sum(e.size_bytes for e in self._load().entries.values())
