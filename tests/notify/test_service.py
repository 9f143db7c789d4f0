"""The running loop sends: checkpoints land, a rule with ``notify`` fires, and the watcher's
sender delivers the message once, with its link, to a real local receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import make_checkpoint, write_tasks
from tests.notify.conftest import write_config
from tests.notify.receivers import HttpReceiver
from tripwire.jobs.service import Service
from tripwire.notify.signing import verify
from tripwire.settings import Settings
from tripwire.store.models import Checkpoint, Decision, Notification, NotificationState

pytestmark = pytest.mark.slow

PROXY = """\
name: tiny-proxy
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
"""
DEEP = """\
name: tiny-deep
kind: deep
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_cmp
"""
POLICY = """\
name: tiny
proxy_suite: ../evals/proxy.yaml
rules:
  - id: compute-2x
    type: compute
    factor: 2
    severity: critical
    actions:
      deep_suites: [../evals/deep.yaml]
      notify: [safety-team]
"""


def _land(root: Path, name: str, seed: int, flop: float) -> None:
    folder = make_checkpoint(root / "run-a" / name, seed=seed, ready=False)
    (folder / "tripwire.json").write_text(json.dumps({"training_flop": flop}))
    (folder / "READY").touch()


def test_the_watcher_delivers_a_fired_rules_notification_once(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("TRIPWIRE_BROKER_URL", "TRIPWIRE_DATABASE_URL", "TRIPWIRE_POLICY", "TRIPWIRE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    write_tasks(tmp_path / "evals" / "tiny")
    (tmp_path / "evals" / "proxy.yaml").write_text(PROXY)
    (tmp_path / "evals" / "deep.yaml").write_text(DEEP)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "policy.yaml").write_text(POLICY)
    config = write_config(
        tmp_path,
        f"channels:\n  safety-team:\n    type: webhook\n    url: {receiver.url()}\n"
        "    secret_env: HOOK_SECRET\n",
    )
    checkpoints = tmp_path / "checkpoints"
    _land(checkpoints, "step-100", seed=1, flop=1e20)
    _land(checkpoints, "step-200", seed=2, flop=1e21)  # 10x the baseline's compute: fires
    settings = Settings(
        _env_file=None,
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'home' / 'tripwire.db'}",
        policy=tmp_path / "triggers" / "policy.yaml",
        quiet_period_s=1.0,
        scan_interval_s=0.2,
        notify_config=config,
        public_url="https://tripwire.example.org/",
    )
    receiver.start()
    with Service(settings, [checkpoints]) as service:
        service.watcher.poll_once()
        assert service.wait_until_settled(timeout_s=600)
        service.watcher.poll_once()  # a later scan sends nothing again
        with service.ctx.db.session() as s:
            (fired,) = s.scalars(
                select(Decision).where(
                    Decision.rule_id == "compute-2x", Decision.verdict == "fired"
                )
            )
            (row,) = s.scalars(select(Notification))
            assert row.key == f"rule_fired:{fired.id}:safety-team"
            assert row.state == NotificationState.sent and row.attempts == 1
            checkpoint = s.get(Checkpoint, fired.checkpoint_id)
            assert checkpoint is not None and checkpoint.step == 200
            content_hash = checkpoint.content_hash
    (request,) = receiver.requests
    assert verify("s3cret", request.headers["X-Tripwire-Signature"], request.body, now=time.time())
    body = json.loads(request.body)
    assert body["idempotency_key"] == row.key and body["step"] == 200
    assert body["rule"] == "compute-2x" and body["severity"] == "critical"
    assert body["link"] == (
        "https://tripwire.example.org/checkpoints/" + content_hash.removeprefix("sha256:")
    )
