"""Anchor subsets: a few items, chosen and weighted by a fitted 2PL, that estimate the full score.

Pure numpy over a response matrix (checkpoints by rows, items by columns). ``choose_anchors``
picks, greedily, the items that measure ability best over the range that matters, and weights
each by the share of the benchmark nearest it in parameter space (as tinyBenchmarks weights its
clusters); ``estimate_full`` turns a checkpoint's answers to the anchors into an estimate of
its score on every item with a standard error; ``cross_validate`` measures that error on
checkpoints left out of the fit and calibrates the part of it the model cannot see
(``misfit_sd``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tripwire.proxies.irt import Array, ItemParams, ability, fit_2pl

ABILITY_PRIOR_SD = 2.0
"""Prior sd of a new checkpoint's ability (logits, fitted population ~ N(0, 1)): wider than the
population, because a checkpoint worth a trigger often lies beyond every checkpoint fitted."""


@dataclass(frozen=True, slots=True)
class Anchors:
    """Anchor items (indices into the full item list) and their weights (sum 1)."""

    index: Array
    weight: Array


ABILITY_RANGE = np.linspace(-2.5, 3.5, 13)
"""Abilities (logits, fitted population ~ N(0, 1)) the anchors must measure well: the fitted
range and beyond it upwards, where the checkpoints that should fire a rule lie."""


def choose_anchors(items: ItemParams, k: int, seed: int = 0) -> Anchors:
    """``k`` anchors that measure ability well across ``ABILITY_RANGE``: greedily, the item
    that most raises the sum over the range of log(1 + test information) (so no ability is
    left unmeasured). Weights: each item of the benchmark counts for the anchor nearest it in
    standardised (difficulty, log discrimination), as tinyBenchmarks weights its clusters.
    ``seed`` breaks ties only: the choice is deterministic given the parameters. The anchors
    come in the order chosen, so the first j of them are the anchors ``k = j`` would choose
    (nested stages: ``tripwire.proxies.staged``)."""
    n = items.a.size
    if k >= n:
        return Anchors(np.arange(n), np.full(n, 1.0 / n))
    info = items.information(ABILITY_RANGE)  # grid by items
    rng = np.random.default_rng(seed)
    info = info * (1.0 + 1e-9 * rng.random(n))[None, :]
    total = np.zeros(ABILITY_RANGE.size)
    taken = np.zeros(n, dtype=bool)
    chosen: list[int] = []
    for _ in range(k):
        gain = np.log1p(total[:, None] + info).sum(axis=0)
        gain[taken] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        taken[best] = True
        total += info[:, best]
    index = np.asarray(chosen)
    features = np.column_stack([items.b, np.log(items.a)])
    features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-12)
    nearest = np.argmin(
        ((features[:, None, :] - features[index][None, :, :]) ** 2).sum(axis=2), axis=1
    )
    weight = np.bincount(nearest, minlength=index.size) / n
    return Anchors(index, weight)


@dataclass(frozen=True, slots=True)
class FullEstimate:
    """Estimated full-benchmark scores (fractions) of checkpoints, with standard errors."""

    score: Array
    se: Array
    theta: Array
    theta_sd: Array


def estimate_full(
    answers: Array, anchors: Array, items: ItemParams, misfit_sd: float = 0.0
) -> FullEstimate:
    """Full-benchmark score of each checkpoint (rows of ``answers``, one column per anchor).

    Observed answers count for the anchors; every other item counts its predicted probability
    at the checkpoint's MAP ability (tinyBenchmarks' p-IRT). The variance adds the ability's
    uncertainty carried through the prediction (delta method), the Bernoulli spread of the items
    not asked, and the misfit measured on held-out checkpoints.
    """
    y = np.atleast_2d(np.asarray(answers, dtype=np.float64))
    anchor_items, rest_items = _split(items, anchors)
    ab = ability(y, anchor_items, prior_sd=ABILITY_PRIOR_SD)
    p = rest_items.p(ab.theta)
    score = (y.sum(axis=1) + p.sum(axis=1)) / items.a.size
    se = _band_se(rest_items, ab.theta, ab.sd, items.a.size, misfit_sd)
    return FullEstimate(score, se, ab.theta, ab.sd)


def expected_se(anchors: Array, items: ItemParams, misfit_sd: float, theta: float) -> float:
    """The band's standard error (fraction) for a checkpoint of ability ``theta`` before it is
    asked anything: the ability's sd from the anchors' Fisher information at ``theta`` (and the
    prior), carried through as in ``estimate_full``. For planning (``tripwire policy check``)."""
    anchor_items, rest_items = _split(items, anchors)
    at = np.array([theta])
    sd = 1.0 / np.sqrt(anchor_items.information(at).sum(axis=1) + 1.0 / ABILITY_PRIOR_SD**2)
    return float(_band_se(rest_items, at, sd, items.a.size, misfit_sd)[0])


def _split(items: ItemParams, anchors: Array) -> tuple[ItemParams, ItemParams]:
    """(the anchors' parameters, every other item's)."""
    rest = np.ones(items.a.size, dtype=bool)
    rest[anchors] = False
    return (
        ItemParams(items.a[anchors], items.b[anchors], items.floor),
        ItemParams(items.a[rest], items.b[rest], items.floor),
    )


def _band_se(rest: ItemParams, theta: Array, theta_sd: Array, n: int, misfit_sd: float) -> Array:
    """Delta method for the ability, Bernoulli spread of the items not asked, and misfit."""
    p = rest.p(theta)
    slope = rest.slope(theta).sum(axis=1) / n
    variance = (slope * theta_sd) ** 2 + np.sum(p * (1 - p), axis=1) / n**2 + misfit_sd**2
    return np.asarray(np.sqrt(variance))


@dataclass(frozen=True, slots=True)
class Validation:
    """Errors of the anchor estimate on checkpoints left out of the fit (fractions)."""

    errors: Array
    """Estimate minus the true full score, one per checkpoint."""
    model_se: Array
    """The standard error the model claims before the misfit term."""
    random_errors: Array
    """The error of the plain mean over a random subset of the same size."""
    misfit_sd: float
    """The extra spread the errors show beyond ``model_se``: sqrt(max(0, mean(e^2 - se^2)))."""

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(self.errors)))

    @property
    def random_mae(self) -> float:
        return float(np.mean(np.abs(self.random_errors)))

    def coverage(self, z: float = 1.959964) -> float:
        """Share of checkpoints whose error is inside the calibrated band ``z`` se wide."""
        se = np.sqrt(self.model_se**2 + self.misfit_sd**2)
        return float(np.mean(np.abs(self.errors) <= z * se))


def cross_validate(
    responses: Array, k: int, *, folds: int = 5, seed: int = 0, floor: float = 0.0
) -> Validation:
    """Fit on all checkpoints but one fold, estimate the fold from its anchors; every fold."""
    y = np.asarray(responses, dtype=np.float64)
    m, n = y.shape
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(m) % max(min(folds, m), 2)
    errors = np.zeros(m)
    model_se = np.zeros(m)
    random_errors = np.zeros(m)
    for f in np.unique(fold_of):
        out = fold_of == f
        fit = fit_2pl(y[~out], floor=floor)
        chosen = choose_anchors(fit.items, k, seed)
        est = estimate_full(y[out][:, chosen.index], chosen.index, fit.items)
        truth = y[out].mean(axis=1)
        errors[out] = est.score - truth
        model_se[out] = est.se
        pick = rng.choice(n, size=min(k, n), replace=False)
        random_errors[out] = y[out][:, pick].mean(axis=1) - truth
    misfit = float(np.sqrt(max(0.0, float(np.mean(errors**2 - model_se**2)))))
    return Validation(errors, model_se, random_errors, misfit)
