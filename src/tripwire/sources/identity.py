"""Does a folder still hold the checkpoint it held? A cheap fingerprint first, the hash if not.

A checkpoint's identity is the content hash of its weights and ``config.json``
(``tripwire.sources.hashing``). Re-hashing gigabytes before every job would be slow, so
discovery also records a fingerprint of the same files: each one's name, size, mtime_ns and
inode. A job compares the folder's fingerprint now with the recorded one; only when they differ
(a file was rewritten, touched, copied back) is the content hash recomputed, through the
``HashCache``, which itself re-reads only the files whose stat changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tripwire.sources.hashing import HashCache, content_hash
from tripwire.sources.layout import DirListing, list_dir

log = logging.getLogger(__name__)

FINGERPRINT_SCHEMA_VERSION: Literal[1] = 1


class FileStamp(BaseModel):
    """One identity-bearing file as the file system describes it (not its contents)."""

    model_config = ConfigDict(frozen=True)

    name: str
    """File name, relative to the checkpoint folder."""
    size_bytes: int
    mtime_ns: int
    inode: int


class Fingerprint(BaseModel):
    """The stat of every file that enters a checkpoint's content hash, sorted by name."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = FINGERPRINT_SCHEMA_VERSION
    files: tuple[FileStamp, ...]

    @classmethod
    def of(cls, listing: DirListing) -> Fingerprint:
        """The fingerprint of a folder's identity files, from the stat its listing took."""
        entries = [listing.files[name] for name in sorted(listing.identity_files())]
        return cls(
            files=tuple(
                FileStamp(name=e.name, size_bytes=e.size_bytes, mtime_ns=e.mtime_ns, inode=e.inode)
                for e in entries
            )
        )

    @classmethod
    def of_folder(cls, directory: Path) -> Fingerprint:
        """The fingerprint of a checkpoint folder as it is now."""
        return cls.of(list_dir(directory))


def hash_listing(listing: DirListing, cache: HashCache) -> str:
    """The content hash of a folder's identity files (weights and config), through the cache."""
    names = listing.identity_files()
    return content_hash([(name, cache.hash_file(listing.files[name].path)) for name in names])


@dataclass(frozen=True)
class LocationCheck:
    """What one known location of a checkpoint holds now."""

    path: Path
    matches: bool
    """It holds the expected content."""
    how: Literal["fingerprint", "hash", "missing", "no weights"]
    """``fingerprint``: the files' stat is unchanged since discovery; ``hash``: recomputed."""
    found_hash: str | None = None
    """The content hash found (``hash`` only)."""
    fingerprint: Fingerprint | None = None
    """The fingerprint now, to tell later whether the folder changed again."""

    def describe(self, expected: str) -> str:
        """What this location holds, for a refusal's reason."""
        if self.how == "missing":
            return f"{self.path} no longer exists"
        if self.how == "no weights":
            return f"{self.path} holds no weights now"
        if self.matches:
            return f"{self.path} holds {expected}"
        return f"{self.path} now holds {self.found_hash} (expected {expected})"


def check_location(
    path: Path, expected_hash: str, recorded: Fingerprint | None, cache: HashCache
) -> LocationCheck:
    """Whether ``path`` still holds the content ``expected_hash``.

    Raises ``OSError`` (``FileChangedError`` included) when the folder cannot be read or is
    being written: the caller decides whether that is worth a retry.
    """
    if not path.is_dir():
        return LocationCheck(path, False, "missing")
    listing = list_dir(path)
    if not listing.weight_files():
        return LocationCheck(path, False, "no weights")
    now = Fingerprint.of(listing)
    if recorded is not None and now == recorded:
        return LocationCheck(path, True, "fingerprint", fingerprint=now)
    found = hash_listing(listing, cache)
    if recorded is not None:
        log.info("%s changed on disk since discovery; its content hash was recomputed", path)
    return LocationCheck(path, found == expected_hash, "hash", found, now)
