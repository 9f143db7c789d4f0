"""Estimates with one-sided bounds and p-values: the statistics behind every verdict.

Each estimator returns an :class:`Estimate` of a quantity (a change, a gap, a score) as a
fraction, whose ``lower(alpha)`` / ``upper(alpha)`` are one-sided bounds at confidence
1 - alpha, and whose ``p_greater(t)`` / ``p_less(t)`` test "the true value is at most t" /
"at least t". Bounds and p-values are duals: ``lower(alpha) >= t`` exactly when
``p_greater(t) <= alpha``, so a verdict read off an interval and one read off a p-value agree.

- Paired binary outcomes: Tango's score interval for a paired difference, with a continuity
  correction of 1/2 on the discordant counts; it keeps its coverage when every changed item
  moves one way (emergence), where Wald-type intervals (Agresti-Min) fall to 87%.
- Paired non-binary outcomes: paired t on the item differences.
- Unpaired proportions: Newcombe's hybrid score interval (from two Wilson intervals); its
  p-value inverts the interval numerically (``scipy.optimize.brentq``).
- Unpaired non-binary values: Welch's t with Satterthwaite's degrees of freedom.
- Items shared only in part: the paired estimate on the shared items and the unpaired one on
  the rest, weighted by their inverse variances.
- One proportion (alert levels): Wilson's score interval and its score test.
- No per-item outcomes: normal from the reported standard errors.

The reasons for each choice, and the coverage measured for each, are in ``docs/policies.md``
("Statistics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from scipy.special import bdtr, bdtrc, ndtr, ndtri, stdtr, stdtrit


class Estimate(Protocol):
    """A quantity (fraction units) with one-sided bounds and p-values."""

    @property
    def estimate(self) -> float:
        """The observed value."""

    @property
    def se(self) -> float:
        """Standard error (approximate for the score intervals)."""

    @property
    def method(self) -> str: ...

    @property
    def n(self) -> int:
        """Paired items, or items scored for a single score; 0 when unpaired."""

    def lower(self, alpha: float) -> float: ...

    def upper(self, alpha: float) -> float: ...

    def p_greater(self, threshold: float) -> float:
        """p-value against "the true value is at most ``threshold``"."""

    def p_less(self, threshold: float) -> float:
        """p-value against "the true value is at least ``threshold``"."""


@lru_cache(maxsize=4096)
def quantile(alpha: float, df: float | None = None) -> float:
    """The one-sided critical value: normal, or Student t with ``df`` degrees of freedom."""
    if df is None:
        return float(ndtri(1.0 - alpha))
    return float(stdtrit(df, 1.0 - alpha))


def _sf(x: float, df: float | None) -> float:
    return float(ndtr(-x)) if df is None else float(stdtr(df, -x))


@dataclass(frozen=True, slots=True)
class Pivot:
    """An estimate with an approximately normal (or t) pivot: (centre - true) / se."""

    estimate: float
    centre: float
    """Centre of the interval (the adjusted estimate for Agresti-Min)."""
    se: float
    method: str
    n: int = 0
    df: float | None = None

    def lower(self, alpha: float) -> float:
        return self.centre - quantile(alpha, self.df) * self.se if self.se > 0 else self.centre

    def upper(self, alpha: float) -> float:
        return self.centre + quantile(alpha, self.df) * self.se if self.se > 0 else self.centre

    def p_greater(self, threshold: float) -> float:
        if self.se > 0:
            return _sf((self.centre - threshold) / self.se, self.df)
        return 0.0 if self.centre > threshold else 1.0

    def p_less(self, threshold: float) -> float:
        if self.se > 0:
            return _sf((threshold - self.centre) / self.se, self.df)
        return 0.0 if self.centre < threshold else 1.0

    def scaled(self, factor: float, offset: float = 0.0) -> Pivot:
        """``factor * x + offset`` (factor > 0)."""
        return Pivot(
            self.estimate * factor + offset,
            self.centre * factor + offset,
            self.se * factor,
            self.method,
            self.n,
            self.df,
        )


TANGO_CONTINUITY = 0.5
"""Continuity correction on ``b - c`` (items). Without it the one-sided 95% bound covers as
little as 91.9% at n = 100 to 200 when all discordance is one-way; with it, at least 94.2% for
n >= 50 over the whole grid of ``bench/validity.py``."""


@dataclass(frozen=True, slots=True)
class PairedScore:
    """Change in accuracy on ``n`` paired items: ``b`` items newly right, ``c`` newly wrong.

    Tango (1998): the score statistic for "the true difference is d",
    ``T(d) = (b - c - n d) / sqrt(n (2 q(d) + d (1 - d)))`` with ``q(d)`` the maximum-likelihood
    share of newly-wrong items under that difference, is inverted for the bounds. ``T`` falls as
    ``d`` grows, so the lower bound at level alpha is the ``d`` where ``T(d) = z(1 - alpha)`` and
    ``p_greater(d) = 1 - Phi(T(d))`` is its exact dual.
    """

    b: int
    c: int
    n: int
    method: str = "paired (Tango score)"

    @property
    def estimate(self) -> float:
        return (self.b - self.c) / self.n

    @property
    def se(self) -> float:
        """Standard error of the estimate (Agresti-Min's, which never vanishes)."""
        b2, c2, n2 = self.b + 0.5, self.c + 0.5, self.n + 2.0
        return math.sqrt(((b2 + c2) - (b2 - c2) ** 2 / n2) / n2**2)

    def statistic(self, d: float) -> float:
        """Tango's continuity-corrected score statistic for "the true difference is ``d``"."""
        return tango_statistic(self.b, self.c, self.n, d)

    def _root(self, z: float) -> float:
        """The difference ``d`` at which the statistic equals ``z``."""
        return tango_root(self.b, self.c, self.n, z)

    def lower(self, alpha: float) -> float:
        return self._root(quantile(alpha))

    def upper(self, alpha: float) -> float:
        return self._root(-quantile(alpha))

    def p_greater(self, threshold: float) -> float:
        return float(ndtr(-self.statistic(threshold)))

    def p_less(self, threshold: float) -> float:
        return float(ndtr(self.statistic(threshold)))


def tango_statistic(b: float, c: float, n: float, d: float) -> float:
    """Tango's score statistic for "the true paired difference is ``d``" on ``n`` items, ``b``
    newly right and ``c`` newly wrong, with a continuity correction of 1/2 on ``b - c``
    (counts may be expected values, for planning)."""
    if d >= 1.0:
        return -math.inf
    if d <= -1.0:
        return math.inf
    big_b = -b - c + (2 * n - b + c) * d
    big_c = -c * d * (1.0 - d)
    q = (math.sqrt(max(big_b * big_b - 8.0 * n * big_c, 0.0)) - big_b) / (4.0 * n)
    variance = n * (2.0 * q + d * (1.0 - d))
    excess = b - c - n * d
    excess = math.copysign(max(abs(excess) - TANGO_CONTINUITY, 0.0), excess)
    if variance <= 0.0:
        return 0.0 if excess == 0 else math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


@lru_cache(maxsize=65536)
def tango_root(b: int, c: int, n: int, z: float) -> float:
    """The paired difference ``d`` at which Tango's statistic equals ``z`` (it falls as ``d``
    grows): the one-sided bound at the level whose quantile is ``z``.

    Starts from the Agresti-Min bound (a close guess), brackets the root by steps of one
    standard error, then narrows the bracket with the Illinois variant of regula falsi: about
    six evaluations of the closed-form statistic instead of a general root finder's dozens,
    which a backtest of thousands of checkpoints feels.
    """
    edge = 1.0 - 1e-12

    def f(d: float) -> float:
        return tango_statistic(b, c, n, d) - z

    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    se = math.sqrt(((b2 + c2) - (b2 - c2) ** 2 / n2) / n2**2)
    x0 = min(max((b2 - c2) / n2 - z * se, -edge), edge)
    f0 = f(x0)
    if f0 == 0:
        return x0
    # secant steps first: from this guess they usually converge in three or four evaluations
    x1 = min(max(x0 + (0.05 if f0 > 0 else -0.05) * se, -edge), edge)
    f1 = f(x1)
    xs, fs = x1, f1
    for _ in range(6):
        if f1 == f0 or not math.isfinite(f1):
            break
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        if not -edge < x2 < edge:
            break
        x0, f0, x1, f1 = x1, f1, x2, f(x2)
        if f1 == 0 or abs(x1 - x0) < 1e-12:
            return x1
    x0, f0 = xs, fs  # fall back to a bracket from the first step
    direction = 1.0 if f0 > 0 else -1.0  # the root lies where the statistic is lower/higher
    step = se
    x1, f1 = x0, f0
    while (f1 > 0) == (f0 > 0):
        x0, f0 = x1, f1
        x1 = min(max(x0 + direction * step, -edge), edge)
        f1 = f(x1)
        if abs(x1) >= edge and (f1 > 0) == (f0 > 0):
            return math.copysign(1.0, x1)
        step *= 2
    lo, f_lo, hi, f_hi = (x0, f0, x1, f1) if x0 < x1 else (x1, f1, x0, f0)
    side = 0
    x = lo
    for _ in range(60):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = f(x)
        if fx == 0 or hi - lo < 1e-12:
            return x
        if fx > 0:
            lo, f_lo = x, fx
            if side == 1:
                f_hi /= 2
            side = 1
        else:
            hi, f_hi = x, fx
            if side == -1:
                f_lo /= 2
            side = -1
        if hi - lo < 1e-11:
            break
    return x


def paired_binary(b: int, c: int, n: int) -> PairedScore:
    """Change in accuracy on ``n`` paired items: ``b`` newly right, ``c`` newly wrong."""
    return PairedScore(b, c, n)


def agresti_min(b: int, c: int, n: int) -> Pivot:
    """The Agresti-Min (2005) Wald interval with 1/2 added to each cell: the engine's paired
    interval before Tango's; kept for ``bench/validity.py``, which shows where it under-covers."""
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    variance = ((b2 + c2) - (b2 - c2) ** 2 / n2) / n2**2
    return Pivot((b - c) / n, (b2 - c2) / n2, math.sqrt(variance), "paired (Agresti-Min)", n)


def paired_values(diffs: np.ndarray[Any, Any]) -> Pivot:
    """Mean of per-item differences of a non-binary metric: paired t."""
    n = int(diffs.size)
    mean = float(diffs.mean())
    se = float(diffs.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Pivot(mean, mean, se, "paired t", n, float(max(n - 1, 1)))


def from_stderrs(difference: float, se_a: float, se_b: float) -> Pivot:
    """A difference of two independent estimates with their standard errors (normal)."""
    se = math.sqrt(se_a**2 + se_b**2)
    return Pivot(difference, difference, se, "unpaired (standard errors)")


def welch(current: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> Pivot:
    """Difference of the means of two independent samples: Welch's t, Satterthwaite's df."""
    n1, n2 = int(current.size), int(reference.size)
    v1 = float(current.var(ddof=1)) / n1 if n1 > 1 else math.inf
    v2 = float(reference.var(ddof=1)) / n2 if n2 > 1 else math.inf
    diff = float(current.mean()) - float(reference.mean())
    se = math.sqrt(v1 + v2)
    if not math.isfinite(se) or se == 0.0:
        return Pivot(diff, diff, se, "unpaired (Welch t)", 0, 1.0)
    df = (v1 + v2) ** 2 / (v1**2 / max(n1 - 1, 1) + v2**2 / max(n2 - 1, 1))
    return Pivot(diff, diff, se, "unpaired (Welch t)", 0, df)


def inverse_variance(parts: list[tuple[float, float, float]], method: str, n: int) -> Pivot:
    """Independent estimates ``(estimate, centre, variance)`` of one quantity, combined with
    weights 1 / variance (normal)."""
    weights = [1.0 / v if v > 0 else 1e12 for _, _, v in parts]
    total = sum(weights)
    estimate = sum(w * e for w, (e, _, _) in zip(weights, parts, strict=True)) / total
    centre = sum(w * c for w, (_, c, _) in zip(weights, parts, strict=True)) / total
    return Pivot(estimate, centre, math.sqrt(1.0 / total), method, n)


def single_values(values: np.ndarray[Any, Any]) -> Pivot:
    """The mean of per-item values of a non-binary metric: t interval."""
    n = int(values.size)
    mean = float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Pivot(mean, mean, se, "t", n, float(max(n - 1, 1)))


def mcnemar_midp(b: int, c: int) -> float:
    """One-sided exact McNemar mid-p for "no rise at all" (b newly right, c newly wrong)."""
    m = b + c
    if m == 0:
        return 1.0
    above = float(bdtrc(b, m, 0.5))  # P(X > b)
    at = float(bdtr(b, m, 0.5)) - (float(bdtr(b - 1, m, 0.5)) if b > 0 else 0.0)
    return above + 0.5 * at


def wilson_bounds(count: float, n: float, alpha: float) -> tuple[float, float]:
    """One-sided Wilson score bounds at confidence 1 - alpha each.

    The same numbers as ``statsmodels.stats.proportion.proportion_confint(count, n,
    alpha=2 * alpha, method="wilson")`` (the tests check it), without its 40 us of argument
    handling per call, which a backtest of thousands of checkpoints would feel.
    """
    z = quantile(alpha)
    p = count / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


@dataclass(frozen=True, slots=True)
class Wilson:
    """One proportion: Wilson's score interval and the score test it inverts."""

    estimate: float
    n: int
    method: str = "Wilson score"

    @property
    def se(self) -> float:
        return math.sqrt(max(self.estimate * (1 - self.estimate), 0.25 / self.n) / self.n)

    def lower(self, alpha: float) -> float:
        return wilson_bounds(self.estimate * self.n, self.n, alpha)[0]

    def upper(self, alpha: float) -> float:
        return wilson_bounds(self.estimate * self.n, self.n, alpha)[1]

    def _z(self, threshold: float) -> float:
        t = min(max(threshold, 1e-12), 1 - 1e-12)
        return (self.estimate - t) / math.sqrt(t * (1 - t) / self.n)

    def p_greater(self, threshold: float) -> float:
        return float(ndtr(-self._z(threshold)))

    def p_less(self, threshold: float) -> float:
        return float(ndtr(self._z(threshold)))


@dataclass(frozen=True, slots=True)
class Newcombe:
    """Difference of two independent proportions ``p1 - p2``: Newcombe's hybrid score interval
    (method 10 of Newcombe 1998), built from the Wilson interval of each proportion."""

    p1: float
    n1: int
    p2: float
    n2: int
    method: str = "unpaired (Newcombe)"
    n: int = 0

    @property
    def estimate(self) -> float:
        return self.p1 - self.p2

    @property
    def se(self) -> float:
        return math.sqrt(self.p1 * (1 - self.p1) / self.n1 + self.p2 * (1 - self.p2) / self.n2)

    def lower(self, alpha: float) -> float:
        l1, _ = wilson_bounds(self.p1 * self.n1, self.n1, alpha)
        _, u2 = wilson_bounds(self.p2 * self.n2, self.n2, alpha)
        return self.estimate - math.hypot(self.p1 - l1, u2 - self.p2)

    def upper(self, alpha: float) -> float:
        _, u1 = wilson_bounds(self.p1 * self.n1, self.n1, alpha)
        l2, _ = wilson_bounds(self.p2 * self.n2, self.n2, alpha)
        return self.estimate + math.hypot(u1 - self.p1, self.p2 - l2)

    def _bound(self, alpha: float) -> float:
        """Increasing in alpha on (0, 1): the lower bound below 1/2, the upper bound above."""
        if alpha < 0.5:
            return self.lower(alpha)
        if alpha > 0.5:
            return self.upper(1.0 - alpha)
        return self.estimate

    def p_greater(self, threshold: float) -> float:
        lo, hi = 1e-12, 1.0 - 1e-12
        if self._bound(lo) >= threshold:
            return lo
        if self._bound(hi) <= threshold:
            return 1.0
        return float(brentq(lambda a: self._bound(a) - threshold, lo, hi, xtol=1e-12))

    def p_less(self, threshold: float) -> float:
        mirrored = Newcombe(1 - self.p1, self.n1, 1 - self.p2, self.n2)
        return mirrored.p_greater(-threshold)


def spent_alpha(alpha: float, look: int, horizon: int = 0) -> float:
    """The share of ``alpha`` spent on look ``look`` (1, 2, ...) of a budget planned for
    ``horizon`` looks.

    Each of the first ``horizon`` looks gets alpha / (horizon + 1); every later look k gets
    alpha / (k (k + 1)). The shares sum to alpha over any number of looks
    (horizon / (horizon + 1) + the tail 1 / (horizon + 1)), so the union bound keeps the chance
    of any false alarm across all looks within alpha, whatever the dependence between looks.
    ``horizon = 0`` is the plain alpha / (k (k + 1)) schedule.
    """
    k = max(look, 1)
    if k <= horizon:
        return alpha / (horizon + 1)
    return alpha / (k * (k + 1))


def brentq(*args: Any, **kwargs: Any) -> Any:
    """``scipy.optimize.brentq``, imported on first use: ``scipy.optimize`` costs about half a
    second to import, and most commands (``status``, ``report``) never invert an interval."""
    from scipy.optimize import brentq as found

    return found(*args, **kwargs)
