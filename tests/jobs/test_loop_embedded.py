"""The whole loop in embedded mode: a Celery worker thread on the in-memory transport."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from tests.jobs.conftest import Workspace, corrupt_copy
from tripwire.jobs.service import Service
from tripwire.store import source_state
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Decision,
    Evaluation,
    Job,
    JobKind,
    JobState,
)
from tripwire.store.source_state import NoteKind

pytestmark = pytest.mark.slow


def test_every_checkpoint_is_evaluated_once_and_fired_rules_dispatch_deep_suites(
    workspace: Workspace,
) -> None:
    first = workspace.land("step-100", seed=1)
    workspace.land("step-200", seed=2)
    workspace.land("step-300", seed=3)
    shutil.copytree(first, workspace.checkpoints / "run-a-copy" / "step-100")  # same weights
    corrupt_copy(first, workspace.checkpoints / "run-a" / "step-400")
    with Service(workspace.settings, [workspace.checkpoints]) as service:
        service.watcher.poll_once()
        service.watcher.poll_once()  # a second scan finds nothing new
        assert service.wait_until_settled(timeout_s=600)
        with service.ctx.db.session() as s:
            checkpoints = s.scalars(select(Checkpoint).order_by(Checkpoint.step)).all()
            assert [c.step for c in checkpoints] == [100, 200, 300]
            assert all(c.state == CheckpointState.decided for c in checkpoints)
            assert len(checkpoints[0].locations) == 2
            proxy = s.scalar(select(func.count()).where(Evaluation.kind == "proxy"))
            assert proxy == 3
            jobs = s.scalars(select(Job)).all()
            assert all(j.state == JobState.done for j in jobs), [(j.key, j.error) for j in jobs]
            assert all(j.attempts == 1 for j in jobs)
            fired = {
                d.checkpoint_id
                for d in s.scalars(select(Decision).where(Decision.verdict == "fired"))
            }
            deep_jobs = [j for j in jobs if j.kind == JobKind.deep_eval]
            assert checkpoints[0].id in fired, "a run's first checkpoint becomes its baseline"
            assert sorted(j.checkpoint_id for j in deep_jobs) == sorted(fired)
            deep = s.scalar(select(func.count()).where(Evaluation.kind == "deep"))
            assert deep == len(fired)
            (failure,) = source_state.folder_notes(s, [NoteKind.failed])
            assert failure.path.endswith("step-400")
            assert "model.safetensors" in failure.reason
    reports = workspace.settings.resolved_report_dir()
    assert (reports / "index.html").is_file()
    assert (reports / "run-a" / "index.html").is_file()
    pages = [p for p in (reports / "run-a").glob("step-*.html") if "-items" not in p.name]
    assert len(pages) == 3
