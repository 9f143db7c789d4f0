"""Synthetic checkpoints for power studies, tests and benchmarks of the decision engine.

Every figure is measured through the engine's own public functions: ``evaluate_rule`` for one
look, ``backtest.replay`` for whole runs (the very function ``tripwire backtest`` runs and the
live loop shares), and the estimators' own bounds for coverage.

Items have difficulties d ~ Normal(0, ``difficulty_sd``) logits; a checkpoint of ability theta
answers item i correctly with probability sigmoid(theta - d_i), independently across items and
checkpoints given the items. Two checkpoints on the same items are then correlated through
the items' difficulty, as real checkpoints are: the hard items stay wrong and the easy ones
right, and only the items near a checkpoint's ability change answer (the discordance).

A "true change" of +5 points is a rise of the expected accuracy over the item population by
0.05; the abilities are solved for exactly (Gauss-Hermite integration over difficulties).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import binom

from tripwire.policy.backtest import replay
from tripwire.policy.compare import Comparer
from tripwire.policy.engine import BASELINE_RULE_ID, evaluate_rule
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.rules import Context
from tripwire.policy.schema import Actions, Policy, Rule
from tripwire.policy.stats import Estimate
from tripwire.policy.verdicts import RuleVerdict

_NODES, _WEIGHTS = hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ItemModel:
    """A population of items and how checkpoints answer them."""

    difficulty_sd: float = 2.5
    """Spread of item difficulty, in logits. 2.5 with a 60% baseline gives a discordance of
    25% between two checkpoints of equal ability (``tripwire policy check``'s assumption)."""
    base_accuracy: float = 0.6
    """Expected accuracy of the baseline checkpoint."""

    def accuracy(self, ability: float) -> float:
        """Expected accuracy over the item population at ``ability``."""
        return float(np.dot(_WEIGHTS, expit(ability - self.difficulty_sd * _NODES)))

    def ability(self, accuracy: float) -> float:
        """The ability whose expected accuracy is ``accuracy``."""
        return _ability(self.difficulty_sd, accuracy)

    def discordance(self, change: float = 0.0) -> float:
        """Expected share of items answered differently by the baseline and a checkpoint
        ``change`` (fraction) above it."""
        d = self.difficulty_sd * _NODES
        p0 = expit(self.ability(self.base_accuracy) - d)
        p1 = expit(self.ability(self.base_accuracy + change) - d)
        return float(np.dot(_WEIGHTS, p0 * (1 - p1) + p1 * (1 - p0)))

    @classmethod
    def for_discordance(
        cls, discordance: float, base_accuracy: float = 0.6, change: float = 0.0
    ) -> ItemModel:
        """The item population in which a checkpoint ``change`` above the baseline disagrees
        with it on ``discordance`` of the items (at no change, at most 2 p (1 - p) of the base
        accuracy p)."""

        def gap(sd: float) -> float:
            return cls(sd, base_accuracy).discordance(change) - discordance

        lo, hi = 1e-3, 200.0
        if gap(lo) * gap(hi) > 0:
            raise ValueError(
                f"no item population has discordance {discordance:.3f} at a change of "
                f"{change:+.3f} from {base_accuracy:.0%}"
            )
        return cls(float(brentq(gap, lo, hi, xtol=1e-6)), base_accuracy)

    def difficulties(self, rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
        return rng.normal(0.0, self.difficulty_sd, n)

    def answers(
        self, rng: np.random.Generator, difficulties: np.ndarray[Any, Any], change: float = 0.0
    ) -> np.ndarray[Any, Any]:
        """Outcomes (bool) of a checkpoint ``change`` above the baseline's accuracy."""
        p = expit(self.ability(self.base_accuracy + change) - difficulties)
        out: np.ndarray[Any, Any] = rng.random(difficulties.size) < p
        return out


@lru_cache(maxsize=1024)
def _ability(difficulty_sd: float, accuracy: float) -> float:
    model = ItemModel(difficulty_sd)
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy {accuracy} must be strictly between 0 and 1")
    return float(brentq(lambda a: model.accuracy(a) - accuracy, -5000.0, 5000.0, xtol=1e-12))


def score(task: str, values: np.ndarray[Any, Any], key: str) -> Score:
    """A per-item score as the engine sees it (items keyed by ``key``)."""
    n = int(values.size)
    hashes = _hashes(n, key)
    return Score(task, float(values.mean()), None, n, True, hashes, values, key)


@lru_cache(maxsize=4096)
def _hashes(n: int, key: str) -> tuple[str, ...]:
    return tuple(f"{key}:item-{i}" for i in range(n))


@dataclass(frozen=True, slots=True)
class Rate:
    """How often a rule fired over simulated replicates."""

    fired: int
    replicates: int

    @property
    def rate(self) -> float:
        return self.fired / self.replicates

    @property
    def se(self) -> float:
        """Monte Carlo standard error of ``rate``."""
        p = self.rate
        return math.sqrt(max(p * (1 - p), 1e-12) / self.replicates)


def _answers(
    rng: np.random.Generator,
    items: dict[str, np.ndarray[Any, Any]],
    models: dict[str, ItemModel],
    default: ItemModel,
    changes: dict[str, float],
    shared_items: dict[str, str],
) -> dict[str, Score]:
    return {
        t: score(
            t,
            models.get(t, default).answers(rng, d, changes.get(t, 0.0)),
            shared_items.get(t, t),
        )
        for t, d in items.items()
    }


def fire_rate(
    rule: Rule,
    *,
    changes: dict[str, float],
    n_items: int | dict[str, int],
    replicates: int,
    seed: int,
    model: ItemModel | None = None,
    models: dict[str, ItemModel] | None = None,
    looks: int = 1,
    confidence: float = 0.95,
    shared_items: dict[str, str] | None = None,
    first_look: int = 1,
    target: str | None = None,
) -> Rate:
    """How often ``rule`` fires against one baseline over ``looks`` checkpoints.

    ``changes`` gives each benchmark's true change (fraction) at every look; each benchmark has
    its own items (``n_items``, one count or one per task) from its own population (``models``,
    default ``model``), except tasks in ``shared_items``, which ask the same items as another
    task (elicitation profiles: paired on the same documents). With several looks, a
    replicate counts once if any look fired (the false-alarm rate over a run). Looks are
    numbered from ``first_look`` within the run and since the baseline. ``target``: count the
    fires of this nested rule (as decided inside ``rule``, its corrections included) instead.
    """
    default = model or ItemModel()
    models = models or {}
    shared_items = shared_items or {}
    counts = n_items if isinstance(n_items, dict) else dict.fromkeys(changes, n_items)
    rng = np.random.default_rng(seed)
    fired = 0
    for _ in range(replicates):
        items = {
            t: models.get(t, default).difficulties(rng, counts[t])
            for t in changes
            if t not in shared_items
        }
        items.update({t: items[other] for t, other in shared_items.items()})

        baseline = Snapshot(
            "baseline", "sim", 0, _answers(rng, items, models, default, {}, shared_items)
        )
        for look in range(first_look, first_look + looks):
            scores = _answers(rng, items, models, default, changes, shared_items)
            current = Snapshot(f"look-{look}", "sim", look, scores)
            lineage = Lineage(look, look)
            ctx = Context(Comparer(current, baseline), lineage, NOW, confidence)
            verdict = evaluate_rule(rule, ctx)
            if target is not None:
                verdict = _find(verdict, target) or verdict
            if verdict.fired:
                fired += 1
                break
    return Rate(fired, replicates)


def _find(verdict: RuleVerdict, rule_id: str) -> RuleVerdict | None:
    if verdict.rule_id == rule_id:
        return verdict
    for child in verdict.children:
        found = _find(child, rule_id)
        if found is not None:
            return found
    return None


def run_fire_rate(
    policy: Policy,
    *,
    items: dict[str, int],
    looks: int,
    runs: int,
    seed: int,
    models: dict[str, ItemModel] | None = None,
    changes: dict[str, float] | None = None,
    shared_items: dict[str, str] | None = None,
    count: set[str] | None = None,
) -> Rate:
    """How often any rule of ``policy`` fires over a run of ``looks`` checkpoints after the
    first, each with true change ``changes`` (default none) from the first.

    Runs go through ``backtest.replay``, so baselines move where a rule with deep suites fires
    and alpha spending counts looks as the live loop does. ``items``: items per task;
    ``models``: each task's item population (default ``ItemModel()``); ``shared_items``:
    tasks that ask the same items as another task (elicitation profiles); ``count``: only
    these top-level rules' fires count.
    """
    rng = np.random.default_rng(seed)
    models = models or {}
    changes = changes or {}
    shared_items = shared_items or {}
    initial = Actions(deep_suites=[Path("initial-deep-suite")])
    fired = 0
    for r in range(runs):
        difficulty: dict[str, np.ndarray[Any, Any]] = {}
        for task, n in items.items():
            if task not in shared_items:
                difficulty[task] = models.get(task, ItemModel()).difficulties(rng, n)
        for task, other in shared_items.items():
            difficulty[task] = difficulty[other]

        steps = replay(
            policy,
            _run(rng, f"run-{r}", difficulty, looks, models, changes, shared_items),
            initial_actions=initial,
        )
        counted = (
            v.fired and v.rule_id != BASELINE_RULE_ID and (count is None or v.rule_id in count)
            for s in steps
            for v in s.verdicts
        )
        if any(counted):
            fired += 1
    return Rate(fired, runs)


def _run(
    rng: np.random.Generator,
    name: str,
    difficulty: dict[str, np.ndarray[Any, Any]],
    looks: int,
    models: dict[str, ItemModel],
    changes: dict[str, float],
    shared_items: dict[str, str],
) -> Iterator[Snapshot]:
    """The run's first checkpoint, then ``looks`` more at ``changes`` from it."""
    for index in range(looks + 1):
        scores = {}
        for task, d in difficulty.items():
            change = changes.get(task, 0.0) if index else 0.0
            values = models.get(task, ItemModel()).answers(rng, d, change)
            scores[task] = score(task, values, f"{name}:{shared_items.get(task, task)}")
        yield Snapshot(f"{name}:{index}", name, index, scores)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Exact coverage of an estimator's one-sided bounds at one true (p12, p21)."""

    lower: float
    """P(lower bound <= true difference)."""
    upper: float
    """P(upper bound >= true difference)."""

    @property
    def worst(self) -> float:
        return min(self.lower, self.upper)


def paired_coverage(
    estimator: Any, n: int, p12: float, p21: float, alpha: float = 0.05
) -> Coverage:
    """Exact coverage of ``estimator(b, c, n)``'s bounds on n paired items with true shares
    ``p12`` (newly right) and ``p21`` (newly wrong), summed over every (b, c) of the
    multinomial; cells of negligible probability (< 1e-12 together) are skipped."""
    true = p12 - p21
    lower = upper = 0.0
    if p21 == 0.0:
        cells = [(b, 0, float(binom.pmf(b, n, p12))) for b in range(n + 1)]
    elif p12 == 0.0:
        cells = [(0, c, float(binom.pmf(c, n, p21))) for c in range(n + 1)]
    else:
        cells = []
        m_pmf = binom.pmf(np.arange(n + 1), n, p12 + p21)
        share = p12 / (p12 + p21)
        for m in range(n + 1):
            if m_pmf[m] < 1e-14:
                continue
            b_pmf = binom.pmf(np.arange(m + 1), m, share)
            cells += [(b, m - b, float(m_pmf[m] * b_pmf[b])) for b in range(m + 1)]
    for b, c, prob in cells:
        if prob < 1e-15:
            continue
        est: Estimate = estimator(b, c, n)
        if est.lower(alpha) <= true + 1e-12:
            lower += prob
        if est.upper(alpha) >= true - 1e-12:
            upper += prob
    return Coverage(lower, upper)
