"""The watcher: one bad folder never stops a scan, what waits and what failed is in the store
(and cleared once gone), reconciling runs on its own timer, and a checkpoint that disappears
during its evaluation is recorded as gone and taken again when it comes back."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import reset_postgres
from tests.helpers import make_checkpoint
from tests.jobs.conftest import Workspace
from tripwire.jobs.context import Context, context_from_settings
from tripwire.jobs.pipeline import run_job
from tripwire.jobs.watch import Watcher
from tripwire.runner import Runner
from tripwire.sources import DiscoveredCheckpoint, LocalDirectorySource, ScanResult
from tripwire.sources.base import PendingCheckpoint
from tripwire.sources.metadata import CheckpointMetadata
from tripwire.status import render_tables, status_snapshot
from tripwire.store import repo, source_state
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Job,
    JobKind,
    JobState,
    SourceFailure,
    utcnow,
)
from tripwire.store.source_state import NoteKind


class Sent:
    """The context's sender, recording (task, job id) instead of talking to a broker."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, task_name: str, job_id: int, /, **_: Any) -> None:
        self.calls.append((task_name, job_id))


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def ctx(workspace: Workspace, sent: Sent) -> Iterator[Context]:
    context = context_from_settings(workspace.settings, sent)
    try:
        yield context
    finally:
        context.db.dispose()


@pytest.fixture
def source(workspace: Workspace) -> Iterator[LocalDirectorySource]:
    with LocalDirectorySource(workspace.checkpoints, quiet_period_s=30.0) as src:
        yield src


def notes(ctx: Context, kind: NoteKind) -> list[source_state.FolderNote]:
    with ctx.db.session() as s:
        return source_state.folder_notes(s, [kind])


def test_a_failure_left_by_a_folder_renamed_during_a_scan_is_cleared(
    ctx: Context, source: LocalDirectorySource, workspace: Workspace
) -> None:
    """Copy, then rename: a scan that met the folder under its first name left "cannot list the
    folder"; once the folder is gone from there the note goes, and the checkpoint is taken at
    its new place."""
    old = workspace.checkpoints / "run-a" / "step-100"
    with ctx.db.session() as s:
        s.add(
            SourceFailure(
                path=str(old),
                reason="cannot list the folder (No such file or directory); give Tripwire read "
                "access to it",
            )
        )
    landed = workspace.land("step-100-final", seed=1)

    Watcher(ctx, [source]).scan_once()

    assert notes(ctx, NoteKind.failed) == []
    with ctx.db.session() as s:
        assert [c.path for c in s.scalars(select(Checkpoint))] == [str(landed.resolve())]


def test_a_failed_folder_is_cleared_when_it_is_removed_or_fixed(
    ctx: Context, source: LocalDirectorySource, workspace: Workspace
) -> None:
    bad = workspace.land("step-100", seed=1)
    (bad / "tripwire.json").write_text('{"step": 3000000000}')
    watcher = Watcher(ctx, [source])
    watcher.scan_once()
    [note] = notes(ctx, NoteKind.failed)
    assert note.path == str(bad.resolve()) and "field 'step'" in note.reason

    (bad / "tripwire.json").unlink()  # fixed: taken, and the note resolved
    watcher.scan_once()
    assert notes(ctx, NoteKind.failed) == []

    other = workspace.land("step-200", seed=2)
    (other / "config.json").write_text("not json")
    watcher.scan_once()
    assert [n.path for n in notes(ctx, NoteKind.failed)] == [str(other.resolve())]
    shutil.rmtree(other)  # removed
    watcher.scan_once()
    assert notes(ctx, NoteKind.failed) == []


def test_status_lists_checkpoints_still_waiting_and_what_for(
    ctx: Context, source: LocalDirectorySource, workspace: Workspace
) -> None:
    sharded = make_checkpoint(
        workspace.checkpoints / "run-a" / "step-100", seed=1, max_shard_size="20KB", ready=False
    )
    sorted(sharded.glob("model-*.safetensors"))[-1].unlink()  # the last shard is still uploading
    quiet = make_checkpoint(workspace.checkpoints / "run-a" / "step-200", seed=2, ready=False)
    watcher = Watcher(ctx, [source])
    watcher.scan_once()

    with ctx.db.session() as s:
        snapshot = status_snapshot(s)
    waiting = {Path(w.path).name: w for w in snapshot.waiting}
    assert waiting["step-100"].waiting_for == "shards"
    assert "missing: model-" in waiting["step-100"].reason
    assert waiting["step-200"].waiting_for == "quiet period"
    assert snapshot.source_failures == []
    titles = [table.title for table in render_tables(snapshot, "db")]
    assert "checkpoints not complete yet" in titles and "no checkpoints yet" not in titles

    (quiet / "READY").touch()  # the marker: taken, and no longer waiting
    watcher.scan_once()
    with ctx.db.session() as s:
        assert [Path(w.path).name for w in status_snapshot(s).waiting] == ["step-100"]


