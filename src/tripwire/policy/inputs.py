"""What the decision engine reads: scores of a checkpoint, and where it sits in its run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from tripwire.suites import PROFILE_SEPARATOR


@dataclass(frozen=True, slots=True)
class Score:
    """One benchmark scored on one checkpoint, as the engine sees it."""

    task: str
    score: float
    """Fraction in [0, 1] for accuracy-like metrics."""
    stderr: float | None
    n_items: int
    higher_is_better: bool = True
    item_hashes: tuple[str, ...] | None = None
    """lm-eval document hashes, aligned with ``item_values``."""
    item_values: np.ndarray[Any, Any] | None = None
    """Per-item metric values (1.0 / 0.0 for accuracy)."""
    item_key: str | None = None
    """Digest of the ordered ``item_hashes``: equal keys mean the same items in the same order,
    so pairing needs no lookup (the store's item-set digest)."""
    estimator: str | None = None
    """How ``score`` and ``stderr`` were estimated when they are not the items' mean:
    ``irt-anchor`` is the 2PL estimate of the full benchmark's score from an anchor subset
    (``tripwire.proxies``). Comparisons then use the estimate and its standard error (the
    band), never the anchor items as if they were the benchmark."""
    shared_se: float | None = None
    """The part of ``stderr`` common to every estimate made from the same anchor file (its
    calibrated misfit, a smooth bias in ability): two such estimates on the same anchors
    (equal ``item_key``) do not count it twice in their difference."""
    binary: bool = False
    """Whether every item value is 0 or 1 (computed)."""

    def __post_init__(self) -> None:
        values = self.item_values
        if values is None or values.size == 0:
            binary = False
        elif values.dtype == np.bool_:
            binary = True
        else:
            binary = bool(np.all((values == 0) | (values == 1)))
        object.__setattr__(self, "binary", binary)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checkpoint's proxy results."""

    checkpoint: str
    """Content hash."""
    run: str
    step: int | None
    scores: dict[str, Score]
    training_flop: float | None = None
    evaluated_at: datetime | None = None
    """When the proxy evaluation was stored (the checkpoint's time in backtests)."""


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where the checkpoint sits in its run, for rules that look beyond two snapshots."""

    looks_since_baseline: int = 1
    """1 for the first checkpoint decided after the baseline, 2 for the next, ..."""
    looks_in_run: int = 1
    """1 for the run's first decided checkpoint, 2 for the next, ..."""
    baseline_at: datetime | None = None
    """When the baseline's deep evaluation was dispatched (``cadence`` rules)."""


def benchmarks_of(names: Iterable[str]) -> list[str]:
    """What ``benchmarks: ["*"]`` means: every task, not its elicitation profiles' own rows
    (``task@profile``; the task's row already holds the best of them)."""
    return sorted(n for n in names if PROFILE_SEPARATOR not in n)
