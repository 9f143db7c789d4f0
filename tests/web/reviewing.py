"""A small decided run, tokens and a signed-in browser for the review tests.

The run is decided through ``tripwire.decisions.decide_checkpoint`` on stored results (as
``tests/decisions/test_records.py`` does): nothing about decisions is faked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import update
from starlette.testclient import TestClient

from tripwire import tokens
from tripwire.decisions import decide_checkpoint
from tripwire.policy.schema import LoadedPolicy, load_policy
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Evaluation, Role

START = datetime(2026, 1, 1, tzinfo=UTC)
N_ITEMS = 2000
POLICY = """\
name: review-test
proxy_suite: proxy.yaml
rules:
  - id: rise-5
    type: delta
    benchmarks: [t]
    threshold: 5
    mode: point
    actions: {deep_suites: [deep.yaml]}
  - id: rise-12-hold
    type: delta
    benchmarks: [t]
    threshold: 12
    mode: point
    severity: critical
    actions: {deep_suites: [deep.yaml], notify: [safety-team], review_hold: true}
"""


def content_hash(step: int) -> str:
    """Steps' hashes share their first 60 hex characters: prefixes can be ambiguous."""
    return f"sha256:{step:064d}"


def hex_of(step: int) -> str:
    return content_hash(step).removeprefix("sha256:")


def load_test_policy(tmp_path: Path) -> LoadedPolicy:
    (tmp_path / "proxy.yaml").write_text("name: p\nkind: proxy\ntasks:\n  - {task: t}\n")
    (tmp_path / "deep.yaml").write_text("name: d\nkind: deep\ntasks:\n  - task: w\n")
    (tmp_path / "policy.yaml").write_text(POLICY)
    return load_policy(tmp_path / "policy.yaml")


def _result(accuracy: float, seed: int) -> SuiteResult:
    difficulty = np.random.default_rng(0).permutation(N_ITEMS) / N_ITEMS
    flips = np.random.default_rng(seed).random(N_ITEMS) < 0.01
    values = ((difficulty < accuracy) ^ flips).astype(float)
    task = TaskResult(
        task="t",
        metric="acc",
        score=float(values.mean()),
        stderr=None,
        n_items=N_ITEMS,
        num_fewshot=0,
        items=ItemOutcomes(doc_hashes=[f"doc{i}" for i in range(N_ITEMS)], values=list(values)),
    )
    return SuiteResult(
        suite_name="p",
        suite_hash="s",
        model_path="/m",
        tasks={"t": task},
        versions=Versions(lm_eval="x", transformers="y", torch="z", tripwire="w"),
        started_at=START,
        duration_s=1.0,
    )


def land(db: Database, step: int, accuracy: float, day: int | None = None) -> int:
    """A checkpoint of run ``r`` with its proxy evaluation stored (not decided)."""
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash=content_hash(step), path=f"/ck/{step}", run="r", step=step
        )
        evaluation = repo.save_evaluation(s, cp, _result(accuracy, step), "proxy")
        s.execute(
            update(Evaluation)
            .where(Evaluation.id == evaluation.id)
            .values(created_at=START + timedelta(days=step // 100 if day is None else day))
        )
        return cp.id


def decide(db: Database, policy: LoadedPolicy, checkpoint_id: int) -> None:
    with db.session() as s:
        cp = s.get(Checkpoint, checkpoint_id)
        assert cp is not None
        assert decide_checkpoint(s, policy, cp, datetime.now(UTC)) is not None


def land_and_decide(db: Database, policy: LoadedPolicy, step: int, accuracy: float) -> int:
    checkpoint_id = land(db, step, accuracy)
    decide(db, policy, checkpoint_id)
    return checkpoint_id


def make_token(db: Database, name: str, role: Role) -> str:
    with db.session() as s:
        return tokens.create_token(s, name=name, role=role)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(client: TestClient, token: str) -> None:
    """Sign ``client`` in through the login form, as a browser does."""
    page = client.get("/login")
    assert page.status_code == 200
    response = client.post(
        "/login",
        data={"token": token, "csrf_token": form_csrf(page.text), "next": "/reviews"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/reviews"


def form_csrf(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found is not None, html
    return found.group(1)
