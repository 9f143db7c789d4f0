"""Corrections across a rule's benchmarks: which comparisons reject, and at what level.

A rule that fires when *any* of its m benchmarks crosses would, uncorrected, raise a false alarm
up to m times as often as one benchmark does. Holm's step-down keeps the family-wise error
within alpha; Benjamini-Hochberg's step-up keeps the false discovery rate within alpha (and,
when no benchmark truly rose, the family-wise error too).

Each procedure also gives every comparison the one-sided level its interval is shown at, chosen
so that an interval crosses exactly when its comparison is rejected: Holm's step at which the
comparison was tested (or at which testing stopped), and for Benjamini-Hochberg the
false-coverage-rate level R alpha / m of Benjamini and Yekutieli (2005), R the number rejected.

The rejections are those of ``statsmodels.stats.multitest.multipletests`` ("holm", "fdr_bh");
the tests check that. It is not called here because its Holm branch runs ``gc.collect()`` on
every call (20 ms or more), which would dominate a backtest of thousands of checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Method = Literal["holm", "bh", "none"]


def step_levels(
    p_values: Sequence[float], alpha: float, method: Method
) -> tuple[list[bool], list[float]]:
    """(rejected, one-sided level of each comparison) under ``method`` at family level alpha."""
    m = len(p_values)
    if m <= 1 or method == "none":
        return [p <= alpha for p in p_values], [alpha] * m
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected = [False] * m
    levels = [alpha / m] * m
    if method == "holm":
        for step, i in enumerate(order):
            level = alpha / (m - step)
            if p_values[i] > level:
                for j in order[step:]:
                    levels[j] = level
                break
            rejected[i] = True
            levels[i] = level
        return rejected, levels
    count = 0
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= rank * alpha / m:
            count = rank
    for i in order[:count]:
        rejected[i] = True
    return rejected, [max(count, 1) * alpha / m] * m


def adjusted(p_values: Sequence[float], method: Method) -> list[float]:
    """Adjusted p-values: comparison i is rejected at family level alpha exactly when its
    adjusted p-value is at most alpha (``multipletests``' ``pvals_corrected``)."""
    m = len(p_values)
    if m <= 1 or method == "none":
        return [min(p, 1.0) for p in p_values]
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    if method == "holm":
        running = 0.0
        for step, i in enumerate(order):
            running = max(running, min(1.0, (m - step) * p_values[i]))
            out[i] = running
        return out
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, m * p_values[i] / rank)
        out[i] = min(running, 1.0)
    return out
