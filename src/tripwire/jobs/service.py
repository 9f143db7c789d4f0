"""A running Tripwire: context, watcher and (without a broker) the embedded worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console
from sqlalchemy.exc import OperationalError

from tripwire.jobs import tasks
from tripwire.jobs.context import Context, context_from_settings
from tripwire.jobs.embedded import EmbeddedWorker
from tripwire.jobs.pipeline import reconcile, unsettled_jobs
from tripwire.jobs.watch import ScanSummary, Watcher
from tripwire.notify.config import load_notify_config
from tripwire.notify.sender import OutboxSender
from tripwire.policy.schema import walk
from tripwire.runner import Runner
from tripwire.settings import Settings
from tripwire.sources import CheckpointSource, LocalDirectorySource
from tripwire.sources.objectstore import ObjectStoreSource, is_uri, object_store_source

log = logging.getLogger(__name__)


class Service:
    """Everything ``tripwire watch`` and the demo run, as one context manager."""

    def __init__(
        self,
        settings: Settings,
        directories: Sequence[Path | str],
        *,
        console: Console | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Raises ``NotifyConfigError`` on a bad ``TRIPWIRE_NOTIFY_CONFIG`` file, ``BrokerError``
        at once if the broker cannot be reached, and SQLAlchemy's ``OperationalError`` if the
        database cannot. ``runner`` replaces the one the settings describe (for the embedded
        worker)."""
        self.settings = settings
        self.embedded = not settings.broker_url
        notify_path = settings.notify_config  # a bad channels file stops us before we start
        notify_config = load_notify_config(notify_path) if notify_path is not None else None
        tasks.configure(settings.broker_url or "memory://localhost/")
        tasks.check_broker()
        self.ctx: Context = context_from_settings(
            settings, tasks.send, tasks.queue_depth, runner=runner
        )
        tasks.set_context(self.ctx)
        cache = self.ctx.hash_cache  # the watcher's hashes serve the jobs' identity checks
        self.sources: list[CheckpointSource] = [
            object_store_source(str(d), settings, self.ctx.db, cache)
            if is_uri(str(d))
            else LocalDirectorySource(
                d,
                quiet_period_s=settings.quiet_period_s,
                allow_pickle=settings.allow_pickle,
                hash_cache=cache,
            )
            for d in directories
        ]
        # notifications (issue #8): the outbox is drained at every scan
        self.notifier = OutboxSender.from_settings(settings, self.ctx.db, config=notify_config)
        channels = _notify_channels(self.ctx, settings)
        for warning in self.notifier.check_channels(channels):
            log.warning("%s", warning)
        if channels and self.notifier.config is None:
            log.info("TRIPWIRE_NOTIFY_CONFIG is not set: notifications wait in the outbox")
        self.watcher = Watcher(
            self.ctx,
            self.sources,
            settings.scan_interval_s,
            after_poll=self.notifier.tick,
            reconcile_interval_s=settings.reconcile_interval_s,
        )
        stores = [s for s in self.sources if isinstance(s, ObjectStoreSource)]
        if stores:  # announced object-store URIs are fetched by the source they fall under
            self.watcher.fetch = lambda uri: next(
                (s for s in stores if uri.startswith(s.root + "/")), stores[0]
            ).fetch(uri)
        self.console = console
        self._worker: EmbeddedWorker | None = None

    def __enter__(self) -> Service:
        if self.embedded:
            self._worker = EmbeddedWorker().start()
        reconcile(self.ctx)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.watcher.close()
        if self._worker is not None:
            self._worker.stop()
        for source in self.sources:
            source.close()
        tasks.set_context(None)
        self.ctx.hash_cache.close()
        self.ctx.db.dispose()

    def wait_until_settled(self, timeout_s: float = 3600.0, poll_s: float = 0.5) -> bool:
        """Wait until no job is pending or running, re-sending lost ones. False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if unsettled_jobs(self.ctx) == 0:
                    self._notify()
                    return True
                time.sleep(poll_s)
                reconcile(self.ctx)
                self._notify()
            except OperationalError:  # the database is briefly unreachable: keep waiting
                log.warning("database unreachable while waiting for jobs; retrying")
                time.sleep(poll_s)
        return False

    def _notify(self) -> None:
        try:
            self.notifier.tick()
        except OperationalError:
            raise
        except Exception:
            log.exception("notification sender failed; the outbox keeps its rows")

    def log_scan(self, summary: ScanSummary) -> None:
        if self.console is not None:
            for found in summary.new:
                self.console.print(f"discovered {found}")


def _notify_channels(ctx: Context, settings: Settings) -> list[str]:
    """Every channel the policy's rules and ``TRIPWIRE_NOTIFY_FAILURES`` name."""
    names = [name for _, rule in walk(ctx.policy.policy.rules) for name in rule.actions.notify]
    return [*names, *settings.notify_failures]
