"""The small JSON files of a checkpoint (``config.json``, the shard index, the sidecar), read
with a size limit and parsed once per version of the file.

A scan looks at every checkpoint folder every few seconds. Parsing a 100 MB ``config.json``
each time costs a core; so each parse (or its refusal) is kept under the file's (path, size,
mtime_ns, inode), and an unchanged file is never read again. A file over its limit is refused
from its size alone, without reading it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tripwire.errors import CheckpointError
from tripwire.sources.layout import FileEntry

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""``config.json`` above this is refused: a model config is a few kilobytes (a large label map
makes it a megabyte)."""
MAX_INDEX_BYTES = 64 * 1024 * 1024
"""``model.safetensors.index.json`` above this is refused (the largest real ones are a few MB)."""
MAX_SIDECAR_BYTES = 1024 * 1024
"""``tripwire.json`` above this is refused."""
MAX_ENTRIES = 4096
"""Parsed files kept per cache (least recently used dropped first)."""

T = TypeVar("T")
_Key = tuple[str, str, int, int, int]


def read_limited(path: Path, size_bytes: int, limit_bytes: int) -> str:
    """The text of a small file, refused (``CheckpointError``) when it is over ``limit_bytes``."""
    if size_bytes > limit_bytes:
        raise CheckpointError(
            path.parent,
            f"{path.name} is {_mb(size_bytes)}, over the {_mb(limit_bytes)} Tripwire reads for "
            f"it; a checkpoint's {path.name} is a few kilobytes: re-save it",
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            path.parent, f"cannot read {path.name}: not UTF-8 text ({exc})"
        ) from exc


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


class ParsedFiles:
    """Parse results (or refusals) keyed by what the file system says about the file.

    Shared by the threads of one source; ``parses`` and ``hits`` count what it saved.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.parses = 0
        """Files read and parsed (cache misses)."""
        self.hits = 0
        """Parses served from the cache."""
        self._entries: OrderedDict[_Key, tuple[bool, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: str, entry: FileEntry, parse: Callable[[Path, int], T]) -> T:
        """``parse(path, size_bytes)``'s result for this version of the file.

        A ``CheckpointError`` is kept too, and raised again (as a new error with the same
        reason) while the file is unchanged.
        """
        key = (kind, str(entry.path), entry.size_bytes, entry.mtime_ns, entry.inode)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if found is not None:
            ok, value = found
            if ok:
                return value  # type: ignore[no-any-return]
            raise CheckpointError(value[0], value[1])
        self.parses += 1
        try:
            result = parse(entry.path, entry.size_bytes)
        except CheckpointError as exc:
            self._put(key, (False, (exc.path, exc.reason)))
            raise
        self._put(key, (True, result))
        return result

    def _put(self, key: _Key, value: tuple[bool, Any]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
