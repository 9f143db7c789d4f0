"""A transient error is retried after a backoff the database keeps; a permanent one is not."""

from __future__ import annotations

import errno
import logging
import time
from typing import Any, ClassVar

import pytest
from lm_eval.models.huggingface import HFLM
from sqlalchemy import select

from tests.jobs.conftest import Workspace
from tripwire.jobs import tasks
from tripwire.jobs.context import TASK_NAMES
from tripwire.jobs.pipeline import reconcile
from tripwire.jobs.retry import RETRY_AT, backoff_s
from tripwire.jobs.service import Service
from tripwire.runner import Runner
from tripwire.store.models import Checkpoint, CheckpointState, Job, JobKind, JobState

pytestmark = pytest.mark.slow

BACKOFF_S = 4.0


class BriefIOErrorOnce(HFLM):  # type: ignore[misc]
    """lm-eval's HFLM whose first scoring call meets an I/O error (a file server blip)."""

    calls: ClassVar[list[float]] = []

    def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> Any:
        type(self).calls.append(time.monotonic())
        if len(type(self).calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)


def _proxy_job(service: Service) -> Job:
    with service.ctx.db.session() as s:
        return s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 30, 600) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 600]


def test_an_io_error_is_retried_after_the_backoff_and_nothing_sends_it_earlier(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    workspace.settings.retry_backoff_s = BACKOFF_S
    workspace.settings.resend_after_s = 0.5  # an eager reconciler: it must still wait
    BriefIOErrorOnce.calls.clear()
    runner = Runner(progress=False, model_class=BriefIOErrorOnce)
    workspace.land("step-100", seed=1)
    with (
        caplog.at_level(logging.WARNING, logger="tripwire.jobs"),
        Service(workspace.settings, [workspace.checkpoints], runner=runner) as service,
    ):
        service.watcher.poll_once()
        deadline = time.monotonic() + 120
        while not (BriefIOErrorOnce.calls and _proxy_job(service).state == JobState.pending):
            assert time.monotonic() < deadline, "the first attempt never failed"
            time.sleep(0.05)
        job = _proxy_job(service)
        assert job.attempts == 1 and RETRY_AT in job.payload
        assert (job.error or "").startswith("transient: OSError: [Errno 5] Input/output error")

        tasks.send(TASK_NAMES[JobKind.proxy_eval], job.id)  # a duplicate, before it is due
        while time.monotonic() - BriefIOErrorOnce.calls[0] < BACKOFF_S - 1.5:
            assert reconcile(service.ctx) == 0, "the reconciler sent it before it was due"
            assert _proxy_job(service).attempts == 1, "the duplicate ran it before it was due"
            time.sleep(0.2)

        assert service.wait_until_settled(timeout_s=300)
        job = _proxy_job(service)
        assert (job.state, job.attempts) == (JobState.done, 2)
        with service.ctx.db.session() as s:
            checkpoint = s.get(Checkpoint, job.checkpoint_id)
            assert checkpoint is not None and checkpoint.state == CheckpointState.decided
    first, second = BriefIOErrorOnce.calls[:2]
    assert second - first >= BACKOFF_S - 0.5
    warnings = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert warnings == [
        f"job {job.id} (proxy_eval): transient error on attempt 1 of 3, retrying in 4 s: "
        "OSError: [Errno 5] Input/output error"
    ]
