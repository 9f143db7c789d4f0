"""A run decided live, with stored results that carry per-item texts: the fixture behind the
decision, page and review tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import update

from tripwire.decisions import decide_checkpoint
from tripwire.policy.schema import LoadedPolicy, load_policy
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Evaluation

START = datetime(2026, 1, 1, tzinfo=UTC)
N = 2000
POLICY = """\
name: live
proxy_suite: proxy.yaml
rules:
  - id: plus-5
    type: delta
    benchmarks: [t]
    threshold: 5
    sequential: {looks: 10}
    actions: {deep_suites: [deep.yaml]}
  - id: plus-12-hold
    type: delta
    benchmarks: [t]
    threshold: 12
    mode: point
    severity: critical
    actions: {deep_suites: [deep.yaml], notify: [safety-team], review_hold: true}
  - id: flop-backstop
    type: compute
    above_flop: 5.0e22
    actions: {notify: [safety-team]}
  - id: monthly
    type: cadence
    every: 30d
    actions: {deep_suites: [deep.yaml]}
"""
OTHER = """\
name: stricter
proxy_suite: proxy.yaml
rules:
  - id: plus-3
    type: delta
    benchmarks: [t]
    threshold: 3
    mode: point
    actions: {deep_suites: [deep.yaml]}
"""
# step, accuracy, training FLOP, day of the proxy evaluation
RUN = [
    (100, 0.40, 1e22, 0),  # the run's first baseline
    (200, 0.42, 2e22, 5),
    (300, 0.50, 3e22, 10),  # +10: an established +5, the next baseline
    (400, 0.53, 6e22, 20),  # crosses 5e22 FLOP (a notification, no deep evaluation)
    (500, 0.66, 7e22, 30),  # +16 over 300: both rises fire, a critical review hold
    (600, 0.67, 8e22, 40),  # the held 500 is no baseline: compared with 300 again
    (700, 0.68, 9e22, 75),  # and 65 days since the baseline's evaluation
]


def write_policy(tmp_path: Path, text: str = POLICY, name: str = "policy.yaml") -> LoadedPolicy:
    (tmp_path / "proxy.yaml").write_text(
        "name: p\nkind: proxy\ntasks:\n  - {task: t, limit: 300}\n"
    )
    (tmp_path / "deep.yaml").write_text("name: d\nkind: deep\ntasks:\n  - task: w\n")
    (tmp_path / name).write_text(text)
    return load_policy(tmp_path / name)


def result(accuracy: float, seed: int) -> SuiteResult:
    """About ``accuracy`` of the items right: the easier ones (fixed across checkpoints, as real
    checkpoints keep getting the easy items right), with 3% of answers flipped at random; each
    item with a prompt, its target and the checkpoint's answer."""
    difficulty = np.random.default_rng(0).permutation(N) / N
    flips = np.random.default_rng(seed).random(N) < 0.03
    values = ((difficulty < accuracy) ^ flips).astype(float)
    texts = [(f"Q{i}: what is {i} + {i}?=", str(2 * i)) for i in range(N)]
    answers = [str(2 * i) if v else str(2 * i + 1) for i, v in enumerate(values)]
    task = TaskResult(
        task="t",
        metric="acc",
        score=float(values.mean()),
        stderr=None,
        n_items=N,
        num_fewshot=0,
        items=ItemOutcomes(
            doc_hashes=[f"doc{i}" for i in range(N)],
            values=list(values),
            texts=texts,
            answers=answers,
        ),
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


def land(db: Database, step: int, accuracy: float, flop: float, day: int) -> int:
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s,
            content_hash=f"sha256:{step:064d}",
            path=f"/ck/{step}",
            run="r",
            step=step,
            training_flop=flop,
        )
        evaluation = repo.save_evaluation(s, cp, result(accuracy, step), "proxy")
        s.execute(
            update(Evaluation)
            .where(Evaluation.id == evaluation.id)
            .values(created_at=START + timedelta(days=day))
        )
        return cp.id


def decide_live(db: Database, policy: LoadedPolicy) -> list[int]:
    ids = []
    for step, accuracy, flop, day in RUN:
        ids.append(land(db, step, accuracy, flop, day))
        with db.session() as s:
            cp = s.get(Checkpoint, ids[-1])
            assert cp is not None
            outcome = decide_checkpoint(s, policy, cp, datetime.now(UTC))
            assert outcome is not None
    return ids