class FixedSource:
    """A source whose scan is given: to feed the watcher what a real scan cannot produce."""

    def __init__(self, root: Path, result: ScanResult | Exception) -> None:
        self.root = root
        self.result = result

    def scan(self, now: float | None = None) -> ScanResult:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def wait_for_change(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, 0.05))
        return False

    def close(self) -> None:
        pass


def found(root: Path, i: int, step: int) -> DiscoveredCheckpoint:
    return DiscoveredCheckpoint(
        path=root / f"step-{i}",
        content_hash=f"sha256:{i:064x}",
        run="run-a",
        step=step,
        metadata=CheckpointMetadata.model_construct(run="run-a", step=step),
        weight_files=["model.safetensors"],
        total_bytes=1,
        format="safetensors",
    )


@pytest.mark.postgres
def test_a_checkpoint_the_database_refuses_is_a_source_failure_and_the_scan_goes_on(
    workspace: Workspace, sent: Sent, postgres_url: str
) -> None:
    """Past the sidecar's bounds (here skipped on purpose), PostgreSQL refuses a step over
    2^31: the refusal is that folder's failure; the checkpoints after it are recorded."""
    reset_postgres(postgres_url)
    workspace.settings.database_url = postgres_url
    ctx = context_from_settings(workspace.settings, sent)
    root = workspace.checkpoints
    scan = ScanResult(
        ready=[found(root, 1, 100), found(root, 2, 3_000_000_000), found(root, 3, 300)],
        scanned_at=time.time(),
    )
    try:
        Watcher(ctx, [FixedSource(root, scan)]).scan_once()  # type: ignore[list-item]
        with ctx.db.session() as s:
            assert sorted(c.step or 0 for c in s.scalars(select(Checkpoint))) == [100, 300]
            [note] = source_state.folder_notes(s, [NoteKind.failed])
        assert note.path == str(root / "step-2")
        assert note.reason.startswith("cannot record the checkpoint: ")
        assert len(sent.calls) == 2, "both good checkpoints' proxy jobs were sent"
    finally:
        ctx.db.dispose()


def test_reconciling_runs_on_its_own_timer_while_every_scan_fails(
    ctx: Context, sent: Sent, workspace: Workspace
) -> None:
    """A scan that fails (or hashes for minutes) never holds up the re-sending of lost work."""
    with ctx.db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash="sha256:" + "c" * 64, path="/gone", run="r", step=1
        )
        job, _ = repo.ensure_job(s, key="k", kind=JobKind.proxy_eval, checkpoint_id=cp.id)
        job_id = job.id
        s.flush()
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                attempts=1,
                owner="dead",
                lease_until=utcnow() - timedelta(seconds=5),
                enqueued_at=utcnow() - timedelta(minutes=10),
            )
        )
    broken = FixedSource(workspace.checkpoints, RuntimeError("the scan is broken"))
    watcher = Watcher(ctx, [broken], scan_interval_s=0.1, reconcile_interval_s=0.1)  # type: ignore[list-item]
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while ("tripwire.proxy_eval", job_id) not in sent.calls:
            assert time.monotonic() < deadline, "the expired job was not re-sent"
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=30)
    [scan] = notes(ctx, NoteKind.scan)
    assert scan.path == str(workspace.checkpoints) and "the scan is broken" in scan.reason
    with ctx.db.session() as s:
        health = source_state.reconcile_health(s, utcnow())
    assert health.scan_failures == 1
    assert health.state == "ok" or health.state == "no watcher"
    watcher.close()
    with ctx.db.session() as s:
        assert source_state.reconcile_health(s, utcnow()).state == "no watcher"


def _deleting_model_class(folder: Path) -> type:
    """lm-eval's HFLM, but the checkpoint's folder is deleted as the model starts loading:
    what a retention sweep or a trainer's cleanup does mid-evaluation."""
    from lm_eval.models.huggingface import HFLM

    class DeletingHFLM(HFLM):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            shutil.rmtree(folder, ignore_errors=True)
            super().__init__(*args, **kwargs)

    return DeletingHFLM


