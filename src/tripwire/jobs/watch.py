"""The watch loop: scan sources, ingest complete checkpoints, record what waits and what failed;
and, on a timer of its own, reconcile jobs.

One bad folder never stops a scan: a checkpoint that cannot be judged, or recorded, is that
folder's failure, and the scan goes on with the others. Reconciling runs in its own thread, so
a scan that hashes new weights for minutes, or fails, never holds up the re-sending of lost
work. Both leave a trace in the database for ``status``, ``/healthz`` and ``/metrics``
(``tripwire.store.source_state``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tripwire.failures import FailureKind, classify_failure
from tripwire.jobs.context import Context
from tripwire.jobs.pipeline import already_ingested, ingest, reconcile
from tripwire.sources import CheckpointSource, DiscoveredCheckpoint, ScanResult
from tripwire.store import source_state
from tripwire.store.models import utcnow
from tripwire.store.source_state import NoteKind, Observed

log = logging.getLogger(__name__)


PENDING_RESCAN_S = 0.5
"""Seconds between scans while a checkpoint is pending: its ready marker may land in a folder
whose file events are reported late or lost (one renamed into place a moment earlier), and a
rescan of unchanged folders costs little (``sources.walk``)."""


@dataclass
class ScanSummary:
    """What one pass over the sources found."""

    new: list[str] = field(default_factory=list)
    """Checkpoints first seen in this pass, as ``run step N (hash)``."""
    ready: int = 0
    pending: int = 0
    failed: int = 0
    resent: int = 0
    announced: int = 0
    """Checkpoints announced through the webhook and recorded in this pass."""


class Watcher:
    """Polls sources (woken early by file-system events) and feeds the pipeline."""

    def __init__(
        self,
        ctx: Context,
        sources: Sequence[CheckpointSource],
        scan_interval_s: float = 10.0,
        *,
        after_poll: Callable[[], object] | None = None,
        reconcile_interval_s: float | None = None,
    ) -> None:
        """``after_poll`` runs at the end of every scan (the notification outbox sender); an
        error in it is logged, and scanning goes on. ``reconcile_interval_s`` (default the scan
        interval) is how often ``run`` reconciles, in a thread of its own."""
        self.ctx = ctx
        self.sources = list(sources)
        self.scan_interval_s = scan_interval_s
        self.reconcile_interval_s = reconcile_interval_s or scan_interval_s
        self.after_poll = after_poll
        self.fetch: Callable[[str], DiscoveredCheckpoint] | None = None
        """Downloads and identifies an announced object-store URI (an object-store source's
        ``fetch``); unset, such events wait for a watcher that has one."""
        self._logged: set[tuple[str, str]] = set()
        self._ingested: dict[str, set[tuple[str, str]]] = {}
        """Per source root: (content hash, path) pairs ingested and still seen ready. A pair that
        drops out of a scan (the folder went away) is ingested again when it comes back; a
        restart forgets them all, and ingesting again is a no-op."""
        self._reconcile_lock = threading.Lock()
        self._beating = False

    # ------------------------------------------------------------ scanning

    def poll_once(self) -> ScanSummary:
        """One scan and one reconcile (``tripwire watch --once``, tests). The reconcile runs
        even when the scan fails; the scan's error is raised after it."""
        summary = ScanSummary()
        error: Exception | None = None
        try:
            self.scan_once(summary)
        except Exception as exc:
            error = exc
        summary.resent = self.reconcile_once()
        self._after_poll()
        if error is not None:
            raise error
        return summary

    def scan_once(self, summary: ScanSummary | None = None) -> ScanSummary:
        """Scan every source once. Raises only when the database cannot be reached."""
        summary = summary if summary is not None else ScanSummary()
        for source in self.sources:
            root = str(source.root)
            try:
                scan = source.scan()
            except Exception as exc:  # a bug, or the root unreadable: the other sources go on
                log.exception("the scan of %s failed; the other folders go on", root)
                reason = (
                    f"the scan of {root} failed ({type(exc).__name__}: {exc}); it is tried "
                    "again at each scan"
                )
                self._sync(root, {root: Observed(NoteKind.scan, reason)}, [root])
                continue
            self._take(source, scan, summary)
        self._take_announced(summary)
        return summary

    def _take_announced(self, summary: ScanSummary) -> None:
        """Checkpoints announced through the webhook, through the same ingest (issue #11)."""
        from tripwire.intake.take import take_events

        try:
            summary.announced = take_events(self.ctx, fetch=self.fetch)
        except Exception as exc:
            error = classify_failure(exc)
            if error.kind == FailureKind.transient:
                raise
            log.exception("taking announced checkpoints failed; the scan goes on")

    def _take(self, source: CheckpointSource, scan: ScanResult, summary: ScanSummary) -> None:
        root = str(source.root)
        observed: dict[str, Observed] = {}
        for failure in scan.failed:
            observed[str(failure.path)] = Observed(NoteKind.failed, failure.reason)
        for pending in scan.pending:
            observed[str(pending.path)] = Observed(
                NoteKind.waiting, pending.reason, pending.waiting_for
            )
        before = self._ingested.get(root)
        if before is None:  # this process's first scan of the root: what is recorded already
            confirm = getattr(source, "confirm", None)
            before = set() if confirm is not None else already_ingested(self.ctx, scan.ready)
        now_ready: set[tuple[str, str]] = set()
        for found in scan.ready:
            summary.ready += 1
            key = (found.content_hash, str(found.path))
            if key in before:
                now_ready.add(key)
                continue
            try:
                _, created = ingest(self.ctx, found)
            except Exception as exc:
                error = classify_failure(exc)
                if error.kind == FailureKind.transient:
                    raise  # the database is unreachable: nothing can be recorded this scan
                observed[str(found.path)] = Observed(
                    NoteKind.failed, f"cannot record the checkpoint: {error.reason}"
                )
                continue
            now_ready.add(key)
            confirm = getattr(source, "confirm", None)
            if confirm is not None:  # an object-store source moves its cursor past it
                confirm(found)
            if created:
                short = found.content_hash.removeprefix("sha256:")[:12]
                summary.new.append(f"{found.run} step {found.step} ({short})")
        self._ingested[root] = now_ready
        summary.pending += len(scan.pending)
        summary.failed += sum(o.kind == NoteKind.failed for o in observed.values())
        for path, seen in observed.items():
            if seen.kind == NoteKind.failed and (path, seen.reason) not in self._logged:
                self._logged.add((path, seen.reason))
                log.warning("cannot take %s: %s", path, seen.reason)
        self._sync(root, observed, [str(p) for p in scan.unlisted])

    def _sync(self, root: str, observed: dict[str, Observed], unlisted: list[str]) -> None:
        with self.ctx.db.session() as session:
            source_state.sync_folders(session, root, observed, unlisted, utcnow())

    def _after_poll(self) -> None:
        if self.after_poll is None:
            return
        try:
            self.after_poll()
        except Exception:
            log.exception("after-scan hook failed; scanning goes on")

    # ------------------------------------------------------------ reconciling

    def reconcile_once(self) -> int:
        """Re-send lost work (``pipeline.reconcile``) and note that this watcher did."""
        with self._reconcile_lock:
            resent = reconcile(self.ctx)
            with self.ctx.db.session() as session:
                source_state.beat(session, self.ctx.owner, self.reconcile_interval_s, utcnow())
            self._beating = True
            return resent

    def _reconcile_loop(self, stop: threading.Event) -> None:
        while True:
            try:
                self.reconcile_once()
            except Exception as exc:
                _log_failure("reconcile", exc, self.reconcile_interval_s)
            if stop.wait(self.reconcile_interval_s):
                return

    def close(self) -> None:
        """This watcher stops on purpose: its heartbeat row is resolved (not "overdue")."""
        if not self._beating:
            return
        try:
            with self.ctx.db.session() as session:
                source_state.end_beat(session, self.ctx.owner)
        except Exception as exc:
            log.warning("could not note that the watcher stopped: %s", type(exc).__name__)
        self._beating = False

    # ------------------------------------------------------------ the loop

    def run(
        self,
        stop: threading.Event,
        on_scan: Callable[[ScanSummary], None] | None = None,
    ) -> None:
        """Scan until ``stop`` is set; file events wake the loop before the interval ends.
        Reconciling runs meanwhile in a thread of its own, every ``reconcile_interval_s``."""
        reconciler = threading.Thread(
            target=self._reconcile_loop, args=(stop,), daemon=True, name="tripwire-reconciler"
        )
        reconciler.start()
        try:
            self._scan_loop(stop, on_scan)
        finally:
            stop.set()
            reconciler.join(timeout=60)

    def _scan_loop(
        self, stop: threading.Event, on_scan: Callable[[ScanSummary], None] | None
    ) -> None:
        while not stop.is_set():
            started = time.monotonic()
            interval = self.scan_interval_s
            try:
                summary = self.scan_once()
            except Exception as exc:  # e.g. the database briefly unreachable: try again
                _log_failure("scan", exc, self.scan_interval_s)
            else:
                if on_scan is not None:
                    on_scan(summary)
                if summary.pending:
                    interval = min(interval, PENDING_RESCAN_S)
            self._after_poll()
            remaining = max(interval - (time.monotonic() - started), 0.05)
            deadline = time.monotonic() + remaining
            while not stop.is_set() and time.monotonic() < deadline:
                step = min(0.5, deadline - time.monotonic())
                if any(src.wait_for_change(step) for src in self.sources):
                    break


def _log_failure(what: str, exc: Exception, retry_s: float) -> None:
    failure = classify_failure(exc)
    if failure.kind == FailureKind.transient:  # one line, not a traceback every few seconds
        log.warning("%s failed (%s); retrying in %.1f s", what, failure.reason, retry_s)
    else:
        log.exception("%s failed; retrying in %.1f s", what, retry_s)
