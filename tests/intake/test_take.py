"""Announced checkpoints go through the watcher's own ingest: recorded with the event's
metadata, their proxy evaluation queued, one checkpoint however often announced."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.helpers import make_checkpoint
from tests.jobs.conftest import Workspace
from tests.sources.s3 import Bucket
from tripwire.intake.event import signature
from tripwire.jobs.context import context_from_settings
from tripwire.jobs.watch import Watcher
from tripwire.sources.object_cache import CheckpointCache
from tripwire.sources.objectstore import ObjectStoreSource
from tripwire.store.cursors import DatabaseCursors
from tripwire.store.models import Checkpoint, IntakeEvent, Job, JobKind
from tripwire.web.app import create_app


def announce(client: TestClient, event: dict[str, Any]) -> int:
    raw = json.dumps(event).encode()
    stamp = str(int(time.time()))
    answer = client.post(
        "/v1/checkpoints",
        content=raw,
        headers={
            "X-Tripwire-Timestamp": stamp,
            "X-Tripwire-Signature": signature(b"k", stamp, raw),
        },
    )
    assert answer.status_code == 202, answer.text
    return int(answer.json()["event_id"])


def test_an_announced_checkpoint_is_ingested_once_with_its_metadata(
    workspace: Workspace, tmp_path: Path
) -> None:
    settings = workspace.settings
    settings.webhook_secret = SecretStr("k")
    settings.intake_roots = [str(workspace.checkpoints)]
    folder = make_checkpoint(workspace.checkpoints / "chat" / "step-7", seed=1, ready=False)
    sent: list[tuple[str, int]] = []
    ctx = context_from_settings(settings, lambda name, job_id, **_: sent.append((name, job_id)))
    with TestClient(create_app(settings)) as client:
        event = {"uri": str(folder), "run": "chat-v2", "stage": "sft", "tokens_seen": 1000}
        first = announce(client, event)
        second = announce(client, {**event, "notes": {"again": "yes"}})  # a second signature
        broken = announce(client, {"uri": str(workspace.checkpoints / "nothing-here")})
    watcher = Watcher(ctx, [])
    summary = watcher.scan_once()
    assert summary.announced == 2
    with ctx.db.session() as s:
        (cp,) = s.scalars(select(Checkpoint))
        assert (cp.run.name, cp.step, cp.stage, cp.tokens_seen) == ("chat-v2", 7, "sft", 1000)
        assert cp.params_total is not None and cp.estimated_flop == 6 * cp.params_active * 1000
        jobs = list(s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)))
        assert len(jobs) == 1 and sent == [("tripwire.proxy_eval", jobs[0].id)]
        states = {e.id: (e.state, e.checkpoint_id) for e in s.scalars(select(IntakeEvent))}
        assert states[first] == ("recorded", cp.id) and states[second] == ("recorded", cp.id)
        assert states[broken][0] == "failed"
    assert watcher.scan_once().announced == 0  # taken once
    ctx.db.dispose()


def test_the_watcher_takes_object_store_checkpoints_once_and_announced_uris_through_them(
    workspace: Workspace, bucket: Bucket, tmp_path: Path
) -> None:
    settings = workspace.settings
    settings.webhook_secret = SecretStr("k")
    root = f"s3://{bucket.name}/ckpts"
    settings.intake_roots = [root]
    model = make_checkpoint(tmp_path / "model", seed=3, ready=True)
    bucket.upload_folder(model, "ckpts/run-a/step-000100", last=("READY",))
    other = make_checkpoint(tmp_path / "other", seed=4, ready=False)
    bucket.upload_folder(other, "ckpts/run-b/late/step-5")  # deeper than a run: announced
    sent: list[tuple[str, int]] = []
    ctx = context_from_settings(settings, lambda name, job_id, **_: sent.append((name, job_id)))

    def source() -> ObjectStoreSource:
        return ObjectStoreSource(
            root,
            bucket.fs,
            cursors=DatabaseCursors(ctx.db),
            cache=CheckpointCache(tmp_path / "objects", 10**9),
            quiet_period_s=1e12,
        )

    store = source()
    watcher = Watcher(ctx, [store])
    watcher.fetch = store.fetch
    with TestClient(create_app(settings)) as client:
        announce(client, {"uri": f"{root}/run-b/late/step-5", "stage": "sft"})
    summary = watcher.scan_once()
    assert len(summary.new) == 1 and summary.announced == 1
    assert watcher.scan_once().new == []
    with ctx.db.session() as s:
        rows = {c.run.name: c for c in s.scalars(select(Checkpoint))}
        assert set(rows) == {"run-a", "run-b/late"}  # the run: its place under the root
        assert rows["run-a"].step == 100 and rows["run-b/late"].stage == "sft"
        paths = {loc.path for loc in rows["run-a"].locations}
        assert f"{root}/run-a/step-000100" in paths
    restarted = source()
    assert restarted.scan().ready == []  # the cursor in the database is past it
    ctx.db.dispose()
