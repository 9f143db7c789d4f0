"""Tiny real checkpoints and lm-eval task folders, built on the spot (no downloads)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine

from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.store.db import Database

TASK_TEMPLATE = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: ../data/{name}.jsonl
output_type: multiple_choice
test_split: test
fewshot_split: test
doc_to_text: "{{{{question}}}}="
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def make_checkpoint(
    path: Path,
    *,
    seed: int = 0,
    max_shard_size: str | None = None,
    ready: bool = True,
    n_embd: int = 32,
    n_layer: int = 1,
    n_positions: int = 64,
) -> Path:
    """A randomly initialised GPT-2 (1 layer, 32 wide by default) with the demo's character
    tokenizer, as safetensors. Wider and deeper ones make evaluations slow enough to interrupt."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tripwire.demo.train import build_tokenizer

    tokenizer = build_tokenizer(model_max_length_tokens=n_positions)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    path.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    tokenizer.save_pretrained(path)
    if ready:
        (path / "READY").touch()
    return path


def write_tasks(root: Path, names: tuple[str, ...] = ("add", "cmp"), n_items: int = 60) -> Path:
    """``root/tasks/<name>.yaml`` with data in ``root/data/<name>.jsonl``; returns ``root``."""
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        rng = random.Random(k)
        rows = []
        for _ in range(n_items):
            a, b = rng.randint(10, 49), rng.randint(10, 49)
            answer = a + b if name == "add" else max(a, b)
            wrong = rng.sample([x for x in range(10, 99) if x != answer], 3)
            choices = [str(answer), *map(str, wrong)]
            rng.shuffle(choices)
            op = "+" if name == "add" else " max "
            rows.append(
                {
                    "question": f"{a}{op}{b}",
                    "choices": choices,
                    "answer": choices.index(str(answer)),
                }
            )
        (root / "data" / f"tiny_{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )
        (root / "tasks" / f"{name}.yaml").write_text(TASK_TEMPLATE.format(name=f"tiny_{name}"))
    return root


def write_suite(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def binary_suite_result(
    correct: int, n_items: int, *, started_at: datetime, suite_hash: str = "s", task: str = "t"
) -> SuiteResult:
    """A stored-looking proxy result: ``correct`` of ``n_items`` right, items ``doc0..``."""
    values = [1.0] * correct + [0.0] * (n_items - correct)
    result = TaskResult(
        task=task,
        metric="acc",
        score=correct / n_items,
        stderr=None,
        n_items=n_items,
        num_fewshot=0,
        items=ItemOutcomes(doc_hashes=[f"doc{i}" for i in range(n_items)], values=values),
    )
    return SuiteResult(
        suite_name="p",
        suite_hash=suite_hash,
        model_path="/m",
        tasks={task: result},
        versions=Versions(lm_eval="x", transformers="y", torch="z", tripwire="w"),
        started_at=started_at,
        duration_s=1.0,
    )


@contextmanager
def as_table_owner(engine: Engine) -> Iterator[Connection]:
    """A transaction with the decision log's append-only triggers lifted, as the tables' owner
    (or anyone who can write a SQLite file) could: for tampering in audit tests."""
    from tripwire.store.append_only import create_guards, drop_guards

    with engine.begin() as connection:
        drop_guards(connection)
        yield connection
        create_guards(connection)


def write_decision_log(
    db: Database,
    rules: tuple[str, ...] = ("a", "b", "c", "d"),
    decided_at: datetime = datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
) -> list[int]:
    """A decision log of one checkpoint, one decision per rule, in one transaction; the ids."""
    from sqlalchemy import select

    from tripwire.store import repo
    from tripwire.store.models import Decision

    with db.session() as s:
        cp, _ = repo.record_checkpoint(s, content_hash="sha256:aa", path="/a", run="r", step=1)
        repo.lock_decision_log(s)
        for i, rule in enumerate(rules):
            repo.append_decision(
                s,
                Decision(
                    checkpoint_id=cp.id,
                    policy_name="p",
                    policy_hash="h",
                    rule_id=rule,
                    rule_type="delta",
                    severity="alert",
                    verdict="fired" if i % 2 else "not_fired",
                    statistic=1.5 + i,
                    interval_low=0.1,
                    interval_high=3.2,
                    p_value=0.01,
                    explanation="x",
                    inputs={"scores": {"t": 0.5 + i / 10}, "comparisons": [{"estimate": 1.25}]},
                    actions={"notify": []},
                    decided_at=decided_at,
                ),
            )
    with db.session() as s:
        return list(s.scalars(select(Decision.id).order_by(Decision.id)))
