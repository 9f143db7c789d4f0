"""Served systems as subjects: a tiny model served for real behind an OpenAI-compatible API,
scored through lm-eval's API models like its checkpoint, and taken through the whole loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tests.openai_server import served_model_app
from tests.runner.test_response_cache import GENERATE_TASK
from tests.servers import serving
from tripwire.errors import EvaluationError
from tripwire.runner import Runner
from tripwire.suites import load_suite
from tripwire.systems import SystemSpec

SUITE = """\
name: served
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
{tasks}"""
BOTH = "  - task: tiny_add\n    limit: 15\n  - task: tiny_echo\n    limit: 8\n"
GENERATIVE = "  - task: tiny_echo\n    limit: 8\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("systems")
    write_tasks(root / "evals" / "tiny", names=("add",), n_items=20)
    (root / "evals" / "tiny" / "tasks" / "tiny_echo.yaml").write_text(GENERATE_TASK)
    write_suite(root / "evals" / "both.yaml", SUITE.format(tasks=BOTH))
    write_suite(root / "evals" / "generative.yaml", SUITE.format(tasks=GENERATIVE))
    make_checkpoint(root / "ckpt", seed=4)
    return root


def test_a_served_model_scores_what_its_checkpoint_scores(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPWIRE_SYSTEM_API_KEY", "sk-test")
    suite = load_suite(workspace / "evals" / "both.yaml")
    app = served_model_app(workspace / "ckpt", "tiny", api_key="sk-test")
    with serving(app) as base:
        spec = SystemSpec(
            base_url=f"{base}/v1", model="tiny", version="v1", tokenizer=str(workspace / "ckpt")
        )
        served = Runner(progress=False).evaluate_system(spec, suite)
    local = Runner(progress=False).evaluate(workspace / "ckpt", suite)
    assert app.state.requests > 0
    for task in ("tiny_add", "tiny_echo"):
        assert served.tasks[task].items.doc_hashes == local.tasks[task].items.doc_hashes
        assert served.tasks[task].items.values == local.tasks[task].items.values
    assert served.tasks["tiny_echo"].items.answers == local.tasks["tiny_echo"].items.answers
    assert served.versions.backend == "openai-completions"
    assert served.model_path == spec.uri() and SystemSpec.parse(spec.uri()) == spec


def test_the_chat_api_scores_generative_tasks_and_names_what_it_cannot_score(
    workspace: Path,
) -> None:
    app = served_model_app(workspace / "ckpt", "tiny")
    with serving(app) as base:
        spec = SystemSpec(base_url=f"{base}/v1", model="tiny", version="v1", api="chat")
        result = Runner(progress=False).evaluate_system(
            spec, load_suite(workspace / "evals" / "generative.yaml")
        )
        assert result.tasks["tiny_echo"].n_items == 8
        with pytest.raises(EvaluationError, match="tiny_add score log-likelihoods"):
            Runner(progress=False).evaluate_system(
                spec, load_suite(workspace / "evals" / "both.yaml")
            )


def test_a_declaration_is_checked_and_its_identity_is_what_was_declared() -> None:
    from pydantic import ValidationError

    one = SystemSpec(base_url="http://h:8000/v1/", model="m", version="2026-11-30")
    assert one.base_url == "http://h:8000/v1"
    again = SystemSpec(base_url="http://h:8000/v1", model="m", version="2026-11-30")
    redeployed = SystemSpec(base_url="http://h:8000/v1", model="m", version="2026-12-01")
    assert one.content_hash == again.content_hash != redeployed.content_hash
    with pytest.raises(ValidationError, match="http or https"):
        SystemSpec(base_url="file:///etc/passwd", model="m", version="v")


@pytest.mark.slow
def test_a_registered_system_goes_through_the_loop(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tripwire.cli import app as cli
    from tripwire.store.db import Database
    from tripwire.store.models import Checkpoint, Decision, Evaluation, Job, JobState

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"name: served\nproxy_suite: {workspace / 'evals' / 'both.yaml'}\nrules:\n"
        "  - id: any-rise\n    type: delta\n    benchmarks: ['*']\n    threshold: 0.01\n"
        "    mode: point\n"
    )
    for var in ("TRIPWIRE_BROKER_URL", "TRIPWIRE_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRIPWIRE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIPWIRE_POLICY", str(policy))
    app = served_model_app(workspace / "ckpt", "tiny")
    with serving(app) as base:
        argv = ["system", "add", "assistant", "--base-url", f"{base}/v1", "--model", "tiny"]
        argv += ["--tokenizer", str(workspace / "ckpt"), "--wait"]
        for version in ("v1", "v2"):
            done = CliRunner().invoke(cli, [*argv, "--version", version])
            assert done.exit_code == 0, done.output
            assert "registered: assistant" in done.output
        again = CliRunner().invoke(cli, [*argv, "--version", "v2"])
        assert "already registered" in again.output
    db = Database(f"sqlite:///{tmp_path / 'home' / 'tripwire.db'}")
    with db.session() as s:
        subjects = s.scalars(select(Checkpoint).order_by(Checkpoint.step)).all()
        assert [c.step for c in subjects] == [1, 2]
        assert all(c.path.startswith("system+completions:") for c in subjects)
        assert all(j.state == JobState.done for j in s.scalars(select(Job)))
        assert len(s.scalars(select(Evaluation)).all()) == 2
        decided = {d.checkpoint_id for d in s.scalars(select(Decision))}
        assert decided == {c.id for c in subjects}
    db.dispose()
    reports = tmp_path / "home" / "reports" / "assistant"
    assert len([p for p in reports.glob("step-*.html") if "-items" not in p.name]) == 2
