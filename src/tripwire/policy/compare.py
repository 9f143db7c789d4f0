"""Measuring a change between two scores: paired on shared items when possible, else unpaired.

Changes are in the capability direction (a fall of a lower-is-better metric is a rise) and in
fraction units; rules scale them to points, relative or error-rate reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tripwire.policy.inputs import Score, Snapshot
from tripwire.policy.stats import (
    Estimate,
    Newcombe,
    Pivot,
    Wilson,
    from_stderrs,
    paired_binary,
    paired_values,
    single_values,
)

MIN_SHARED = 0.5
"""Pair only when the shared items are at least this share of the smaller item set; with fewer,
an unpaired comparison over all items carries more information."""


@dataclass(frozen=True, slots=True)
class Change:
    """A change of one score relative to a reference score."""

    est: Estimate
    """The change as a fraction, in the capability direction."""
    base: float
    """The reference score in the capability direction (for relative scales)."""
    discordant: tuple[int, int] | None = None
    """Paired binary items newly right and newly wrong."""


def scale_factor(scale: str, base: float) -> float:
    """Multiply a change in fraction units by this to express it in ``scale``.

    ``points``: x 100. ``relative``: percent of the reference score. ``error_rate_reduction``:
    percent of the reference's errors removed. Infinite when the reference makes it undefined.
    """
    if scale == "points":
        return 100.0
    if scale == "relative":
        return 100.0 / base if base > 0 else math.inf
    errors = 1.0 - base
    return 100.0 / errors if errors > 0 else math.inf


def _aligned(
    current: Score, reference: Score
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    cur, ref = current.item_values, reference.item_values
    if cur is None or ref is None:
        return None
    if current.item_key is not None and current.item_key == reference.item_key:
        return (cur, ref) if cur.size == ref.size else None
    if current.item_hashes is None or reference.item_hashes is None:
        return None
    if current.item_hashes is reference.item_hashes or current.item_hashes == reference.item_hashes:
        return (cur, ref) if cur.size == ref.size else None
    index = {h: i for i, h in enumerate(reference.item_hashes)}
    pairs = [(i, index[h]) for i, h in enumerate(current.item_hashes) if h in index]
    smaller = min(len(current.item_hashes), len(reference.item_hashes))
    if len(pairs) < max(2, math.ceil(MIN_SHARED * smaller)):
        return None
    ci = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
    ri = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
    return cur[ci], ref[ri]


def measure_change(current: Score, reference: Score) -> Change | None:
    """``current`` minus ``reference``; None when neither items nor standard errors allow it."""
    flip = not current.higher_is_better
    base = 1.0 - reference.score if flip else reference.score
    pair = _aligned(current, reference)
    if pair is not None:
        cur, ref = pair
        if current.binary and reference.binary:
            up = int(np.count_nonzero(cur > ref))
            down = int(np.count_nonzero(cur < ref))
            if flip:
                up, down = down, up
            return Change(paired_binary(up, down, int(cur.size)), base, (up, down))
        diffs = cur.astype(np.float64) - ref.astype(np.float64)
        return Change(paired_values(-diffs if flip else diffs), base)
    sign = -1.0 if flip else 1.0
    if current.binary and reference.binary:
        return Change(_newcombe(current, reference, flip), base)
    cur_v, ref_v = current.item_values, reference.item_values
    if cur_v is not None and ref_v is not None and cur_v.size > 1 and ref_v.size > 1:
        se_c = float(cur_v.std(ddof=1)) / math.sqrt(cur_v.size)
        se_r = float(ref_v.std(ddof=1)) / math.sqrt(ref_v.size)
        diff = sign * (float(cur_v.mean()) - float(ref_v.mean()))
        return Change(from_stderrs(diff, se_c, se_r), base)
    if current.stderr is not None and reference.stderr is not None:
        diff = sign * (current.score - reference.score)
        return Change(from_stderrs(diff, current.stderr, reference.stderr), base)
    if _proportion(current) and _proportion(reference):
        return Change(_newcombe(current, reference, flip), base)
    return None


def _newcombe(current: Score, reference: Score, flip: bool) -> Newcombe:
    p1, p2 = current.score, reference.score
    if flip:
        p1, p2 = 1.0 - p1, 1.0 - p2
    return Newcombe(p1, _n(current), p2, _n(reference))


def _n(score: Score) -> int:
    return int(score.item_values.size) if score.item_values is not None else score.n_items


def _proportion(score: Score) -> bool:
    return 0.0 <= score.score <= 1.0 and _n(score) > 0


def measure_score(score: Score) -> Estimate | None:
    """A single score with its uncertainty (alert levels)."""
    values = score.item_values
    if values is not None and values.size > 1:
        if score.binary:
            return Wilson(score.score, int(values.size))
        return single_values(values.astype(np.float64))
    if score.stderr is not None:
        return Pivot(score.score, score.score, score.stderr, "normal (standard error)")
    if 0.0 <= score.score <= 1.0 and score.n_items > 0:
        return Wilson(score.score, score.n_items)
    return None


class Comparer:
    """Measurements for one checkpoint, made once and shared by every rule of a policy."""

    __slots__ = ("_cache", "baseline", "current")

    def __init__(self, current: Snapshot, baseline: Snapshot | None) -> None:
        self.current = current
        self.baseline = baseline
        self._cache: dict[tuple[str, ...], Any] = {}

    def change(self, task: str) -> Change | None:
        """The task's change since the baseline."""
        key = ("change", task)
        if key not in self._cache:
            cur = self.current.scores.get(task)
            ref = self.baseline.scores.get(task) if self.baseline is not None else None
            self._cache[key] = None if cur is None or ref is None else measure_change(cur, ref)
        found: Change | None = self._cache[key]
        return found

    def gap(self, elicited: str, default: str) -> Change | None:
        """How much the ``elicited`` profile beats the ``default`` one on this checkpoint."""
        key = ("gap", elicited, default)
        if key not in self._cache:
            cur = self.current.scores.get(elicited)
            ref = self.current.scores.get(default)
            self._cache[key] = None if cur is None or ref is None else measure_change(cur, ref)
        found: Change | None = self._cache[key]
        return found

    def score(self, task: str, *, of_baseline: bool = False) -> Estimate | None:
        """The task's score on this checkpoint (or on the baseline)."""
        key = ("score", task, "baseline" if of_baseline else "current")
        if key not in self._cache:
            snapshot = self.baseline if of_baseline else self.current
            found = snapshot.scores.get(task) if snapshot is not None else None
            self._cache[key] = None if found is None else measure_score(found)
        estimate: Estimate | None = self._cache[key]
        return estimate
