"""Synthetic checkpoints for power studies, tests and benchmarks of the decision engine.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import expit

from tripwire.policy.compare import Comparer
from tripwire.policy.engine import evaluate_rule
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.rules import Context
from tripwire.policy.schema import Rule

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
    return float(brentq(lambda a: model.accuracy(a) - accuracy, -50.0, 50.0, xtol=1e-12))


def score(task: str, values: np.ndarray[Any, Any], key: str) -> Score:
    """A per-item score as the engine sees it (items keyed by ``key``)."""
    n = int(values.size)
    hashes = _hashes(n)
    return Score(task, float(values.mean()), None, n, True, hashes, values, key)


@lru_cache(maxsize=64)
def _hashes(n: int) -> tuple[str, ...]:
    return tuple(f"item-{i}" for i in range(n))


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


def fire_rate(
    rule: Rule,
    *,
    changes: dict[str, float],
    n_items: int,
    replicates: int,
    seed: int,
    model: ItemModel | None = None,
    looks: int = 1,
    confidence: float = 0.95,
) -> Rate:
    """How often ``rule`` fires against one baseline over ``looks`` checkpoints.

    ``changes`` gives each benchmark's true change (fraction) at every look; each benchmark has
    its own ``n_items`` items. With several looks, a replicate counts once if any look fired
    (the false-alarm rate over a run).
    """
    model = model or ItemModel()
    rng = np.random.default_rng(seed)
    fired = 0
    for _ in range(replicates):
        items = {task: model.difficulties(rng, n_items) for task in changes}
        baseline = Snapshot(
            "baseline",
            "sim",
            0,
            {t: score(t, model.answers(rng, d), t) for t, d in items.items()},
        )
        for look in range(1, looks + 1):
            current = Snapshot(
                f"look-{look}",
                "sim",
                look,
                {t: score(t, model.answers(rng, d, changes[t]), t) for t, d in items.items()},
            )
            ctx = Context(Comparer(current, baseline), Lineage(look, look + 1), NOW, confidence)
            if evaluate_rule(rule, ctx).fired:
                fired += 1
                break
    return Rate(fired, replicates)
