"""The watch loop: scan sources, ingest complete checkpoints, record failures, reconcile jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tripwire.failures import FailureKind, classify_failure
from tripwire.jobs.context import Context
from tripwire.jobs.pipeline import ingest, reconcile, record_failure
from tripwire.sources import LocalDirectorySource

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    """What one pass over the sources found."""

    new: list[str] = field(default_factory=list)
    """Checkpoints first seen in this pass, as ``run step N (hash)``."""
    ready: int = 0
    pending: int = 0
    failed: int = 0
    resent: int = 0


class Watcher:
    """Polls sources (woken early by file-system events) and feeds the pipeline."""

    def __init__(
        self,
        ctx: Context,
        sources: Sequence[LocalDirectorySource],
        scan_interval_s: float = 10.0,
        *,
        after_poll: Callable[[], object] | None = None,
    ) -> None:
        """``after_poll`` runs at the end of every scan (the notification outbox sender); an
        error in it is logged, and scanning goes on."""
        self.ctx = ctx
        self.sources = list(sources)
        self.scan_interval_s = scan_interval_s
        self.after_poll = after_poll
        self._failures_seen: set[tuple[str, str]] = set()
        self._ingested: set[tuple[str, str]] = set()
        """(content hash, path) pairs recorded by this process: later scans skip them. A
        restart forgets them, and ingesting again is a no-op, so nothing is lost either way."""

    def poll_once(self) -> ScanSummary:
        summary = ScanSummary()
        for source in self.sources:
            scan = source.scan()
            summary.pending += len(scan.pending)
            for failure in scan.failed:
                summary.failed += 1
                key = (str(failure.path), failure.reason)
                if key not in self._failures_seen:
                    self._failures_seen.add(key)
                    log.warning("cannot take %s: %s", failure.path, failure.reason)
                    record_failure(self.ctx, failure.path, failure.reason)
            for found in scan.ready:
                summary.ready += 1
                key = (found.content_hash, str(found.path))
                if key in self._ingested:
                    continue
                _, created = ingest(self.ctx, found)
                self._ingested.add(key)
                if created:
                    short = found.content_hash.removeprefix("sha256:")[:12]
                    summary.new.append(f"{found.run} step {found.step} ({short})")
        summary.resent = reconcile(self.ctx)
        if self.after_poll is not None:
            try:
                self.after_poll()
            except Exception:
                log.exception("after-scan hook failed; scanning goes on")
        return summary

    def run(
        self,
        stop: threading.Event,
        on_scan: Callable[[ScanSummary], None] | None = None,
    ) -> None:
        """Scan until ``stop`` is set; file events wake the loop before the interval ends."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                summary = self.poll_once()
            except Exception as exc:  # e.g. the database briefly unreachable: try again
                failure = classify_failure(exc)
                if failure.kind == FailureKind.transient:  # one line, not a traceback a scan
                    log.warning(
                        "scan failed (%s); retrying in %.1f s", failure.reason, self.scan_interval_s
                    )
                else:
                    log.exception("scan failed; retrying in %.1f s", self.scan_interval_s)
            else:
                if on_scan is not None:
                    on_scan(summary)
            remaining = max(self.scan_interval_s - (time.monotonic() - started), 0.05)
            deadline = time.monotonic() + remaining
            while not stop.is_set() and time.monotonic() < deadline:
                step = min(0.5, deadline - time.monotonic())
                if any(src.wait_for_change(step) for src in self.sources):
                    break
