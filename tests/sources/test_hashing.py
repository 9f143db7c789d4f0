"""File hashes, content hashes and the persistent hash cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from tripwire.sources import HashCache, content_hash, sha256_file
from tripwire.sources.hashing import CHUNK_BYTES


def write(path: Path, data: bytes, mtime_s: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime_s is not None:
        os.utime(path, (mtime_s, mtime_s))
    return path


def test_a_file_larger_than_one_chunk_hashes_like_hashlib(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_BYTES * 2 + 12345)
    path = write(tmp_path / "big.bin", data)

    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_content_hash_ignores_order_but_not_names_or_contents() -> None:
    pairs = [("model.safetensors", "a" * 64), ("config.json", "b" * 64)]

    digest = content_hash(pairs)

    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert content_hash(reversed(pairs)) == digest
    assert content_hash([("model-renamed.safetensors", "a" * 64), pairs[1]]) != digest
    assert content_hash([("model.safetensors", "c" * 64), pairs[1]]) != digest


def test_an_unchanged_file_is_hashed_once(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"x" * 1000)
    with HashCache(tmp_path / "cache.db") as cache:
        first = cache.hash_file(path)
        second = cache.hash_file(path)

        assert first == second == hashlib.sha256(b"x" * 1000).hexdigest()
        assert (cache.hashed_bytes, cache.hits) == (1000, 1)


def test_a_touched_or_rewritten_file_is_hashed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"old", mtime_s=1_000_000_000)
    with HashCache(tmp_path / "cache.db") as cache:
        cache.hash_file(path)
        os.utime(path, (1_000_000_100, 1_000_000_100))
        cache.hash_file(path)
        assert cache.hashed_bytes == 6

        write(path, b"new", mtime_s=1_000_000_200)
        assert cache.hash_file(path) == hashlib.sha256(b"new").hexdigest()
        assert cache.hashed_bytes == 9


def test_the_cache_is_shared_through_its_file_and_uses_wal(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"shared")
    db = tmp_path / "state" / "cache.db"
    with HashCache(db) as writer, HashCache(db) as reader:
        writer.hash_file(path)
        reader.hash_file(path)
        assert reader.hashed_bytes == 0

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_cache_can_be_used_from_several_threads(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"w{i}.bin", bytes([i]) * 100) for i in range(8)]
    errors: list[BaseException] = []
    with HashCache(tmp_path / "cache.db") as cache:

        def work() -> None:
            try:
                for p in paths:
                    cache.hash_file(p)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert not errors
        assert {cache.hash_file(p) for p in paths} == {sha256_file(p) for p in paths}


def test_an_in_memory_cache_needs_no_file(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"abc")
    with HashCache.in_memory() as cache:
        cache.hash_file(path)
        cache.hash_file(path)
        assert cache.hashed_bytes == 3
