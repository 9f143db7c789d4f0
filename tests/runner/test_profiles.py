"""Elicitation profiles through lm-eval: each profile scores, the best over them is the task's
score, the gap and every profile's inference compute are kept, and all of it is stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tests.runner.test_response_cache import GENERATE_TASK
from tripwire.errors import EvaluationError, SuiteError
from tripwire.policy.schema import load_policy
from tripwire.runner import Runner
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import TaskScore
from tripwire.suites import load_suite

DIGIT_TASK = (
    GENERATE_TASK.replace("task: tiny_echo", "task: tiny_digit")
    .replace("{{choices[answer]}}", "{{ (choices[answer] | string)[0] }}")
    .replace('until: ["\\n"]', "until: []")
    .replace("max_gen_toks: 4", "max_gen_toks: 1")
)

SUITE = """\
name: elicited
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
    profiles:
      - {name: zero_shot, num_fewshot: 0}
      - {name: few_shot, num_fewshot: 3}
  - task: tiny_digit
    limit: 40
    profiles:
      - {name: greedy}
      - {name: self_consistency, samples: 6, select: majority, temperature: 1.5}
      - {name: best_of_n, samples: 6, select: best, temperature: 1.5}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("profiles")
    write_tasks(root / "evals" / "tiny", names=("add",), n_items=40)
    (root / "evals" / "tiny" / "tasks" / "tiny_digit.yaml").write_text(DIGIT_TASK)
    write_suite(root / "evals" / "suite.yaml", SUITE)
    make_checkpoint(root / "ckpt", seed=5)
    return root


@pytest.fixture(scope="module")
def result(workspace: Path):  # type: ignore[no-untyped-def]
    return Runner(progress=False).evaluate(
        workspace / "ckpt", load_suite(workspace / "evals" / "suite.yaml")
    )


def test_each_profile_scores_through_lm_eval_and_the_best_is_the_task_score(
    workspace: Path, result
) -> None:  # type: ignore[no-untyped-def]
    rows = result.tasks
    assert set(rows) == {
        "tiny_add",
        "tiny_add@zero_shot",
        "tiny_add@few_shot",
        "tiny_digit",
        "tiny_digit@greedy",
        "tiny_digit@self_consistency",
        "tiny_digit@best_of_n",
    }
    assert (
        rows["tiny_add@zero_shot"].num_fewshot == 0 and rows["tiny_add@few_shot"].num_fewshot == 3
    )
    # a profile scores exactly what the same settings score as a plain task
    plain = write_suite(
        workspace / "evals" / "plain.yaml",
        "name: plain\nkind: proxy\ninclude: [tiny]\nbootstrap_iters: 0\ntasks:\n"
        "  - task: tiny_add\n    num_fewshot: 3\n",
    )
    alone = Runner(progress=False).evaluate(workspace / "ckpt", load_suite(plain))
    assert rows["tiny_add@few_shot"].items.values == alone.tasks["tiny_add"].items.values
    for task, profiles in (
        ("tiny_add", ("zero_shot", "few_shot")),
        ("tiny_digit", ("greedy", "self_consistency", "best_of_n")),
    ):
        best = rows[task]
        assert best.elicitation is not None
        scores = {p: rows[f"{task}@{p}"].score for p in profiles}
        assert best.elicitation.scores == scores
        assert best.score == max(scores.values()) and best.profile == best.elicitation.best
        assert best.elicitation.gap == pytest.approx(best.score - scores[profiles[0]])
        assert best.items.doc_hashes == rows[f"{task}@{best.profile}"].items.doc_hashes


def test_best_of_n_takes_a_correct_sample_wherever_majority_voting_does(result) -> None:  # type: ignore[no-untyped-def]
    majority = result.tasks["tiny_digit@self_consistency"].items
    best = result.tasks["tiny_digit@best_of_n"].items
    assert majority.doc_hashes == best.doc_hashes
    # the same seeded samples: whenever the vote is right, some sample is right
    assert all(b >= m for m, b in zip(majority.values, best.values, strict=True))
    assert sum(best.values) > sum(result.tasks["tiny_digit@greedy"].items.values)


def test_each_profile_records_its_inference_compute(result) -> None:  # type: ignore[no-untyped-def]
    greedy = result.tasks["tiny_digit@greedy"]
    voted = result.tasks["tiny_digit@self_consistency"]
    assert greedy.inference_tokens and voted.inference_tokens
    assert greedy.inference_flop and voted.inference_flop
    assert voted.inference_tokens >= 5 * greedy.inference_tokens  # six samples an item
    elicitation = result.tasks["tiny_digit"].elicitation
    assert elicitation.inference_flop["self_consistency"] == voted.inference_flop


def test_profiles_are_stored_and_a_policy_reads_them(
    database_url: str, workspace: Path, result, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = Database(database_url)
    with db.session() as s:
        cp, _ = repo.record_checkpoint(s, content_hash="sha256:p", path="/p", run="r", step=1)
        repo.save_evaluation(
            s, cp, result.model_copy(update={"started_at": datetime.now(UTC)}), "proxy"
        )
    with db.session() as s:
        rows = {t.task: t for t in s.scalars(select(TaskScore))}
        assert rows["tiny_digit@best_of_n"].profile == "best_of_n"
        assert rows["tiny_digit"].elicitation["default"] == "greedy"
        assert rows["tiny_digit@self_consistency"].inference_flop == pytest.approx(
            result.tasks["tiny_digit@self_consistency"].inference_flop
        )
    db.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"name: gaps\nproxy_suite: {workspace / 'evals' / 'suite.yaml'}\nrules:\n"
        "  - id: gap\n    type: elicitation_gap\n    default: tiny_digit@greedy\n"
        "    elicited: [tiny_digit@self_consistency, tiny_digit@best_of_n]\n"
        "    threshold: 5\n"
    )
    assert load_policy(policy).policy.rules[0].id == "gap"


def test_samples_need_a_generative_task_and_a_selection(workspace: Path) -> None:
    path = workspace / "evals" / "bad.yaml"
    write_suite(
        path,
        SUITE.replace(
            "{name: few_shot, num_fewshot: 3}", "{name: voted, samples: 4, select: majority}"
        ),
    )
    with pytest.raises(EvaluationError, match="need a generative task"):
        Runner(progress=False).evaluate(workspace / "ckpt", load_suite(path))
    write_suite(path, SUITE.replace("select: majority, ", ""))
    with pytest.raises(SuiteError, match="need select: majority or best"):
        load_suite(path)
