"""A workspace with tiny suites, a policy and checkpoints landing in a watched folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import make_checkpoint, write_tasks
from tripwire.settings import Settings
from tripwire.store.models import JobKind

PROXY = """\
name: tiny-proxy
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
  - task: tiny_cmp
"""
DEEP = """\
name: tiny-deep
kind: deep
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_cmp
    num_fewshot: 1
"""
POLICY = """\
name: tiny
proxy_suite: ../evals/proxy.yaml
rules:
  - id: any-rise
    type: delta
    benchmarks: ["*"]
    threshold: 0.01
    mode: point
    actions:
      deep_suites: [../evals/deep.yaml]
"""


@dataclass
class Workspace:
    root: Path
    checkpoints: Path
    settings: Settings

    def land(self, name: str, seed: int) -> Path:
        """A trainer writes a checkpoint: into a temp folder, renamed, then marked ready."""
        tmp = self.checkpoints / "run-a" / f".tmp-{name}"
        make_checkpoint(tmp, seed=seed, ready=False)
        final = self.checkpoints / "run-a" / name
        tmp.rename(final)
        (final / "READY").touch()
        return final


def make_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str = POLICY
) -> Workspace:
    """The tiny proxy suite, ``policy`` and an empty checkpoints folder, under ``tmp_path``."""
    for var in ("TRIPWIRE_BROKER_URL", "TRIPWIRE_DATABASE_URL", "TRIPWIRE_POLICY", "TRIPWIRE_HOME"):
        monkeypatch.delenv(var, raising=False)
    write_tasks(tmp_path / "evals" / "tiny")
    (tmp_path / "evals" / "proxy.yaml").write_text(PROXY)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "policy.yaml").write_text(policy)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'home' / 'tripwire.db'}",
        policy=tmp_path / "triggers" / "policy.yaml",
        quiet_period_s=1.0,
        scan_interval_s=0.2,
    )
    return Workspace(tmp_path, checkpoints, settings)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    found = make_workspace(tmp_path, monkeypatch)
    (tmp_path / "evals" / "deep.yaml").write_text(DEEP)
    return found


def corrupt_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return target


def deep_suite_workspace(
    tmp_path: Path, deep_suite: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    """The tiny proxy suite and policy, with fired rules dispatching ``deep_suite`` (a suite
    file already written under ``tmp_path / "evals"``): for deep suites beyond lm-eval."""
    policy = POLICY.replace("../evals/deep.yaml", f"../evals/{deep_suite.name}")
    return make_workspace(tmp_path, monkeypatch, policy)


@dataclass
class DeepRun:
    """A workspace after one landed checkpoint fired its rule and the deep suite ran."""

    workspace: Workspace
    job_kinds: list[JobKind]
    level_verdicts: dict[str, str | None]
    """The deep evaluation's tasks, each with its level verdict."""
    page: Path
    """The checkpoint's report page (JSON; the HTML beside it)."""


def fire_deep_suite(tmp_path: Path, deep_suite: Path, monkeypatch: pytest.MonkeyPatch) -> DeepRun:
    """Land one checkpoint in a ``deep_suite_workspace``, run the loop until it settles (every
    job done, one deep evaluation stored) and find the checkpoint's report page."""
    from tripwire.jobs.service import Service
    from tripwire.store.models import Evaluation, Job, JobState

    workspace = deep_suite_workspace(tmp_path, deep_suite, monkeypatch)
    workspace.land("step-100", seed=1)
    with Service(workspace.settings, [workspace.checkpoints]) as service:
        service.watcher.poll_once()
        assert service.wait_until_settled(timeout_s=600)
        with service.ctx.db.session() as s:
            jobs = s.scalars(select(Job)).all()
            assert all(j.state == JobState.done for j in jobs), [(j.key, j.error) for j in jobs]
            (evaluation,) = s.scalars(select(Evaluation).where(Evaluation.kind == "deep")).all()
            kinds = [j.kind for j in jobs]
            verdicts = {t.task: t.level_verdict for t in evaluation.scores}
    page = next(
        p
        for p in (workspace.settings.resolved_report_dir() / "run-a").glob("step-100-*.json")
        if "-items" not in p.name
    )
    return DeepRun(workspace, kinds, verdicts, page)
