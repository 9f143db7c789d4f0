"""A workspace with tiny suites, a policy and checkpoints landing in a watched folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint, write_tasks
from tripwire.settings import Settings

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


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for var in ("TRIPWIRE_BROKER_URL", "TRIPWIRE_DATABASE_URL", "TRIPWIRE_POLICY", "TRIPWIRE_HOME"):
        monkeypatch.delenv(var, raising=False)
    write_tasks(tmp_path / "evals" / "tiny")
    (tmp_path / "evals" / "proxy.yaml").write_text(PROXY)
    (tmp_path / "evals" / "deep.yaml").write_text(DEEP)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "policy.yaml").write_text(POLICY)
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
    for var in ("TRIPWIRE_BROKER_URL", "TRIPWIRE_DATABASE_URL", "TRIPWIRE_POLICY"):
        monkeypatch.delenv(var, raising=False)
    write_tasks(tmp_path / "evals" / "tiny")
    (tmp_path / "evals" / "proxy.yaml").write_text(PROXY)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "policy.yaml").write_text(
        POLICY.replace("../evals/deep.yaml", f"../evals/{deep_suite.name}")
    )
    (tmp_path / "checkpoints").mkdir()
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'home' / 'tripwire.db'}",
        policy=tmp_path / "triggers" / "policy.yaml",
        quiet_period_s=1.0,
        scan_interval_s=0.2,
    )
    return Workspace(tmp_path, tmp_path / "checkpoints", settings)
