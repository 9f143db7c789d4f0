"""Estimates with one-sided bounds and p-values: the statistics behind every verdict.

Each estimator returns an :class:`Estimate` of a quantity (a change, a gap, a score) as a
fraction, whose ``lower(alpha)`` / ``upper(alpha)`` are one-sided bounds at confidence
1 - alpha, and whose ``p_greater(t)`` / ``p_less(t)`` test "the true value is at most t" /
"at least t". Bounds and p-values are duals: ``lower(alpha) >= t`` exactly when
``p_greater(t) <= alpha``, so a verdict read off an interval and one read off a p-value agree.

- Paired binary outcomes: Agresti-Min (add 1/2 to each cell of the 2x2 table, then Wald).
- Paired non-binary outcomes: paired t on the item differences.
- Unpaired proportions: Newcombe's hybrid score interval (from two Wilson intervals); its
  p-value inverts the interval numerically (``scipy.optimize.brentq``).
- One proportion (alert levels): Wilson's score interval and its score test.
- No per-item outcomes: normal from the reported standard errors.

The reasons for each choice are in ``docs/policies.md`` ("Statistics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from scipy.optimize import brentq
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


def paired_binary(b: int, c: int, n: int) -> Pivot:
    """Change in accuracy on ``n`` paired items: ``b`` items newly right, ``c`` newly wrong.

    Agresti and Min (2005): add 1/2 to each cell of the 2x2 table and use the Wald interval,
    which keeps its coverage with few discordant items (and a non-zero width with none).
    """
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
    """A difference of two independent estimates with their standard errors."""
    se = math.sqrt(se_a**2 + se_b**2)
    return Pivot(difference, difference, se, "unpaired (standard errors)")


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


def spent_alpha(alpha: float, look: int) -> float:
    """The share of ``alpha`` spent on look ``look`` (1, 2, ...): alpha / (look (look + 1)).

    The shares sum to alpha over any number of looks (1/2 + 1/6 + 1/12 + ... = 1), so the
    union bound keeps the chance of any false alarm across all looks within alpha, whatever
    the dependence between looks.
    """
    k = max(look, 1)
    return alpha / (k * (k + 1))