@pytest.mark.slow
def test_a_checkpoint_deleted_during_its_evaluation_is_gone_and_taken_again_when_back(
    workspace: Workspace, sent: Sent, tmp_path: Path
) -> None:
    landed = workspace.land("step-100", seed=1)
    backup = shutil.copytree(landed, tmp_path / "backup")
    runner = Runner(
        device="cpu",
        batch_size=8,
        allow_pickle=False,
        cache_dir=tmp_path / "cache",
        progress=False,
        model_class=_deleting_model_class(landed),
    )
    ctx = context_from_settings(workspace.settings, sent, runner=runner)
    try:
        with LocalDirectorySource(workspace.checkpoints, quiet_period_s=30.0) as source:
            watcher = Watcher(ctx, [source])
            watcher.scan_once()
            [(_, job_id)] = sent.calls
            assert run_job(ctx, job_id) == "failed"
            with ctx.db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None and job.state == JobState.failed
                assert job.payload.get("gone") is True
                assert job.error is not None and ": gone: run-a step 100" in job.error
                assert "not a fault of the model" in job.error
                assert "Repo id" not in job.error
                cp = s.scalars(select(Checkpoint)).one()
                assert cp.state == CheckpointState.failed and ": gone: " in (cp.error or "")

            watcher.scan_once()  # still gone: nothing happens
            shutil.copytree(backup, landed)  # back, with the same content
            watcher.scan_once()
            with ctx.db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None
                assert (job.state, job.attempts, job.error) == (JobState.pending, 0, None)
                assert "gone" not in job.payload
                cp = s.scalars(select(Checkpoint)).one()
                assert (cp.state, cp.error) == (CheckpointState.discovered, None)
            assert sent.calls.count(("tripwire.proxy_eval", job_id)) == 2, "sent again"
    finally:
        ctx.db.dispose()


class CountingSource(FixedSource):
    """A fixed scan whose file events are all lost (``wait_for_change`` never wakes)."""

    scans = 0

    def scan(self, now: float | None = None) -> ScanResult:
        self.scans += 1
        return super().scan(now)


def test_a_pending_checkpoint_is_looked_at_again_without_waiting_for_the_interval(
    ctx: Context, workspace: Workspace
) -> None:
    """A ready marker written into a folder renamed in a moment earlier may raise no file event:
    while a checkpoint is pending the loop rescans every PENDING_RESCAN_S, not every hour."""
    pending = PendingCheckpoint(path=workspace.checkpoints / "step-1", reason="waiting")
    scan = ScanResult(ready=[], pending=[pending], failed=[], unlisted=[], scanned_at=time.time())
    source = CountingSource(workspace.checkpoints, scan)
    watcher = Watcher(ctx, [source], scan_interval_s=3600)  # type: ignore[list-item]
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while source.scans < 3:
            assert time.monotonic() < deadline, "the pending checkpoint was not looked at again"
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=30)


def test_a_restarted_watcher_takes_what_is_recorded_without_ingesting_it_again(
    workspace: Workspace, ctx: Context, sent: Sent
) -> None:
    """After a restart, recorded folders are recognised in a few batched reads (no write per
    folder); a new checkpoint, a copy at a new path, a folder whose files changed and a
    checkpoint lacking the current proxy suite's job still go through ``ingest``."""
    from sqlalchemy import event

    for step, seed in ((100, 1), (200, 2), (300, 3), (500, 5)):
        workspace.land(f"step-{step}", seed=seed)
    with LocalDirectorySource(workspace.checkpoints, quiet_period_s=30.0) as first:
        Watcher(ctx, [first]).scan_once()
    assert len(sent.calls) == 4
    with ctx.db.session() as s:
        untouched = s.scalars(select(Checkpoint.content_hash).where(Checkpoint.step == 500)).one()
    workspace.land("step-400", seed=4)
    shutil.copytree(
        workspace.checkpoints / "run-a" / "step-100", workspace.checkpoints / "run-b" / "step-100"
    )
    touched = workspace.checkpoints / "run-a" / "step-200" / "config.json"
    time.sleep(0.01)
    touched.write_text(touched.read_text())  # the same content, a new fingerprint
    with ctx.db.session() as s:  # step 300's proxy job for the current suite is missing
        job = s.scalars(
            select(Job)
            .join(Checkpoint)
            .where(Checkpoint.step == 300, Job.kind == JobKind.proxy_eval)
        ).one()
        job.key = job.key + ":an-older-suite"
    one_by_one: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        # ingest looks a checkpoint up by its content hash alone; the batched read uses IN
        if "content_hash = " in statement and untouched in str(parameters):
            one_by_one.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        with LocalDirectorySource(workspace.checkpoints, quiet_period_s=30.0) as again:
            summary = Watcher(ctx, [again]).scan_once()  # a new watcher: nothing in memory
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
    assert summary.ready == 6
    assert [n.split(" (")[0] for n in summary.new] == ["run-a step 400"]
    with ctx.db.session() as s:
        checkpoints = {c.step: c for c in s.scalars(select(Checkpoint))}
        assert set(checkpoints) == {100, 200, 300, 400, 500}
        assert str(workspace.checkpoints / "run-b" / "step-100") in {
            loc.path for loc in checkpoints[100].locations
        }
        fingerprints = checkpoints[200].meta["fingerprints"]
        recorded = fingerprints[str(workspace.checkpoints / "run-a" / "step-200")]
        assert any(
            f["name"] == "config.json" and f["mtime_ns"] == touched.stat().st_mtime_ns
            for f in recorded["files"]
        )
        proxy_jobs = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).all()
        assert len(proxy_jobs) == 6  # step 300 got the current suite's job
    assert one_by_one == []  # step 500, recorded and unchanged, was not ingested again
