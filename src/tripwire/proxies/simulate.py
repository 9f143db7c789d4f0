"""A seeded item-response world for tests and ``bench/proxy.py``: items with known parameters,
checkpoints with known abilities, answers drawn from the model (with optional guessing, which
the 2PL fitted to them does not have, so the fit is never exactly right)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import numpy as np

from tripwire.policy.compare import Comparer
from tripwire.policy.engine import evaluate_rule
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.rules import Context
from tripwire.policy.schema import Rule
from tripwire.proxies.anchors import estimate_full
from tripwire.proxies.irt import Array, ItemParams
from tripwire.proxies.staged import DISAGREEMENT, look_confidence, settle


@dataclass(frozen=True, slots=True)
class World:
    """A benchmark's true item parameters, with a guessing floor per item."""

    items: ItemParams
    guessing: Array
    """Each item's chance of a right answer by luck (about 1/4 for four choices, higher for
    items with weak distractors)."""

    def p(self, theta: Array) -> Array:
        return np.asarray(
            self.guessing[None, :] + (1.0 - self.guessing[None, :]) * self.items.p(theta)
        )

    shared: float = 0.0
    """Share of the items on which every checkpoint asked together has the same luck (one
    uniform draw for all rows): successive checkpoints of one run agree on most items, where
    independent draws (0) make them disagree as much as their scores allow."""

    def answers(self, rng: np.random.Generator, theta: Array) -> Array:
        """0/1 answers of checkpoints with abilities ``theta`` (rows) to every item (columns)."""
        p = self.p(np.atleast_1d(theta))
        luck = np.asarray(rng.random(p.shape))
        if self.shared > 0:
            same = rng.random(p.shape[1]) < self.shared
            luck[:, same] = luck[0, same]
        return (luck < p).astype(np.float64)


def make_world(rng: np.random.Generator, n_items: int, guessing: float = 0.0) -> World:
    """Items with discrimination ~ lognormal(0, 0.4), difficulty ~ N(0, 1.2) and a guessing
    floor ~ N(guessing, guessing / 4) per item (so a fit with one fixed floor is never exactly
    right)."""
    a = np.exp(rng.normal(0.0, 0.4, n_items))
    b = rng.normal(0.0, 1.2, n_items)
    floor = (
        np.clip(rng.normal(guessing, guessing / 4, n_items), 0.0, 0.9)
        if guessing
        else np.zeros(n_items)
    )
    return World(ItemParams(a, b), floor)


@dataclass(frozen=True, slots=True)
class Agreement:
    """Rule verdicts on the full items and on the anchor estimate, per simulated checkpoint."""

    full: Array
    """Whether the rule fired on the full item set."""
    anchored: Array
    """Whether it fired on the anchor subset's estimate."""
    true_change_points: Array
    """The checkpoint's true change in expected full score since its baseline (points)."""

    @property
    def rate(self) -> float:
        return float(np.mean(self.full == self.anchored))

    def rate_where(self, low: float, high: float) -> float:
        """Agreement among checkpoints whose true change lies in [low, high) points."""
        inside = (self.true_change_points >= low) & (self.true_change_points < high)
        return float(np.mean(self.full[inside] == self.anchored[inside])) if inside.any() else 1.0


def leaps(rng: np.random.Generator, n: int, share: float = 0.4) -> Array:
    """Ability changes (logits) between a baseline and a checkpoint: most checkpoints drift
    (N(0, 0.15)), a ``share`` leap (uniform on 0.75 to 2 logits, about 12 to 35 points)."""
    drift = rng.normal(0.0, 0.15, n)
    leap = rng.uniform(0.75, 2.0, n)
    return np.where(rng.random(n) < share, leap, drift)


def decision_agreement(
    world: World,
    fitted: ItemParams,
    anchor_index: Array,
    misfit_sd: float,
    rule: Rule,
    rng: np.random.Generator,
    baselines: Array,
    changes: Array,
    confidence: float = 0.95,
) -> Agreement:
    """Decide ``rule`` for checkpoints ``baselines + changes`` against ``baselines`` twice,
    through the engine's own ``evaluate_rule``: once with every item scored (paired item by
    item), once with the anchors' estimate and band (``estimator: irt-anchor``): a staged
    proxy of one stage."""
    return staged_agreement(
        world, fitted, [anchor_index], misfit_sd, rule, rng, baselines, changes, confidence
    ).agreement


