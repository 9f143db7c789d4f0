"""The walk under a watched root, remembering what each folder held.

A periodic rescan of an idle root should cost next to nothing. Creating, removing or renaming
an entry in a folder changes the folder's modification time, so a folder whose time is unchanged
is not listed again: its sub-folders and files are taken from the last listing. A ready
checkpoint in such a folder is not judged again while each of its files keeps its size and
modification time (one ``stat`` a file): an in-place edit of ``tripwire.json`` or ``config.json``,
which changes no folder's time, is still seen. Pending and failed folders are judged at every
scan (a quiet period runs on the clock; a permission fixed changes no time).

A listing is trusted only once it was taken ``RACY_S`` after the folder's modification time:
an entry created in the same clock tick as the listing leaves the time unchanged, so such a
folder is listed again at the next scan (git's "racy clean" rule).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tripwire.sources.base import DiscoveredCheckpoint, Outcome
from tripwire.sources.layout import is_skipped_dir

RACY_S = 2.0
"""Seconds between a folder's (or file's) modification time and the listing (or ``stat``) of it
before the listing is trusted at later scans."""

Signature = tuple[tuple[str, int, int], ...]
"""(relative name, size in bytes, modification time in ns) of each file of a checkpoint."""


@dataclass
class Listed:
    """What a folder held when it was last listed."""

    mtime_ns: int
    """The folder's modification time at the listing."""
    trusted: bool
    """Listed ``RACY_S`` or more after ``mtime_ns``."""
    subdirs: list[tuple[str, bool]]
    """(name, is a symlink) of sub-folders (symlinks to folders included), sorted."""
    files: list[str]
    """Names of the other entries."""
    ready: DiscoveredCheckpoint | None = None
    """The folder's outcome when it was a ready checkpoint."""
    signature: Signature | None = None
    """Its files when it was judged ready; None when untrusted (racy) or not ready."""


class FolderWalk:
    """Walks a root, re-listing only folders whose modification time changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listed: dict[str, Listed] = {}
        self.listings = 0
        """Folders listed by the last walk (the rest came from memory)."""
        self.judged = 0
        """Candidate folders judged by the last walk (the rest were ready and unchanged)."""

    def walk(
        self,
        is_candidate: Callable[[list[str]], bool],
        judge: Callable[[Path], Outcome],
        on_symlink: Callable[[Path], None],
        on_error: Callable[[OSError], None],
    ) -> list[Outcome]:
        """Every candidate folder's outcome: remembered when unchanged, else ``judge``'s."""
        outcomes: list[Outcome] = []
        seen: dict[str, Listed] = {}
        self.listings = self.judged = 0
        stack = [str(self.root)]
        while stack:
            path = stack.pop()
            listed = self._list(path, on_error)
            if listed is None:
                continue
            seen[path] = listed
            for name, link in listed.subdirs:
                if link:
                    on_symlink(Path(path, name))
            if is_candidate(listed.files):
                outcomes.append(self._judge(Path(path), listed, judge))
            stack.extend(
                os.path.join(path, name) for name, link in reversed(listed.subdirs) if not link
            )
        self._listed = seen
        return outcomes

    def _list(self, path: str, on_error: Callable[[OSError], None]) -> Listed | None:
        try:
            mtime_ns = os.stat(path).st_mtime_ns
            known = self._listed.get(path)
            if known is not None and known.trusted and known.mtime_ns == mtime_ns:
                return known
            started_ns = time.time_ns()
            subdirs: list[tuple[str, bool]] = []
            files: list[str] = []
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=True):
                        if not is_skipped_dir(entry.name):
                            subdirs.append((entry.name, entry.is_symlink()))
                    else:
                        files.append(entry.name)
        except OSError as exc:
            on_error(exc)
            return None
        self.listings += 1
        trusted = started_ns - mtime_ns >= RACY_S * 1e9
        return Listed(mtime_ns, trusted, sorted(subdirs), sorted(files))

    def _judge(self, path: Path, listed: Listed, judge: Callable[[Path], Outcome]) -> Outcome:
        if listed.ready is not None and listed.signature is not None:
            names = [name for name, _, _ in listed.signature]
            if _signature(path, names) == listed.signature:
                return listed.ready
        self.judged += 1
        outcome = judge(path)
        listed.ready = outcome if isinstance(outcome, DiscoveredCheckpoint) else None
        listed.signature = _trusted_signature(path, listed.ready) if listed.ready else None
        return outcome


def _signature(path: Path, names: list[str]) -> Signature | None:
    """Size and modification time of each file (None when one is gone or is no file)."""
    out = []
    for name in names:
        try:
            st = os.stat(path / name)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _trusted_signature(path: Path, ready: DiscoveredCheckpoint) -> Signature | None:
    """What a ready checkpoint stands on (every file in its folder, and its weights wherever
    they are), to compare later scans with; None while a file is too recent to trust."""
    try:
        with os.scandir(path) as entries:
            names = {e.name for e in entries if e.is_file(follow_symlinks=True)}
    except OSError:
        return None
    found = _signature(path, sorted(names | set(ready.weight_files)))
    now_ns = time.time_ns()
    if found is None or any(now_ns - mtime < RACY_S * 1e9 for _, _, mtime in found):
        return None
    return found
