"""Adaptive item choice (computerized adaptive testing) for the rule's own question.

A compact maximum-information selector over a fitted 2PL: ask the item most informative at the
checkpoint's current ability estimate, re-estimate the full-benchmark score and its band
(``estimate_full``), and stop as soon as the band says whether the score is above or below the
threshold at the stated one-sided confidence, or when ``max_items`` were asked. The band is
looked at after 10, 20, 40, ... items only, each look at an equal share of alpha, so that
stopping at the first decisive look keeps the error rate. Simulation-level:
``bench/proxy.py`` compares the items it needs with a static anchor subset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import ndtri

from tripwire.proxies.anchors import ABILITY_PRIOR_SD, estimate_full
from tripwire.proxies.irt import Array, ItemParams, ability

Answer = Literal["above", "below", "undecided"]


@dataclass(frozen=True, slots=True)
class AdaptiveResult:
    asked: list[int]
    """Items asked, in order."""
    score: float
    """Estimated full-benchmark score (fraction) when it stopped."""
    se: float
    answer: Answer


def adaptive_test(
    respond: Callable[[int], float],
    items: ItemParams,
    threshold: float,
    *,
    confidence: float = 0.95,
    misfit_sd: float = 0.0,
    min_items: int = 10,
    max_items: int = 400,
) -> AdaptiveResult:
    """Ask items one at a time until "is the full score at least ``threshold`` (fraction)?" is
    answered at one-sided ``confidence``, or ``max_items`` were asked."""
    limit = min(max_items, items.a.size)
    looks = [min_items * 2**j for j in range(64) if min_items * 2**j < limit] + [limit]
    # the band is looked at only at these counts, each at alpha / (number of looks): stopping
    # at the first look that decides then keeps the overall error within alpha (union bound)
    z = float(ndtri(1.0 - (1.0 - confidence) / len(looks)))
    asked: list[int] = []
    answers: list[float] = []
    free = np.ones(items.a.size, dtype=bool)
    theta = 0.0
    score, se, answer = float("nan"), float("inf"), "undecided"
    while len(asked) < limit:
        info = items.information(np.array([theta]))[0]
        info[~free] = -1.0
        j = int(np.argmax(info))
        asked.append(j)
        free[j] = False
        answers.append(respond(j))
        index = np.asarray(asked)
        if len(asked) not in looks:
            sub = ItemParams(items.a[index], items.b[index], items.floor)
            theta = float(ability(np.array([answers]), sub, prior_sd=ABILITY_PRIOR_SD).theta[0])
            continue
        est = estimate_full(np.array([answers]), index, items, misfit_sd)
        theta = float(est.theta[0])
        score, se = float(est.score[0]), float(est.se[0])
        if score - z * se >= threshold:
            answer = "above"
            break
        if score + z * se < threshold:
            answer = "below"
            break
    return AdaptiveResult(asked, score, se, answer)  # type: ignore[arg-type]


def responder(answers: Array) -> Callable[[int], float]:
    """A checkpoint that answers from a row of known outcomes (simulations, replays)."""
    return lambda j: float(answers[j])
