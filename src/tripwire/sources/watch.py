"""Wake a watch loop early when files land, with watchdog's native observer.

File-system events are only a hint: inotify misses writes made on other NFS clients and can
run out of watches, so a watch loop still rescans periodically. If the observer cannot start,
``wait`` simply sleeps out its timeout and the periodic rescan does all the work.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from tripwire.sources.layout import is_skipped_dir

logger = logging.getLogger(__name__)

IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})
"""Reads, including the scan's own, must not wake the loop."""
STOP_TIMEOUT_S = 5.0
"""How long ``stop`` waits for the observer thread to end."""


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, changed: threading.Event) -> None:
        self._root = str(root)
        self._changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENT_TYPES:
            return
        paths = [os.fsdecode(event.src_path), os.fsdecode(event.dest_path)]
        if any(p and self._relevant(p) for p in paths):
            self._changed.set()

    def _relevant(self, path: str) -> bool:
        """False for paths inside folders a scan skips (hidden, ``.tmp``, ``.incomplete``)."""
        rel = os.path.relpath(path, self._root)
        parent_dirs = Path(rel).parts[:-1]
        return not any(is_skipped_dir(part) for part in parent_dirs)


class ChangeWatcher:
    """Sets a flag whenever something changes under ``root`` (recursively)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._changed = threading.Event()
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def running(self) -> bool:
        return self._observer is not None

    def start(self) -> None:
        """Start the observer thread; does nothing if it runs or could not start before."""
        with self._lock:
            if self._observer is not None or self._failed:
                return
            observer = Observer()
            observer.daemon = True
            try:
                observer.schedule(
                    _Handler(self.root, self._changed), str(self.root), recursive=True
                )
                observer.start()
            except OSError as exc:
                self._failed = True
                logger.warning(
                    "cannot watch %s for file events (%s); relying on periodic rescans",
                    self.root,
                    exc,
                )
                return
            self._observer = observer

    def wait(self, timeout_s: float) -> bool:
        """True as soon as a change is seen (since the last True), False after ``timeout_s``."""
        self.start()
        if self._changed.wait(timeout_s):
            self._changed.clear()
            return True
        return False

    def stop(self) -> None:
        """Stop and join the observer thread."""
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(STOP_TIMEOUT_S)