@dataclass(frozen=True, slots=True)
class StagedAgreement:
    """Rule verdicts of a staged proxy against the full item set, with what each cost."""

    agreement: Agreement
    stage: Array
    """The stage that decided each pair."""
    items: Array
    """Items the checkpoint was asked (the baseline is asked the stages once, however many
    checkpoints it serves: its answers are cached)."""


def staged_agreement(
    world: World,
    fitted: ItemParams,
    stages: Sequence[Array],
    misfit_sd: float,
    rule: Rule,
    rng: np.random.Generator,
    baselines: Array,
    changes: Array,
    confidence: float = 0.95,
    disagreement: float = DISAGREEMENT,
) -> StagedAgreement:
    """Decide ``rule`` for each pair with a staged proxy (``tripwire.proxies.staged``): both
    checkpoints on the anchors of ``stages[0]``, then on each larger (nested) stage while
    ``settle`` leaves the question open; the last stage is decided as the rule says. The full
    item set decides each pair too, for comparison."""
    task = rule_task(rule)
    looks = len(stages) - 1
    look = look_confidence(looks, disagreement)
    full_fired, staged_fired, stage_of, items = [], [], [], []
    for base_theta, change in zip(baselines, changes, strict=True):
        answers = world.answers(rng, np.array([base_theta, base_theta + change]))
        full = _fires(rule, _full_scores(task, answers), confidence)
        fired, reached = False, looks
        for s, index in enumerate(stages):
            scores = _anchor_scores(task, answers, index, fitted, misfit_sd)
            if s == looks:
                fired = _fires(rule, scores, confidence)
                break
            settled = settle(rule, pair_context(scores, confidence), look)
            if settled != "open":
                fired, reached = settled == "fired", s
                break
        full_fired.append(full)
        staged_fired.append(fired)
        stage_of.append(reached)
        items.append(stages[reached].size)
    agreement = Agreement(
        np.array(full_fired), np.array(staged_fired), _true_change(world, baselines, changes)
    )
    return StagedAgreement(agreement, np.array(stage_of), np.array(items))


@cache
def _item_keys(n: int) -> tuple[str, ...]:
    return tuple(f"item{j}" for j in range(n))


def _full_scores(task: str, answers: Array) -> list[Score]:
    """(baseline, current) scored on every item."""
    hashes = _item_keys(answers.shape[1])
    return [
        Score(task, float(row.mean()), None, row.size, True, hashes, row, "full") for row in answers
    ]


def _anchor_scores(
    task: str, answers: Array, index: Array, fitted: ItemParams, misfit_sd: float
) -> list[Score]:
    """(baseline, current) scored on the items ``index``: the anchors' estimate and band."""
    est = estimate_full(answers[:, index], index, fitted, misfit_sd)
    keys = _item_keys(fitted.a.size)
    hashes = tuple(keys[j] for j in index)
    return [
        Score(
            task,
            float(est.score[row]),
            float(est.se[row]),
            index.size,
            True,
            hashes,
            answers[row, index],
            f"anchors-{index.size}",
            estimator="irt-anchor",
            shared_se=misfit_sd,
        )
        for row in range(2)
    ]


def pair_context(scores: list[Score], confidence: float) -> Context:
    """The engine's context for (baseline, current) scores of one task."""
    task = scores[0].task
    return Context(
        Comparer(
            Snapshot("current", "sim", 2, {task: scores[1]}),
            Snapshot("baseline", "sim", 1, {task: scores[0]}),
        ),
        Lineage(),
        NOW,
        confidence,
    )


def _fires(rule: Rule, scores: list[Score], confidence: float) -> bool:
    return evaluate_rule(rule, pair_context(scores, confidence)).verdict == "fired"


def _true_change(world: World, baselines: Array, changes: Array) -> Array:
    """True change in expected full score, in points."""
    change = world.p(baselines + changes).mean(axis=1) - world.p(baselines).mean(axis=1)
    return np.asarray(100.0 * change)


def rule_task(rule: Rule) -> str:
    benchmarks: list[str] | None = getattr(rule, "benchmarks", None)
    if not benchmarks:
        raise ValueError(f"rule {rule.rule_id} names no benchmark")
    return benchmarks[0]


NOW = datetime(2026, 1, 1, tzinfo=UTC)
