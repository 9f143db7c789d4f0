"""A job scores the content it was created for, or is refused with the reason.

A job waits in a queue; meanwhile new weights can land at its checkpoint's path and its suite
can be edited. These tests queue jobs with no worker running (as behind a busy worker), change
the files, then start a worker: the real embedded Celery worker running the real job functions.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from tests.helpers import make_checkpoint
from tests.jobs.conftest import Workspace
from tripwire.jobs import tasks
from tripwire.jobs.identity import FINGERPRINTS
from tripwire.jobs.service import Service
from tripwire.runner import Runner
from tripwire.sources import read_checkpoint
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Evaluation,
    Job,
    JobKind,
    JobState,
)
from tripwire.suites import load_suite

pytestmark = pytest.mark.slow


def queue_without_a_worker(workspace: Workspace) -> None:
    """Discover what has landed and queue its jobs, as a watcher does while every worker is
    busy: the messages wait in the (in-process) broker and nothing runs yet."""
    tasks.configure("memory://localhost/")
    tasks.app.control.purge()  # no message left over from another test
    with ExitStack() as stack:
        stack.push(Service(workspace.settings, [workspace.checkpoints])).watcher.poll_once()


def test_new_weights_at_an_old_path_are_refused_by_the_queued_job_and_discovered_as_new(
    workspace: Workspace,
) -> None:
    path = workspace.land("step-100", seed=1)
    old_hash = read_checkpoint(path).content_hash
    queue_without_a_worker(workspace)
    make_checkpoint(path, seed=2)  # the trainer writes new weights into the same folder
    new_hash = read_checkpoint(path).content_hash
    assert new_hash != old_hash

    with Service(workspace.settings, [workspace.checkpoints]) as service:
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            old = s.scalars(select(Checkpoint)).one()
            assert old.content_hash == old_hash
            assert old.state == CheckpointState.failed
            job = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()
            assert (job.state, job.attempts) == (JobState.failed, 1), "refused, not retried"
            assert s.scalars(select(Evaluation)).all() == [], "nothing scored under the old name"
            reason = old.error or ""
            assert f"now holds {new_hash} (expected {old_hash})" in reason
            assert str(path) in reason and "run-a step 100" in reason
            assert "the watcher records" in reason and "at its next scan" in reason

        service.watcher.poll_once()  # the next scan
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            new = s.scalars(select(Checkpoint).where(Checkpoint.content_hash == new_hash)).one()
            assert new.path == str(path)
            assert new.state == CheckpointState.decided
            proxy = s.scalars(
                select(Job).where(Job.kind == JobKind.proxy_eval, Job.checkpoint_id == new.id)
            ).one()
            assert (proxy.state, proxy.payload["scored_from"]) == (JobState.done, str(path))
            assert s.scalars(select(Evaluation).where(Evaluation.checkpoint_id == new.id)).all()


def test_a_suite_edited_while_its_job_waits_is_refused_with_the_reason(
    workspace: Workspace,
) -> None:
    workspace.land("step-100", seed=1)
    proxy_suite = workspace.root / "evals" / "proxy.yaml"
    hash_before = load_suite(proxy_suite).content_hash
    queue_without_a_worker(workspace)
    data = workspace.root / "evals" / "tiny" / "data" / "tiny_add.jsonl"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # an item removed while the job waits
    hash_after = load_suite(proxy_suite).content_hash

    # A worker started after the edit (as each prefork child is) runs the queued job.
    with Service(workspace.settings, [workspace.checkpoints]) as service:
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            job = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()
            assert (job.state, job.attempts) == (JobState.failed, 1)
            reason = job.error or ""
            assert reason.startswith(
                f"{proxy_suite}: job refused: the suite changed since the job was created "
                "(modified since: tiny/data/tiny_add.jsonl; "
                f"content hash expected {hash_before}, found {hash_after})"
            )
            assert "Restart the workers and the watcher with the edited suite" in reason
            checkpoint = s.scalars(select(Checkpoint)).one()
            assert checkpoint.state == CheckpointState.failed
            assert s.scalars(select(Evaluation)).all() == []

        # What the reason says to do: the restarted watcher makes a job for the edited suite.
        service.watcher.poll_once()
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            checkpoint = s.scalars(select(Checkpoint)).one()
            assert checkpoint.state == CheckpointState.decided
            evaluation = s.scalars(select(Evaluation).where(Evaluation.kind == "proxy")).one()
            assert evaluation.suite_hash == hash_after


def test_the_worker_that_loaded_the_suite_before_the_edit_names_exactly_what_changed(
    workspace: Workspace,
) -> None:
    workspace.land("step-100", seed=1)
    task_file = workspace.root / "evals" / "tiny" / "tasks" / "cmp.yaml"
    with Service(workspace.settings, [workspace.checkpoints]) as service:
        task_file.write_text(task_file.read_text().replace("version: 1.0", "version: 2.0"))
        service.watcher.poll_once()  # a job for the suite as this process loaded it
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            job = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()
            assert job.state == JobState.failed
            assert "since the job was created (tiny/tasks/cmp.yaml changed; content hash" in (
                job.error or ""
            )


def test_a_checkpoint_whose_first_location_changed_is_scored_from_another_with_its_content(
    workspace: Workspace,
) -> None:
    first = workspace.land("step-100", seed=1)
    copy = shutil.copytree(first, workspace.checkpoints / "run-b" / "step-100")
    original_hash = read_checkpoint(first).content_hash
    queue_without_a_worker(workspace)
    make_checkpoint(first, seed=2)  # the first location now holds other weights

    with Service(workspace.settings, [workspace.checkpoints]) as service:
        assert service.wait_until_settled(timeout_s=300)
        with service.ctx.db.session() as s:
            checkpoint = s.scalars(select(Checkpoint)).one()
            assert checkpoint.content_hash == original_hash
            assert checkpoint.path == str(first), "recorded at the first location"
            assert set(checkpoint.meta[FINGERPRINTS]) == {str(first), str(copy)}
            assert checkpoint.state == CheckpointState.decided
            job = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()
            assert (job.state, job.payload["scored_from"]) == (JobState.done, str(copy))
            stored = s.scalars(select(Evaluation).where(Evaluation.kind == "proxy")).one()
            scores = {t.task: t.score for t in stored.scores}

    expected = Runner(progress=False).evaluate(
        copy, load_suite(workspace.root / "evals" / "proxy.yaml")
    )
    assert scores == {name: task.score for name, task in expected.tasks.items()}
