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
    inverse_variance,
    paired_binary,
    paired_values,
    single_values,
    welch,
)


@dataclass(frozen=True, slots=True)
class Change:
    """A change of one score relative to a reference score."""

    est: Estimate
    """The change as a fraction, in the capability direction."""
    base: float
    """The reference score in the capability direction (for relative scales)."""
    discordant: tuple[int, int] | None = None
    """Paired binary items newly right and newly wrong."""
    unshared: tuple[int, int] = (0, 0)
    """Items scored only on the current side and only on the reference side."""

    @property
    def discordance(self) -> float | None:
        """Observed share of paired items whose outcome differs between the two sides."""
        if self.discordant is None or self.est.n <= 0:
            return None
        return (self.discordant[0] + self.discordant[1]) / self.est.n


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


_DUPLICATES: dict[str, str | None] = {}


def duplicate_item(score: Score) -> str | None:
    """A document hash that occurs twice in ``score``'s items, or None.

    Pairing by document hash is ambiguous when a hash repeats (two identical documents in
    different orders would pair the wrong answers), so such a score is never paired.
    """
    hashes = score.item_hashes
    if hashes is None:
        return None
    if score.item_key is not None and score.item_key in _DUPLICATES:
        return _DUPLICATES[score.item_key]
    found: str | None = None
    if len(set(hashes)) != len(hashes):
        seen: set[str] = set()
        for h in hashes:
            if h in seen:
                found = h
                break
            seen.add(h)
    if score.item_key is not None:
        if len(_DUPLICATES) > 4096:
            _DUPLICATES.clear()
        _DUPLICATES[score.item_key] = found
    return found


@dataclass(frozen=True, slots=True)
class _Alignment:
    """Which items of the two sides are the same documents."""

    cur: np.ndarray[Any, Any]
    """Indexes of the shared items in the current score."""
    ref: np.ndarray[Any, Any]
    """The same items' indexes in the reference score."""
    cur_only: np.ndarray[Any, Any]
    ref_only: np.ndarray[Any, Any]

    @property
    def complete(self) -> bool:
        return self.cur_only.size == 0 and self.ref_only.size == 0


def _align(current: Score, reference: Score) -> _Alignment | None:
    cur, ref = current.item_values, reference.item_values
    if cur is None or ref is None:
        return None
    empty = np.zeros(0, dtype=np.int64)
    same = current.item_key is not None and current.item_key == reference.item_key
    if not same and current.item_hashes is not None and reference.item_hashes is not None:
        same = current.item_hashes is reference.item_hashes or (
            current.item_hashes == reference.item_hashes
        )
    if same and cur.size == ref.size:
        everything = np.arange(cur.size, dtype=np.int64)
        return _Alignment(everything, everything, empty, empty)
    if current.item_hashes is None or reference.item_hashes is None:
        return None
    index = {h: i for i, h in enumerate(reference.item_hashes)}
    pairs = [(i, index[h]) for i, h in enumerate(current.item_hashes) if h in index]
    ci = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
    ri = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
    cur_only = np.setdiff1d(np.arange(cur.size, dtype=np.int64), ci, assume_unique=True)
    ref_only = np.setdiff1d(np.arange(ref.size, dtype=np.int64), ri, assume_unique=True)
    return _Alignment(ci, ri, cur_only, ref_only)


def measure_change(current: Score, reference: Score) -> Change | str:
    """``current`` minus ``reference``, or the reason no comparison is possible.

    Items are paired by document hash; items scored on one side only enter through an unpaired
    comparison combined with the paired one (inverse-variance weights).
    """
    flip = not current.higher_is_better
    sign = -1.0 if flip else 1.0
    base = 1.0 - reference.score if flip else reference.score
    if current.estimator is not None or reference.estimator is not None:
        return _estimated_change(current, reference, sign, base)
    for side, score in (("the checkpoint", current), ("the reference", reference)):
        dup = duplicate_item(score)
        if dup is not None:
            return (
                f"document hash {dup[:16]} occurs twice in {side}'s items of {score.task}: "
                "pairing is ambiguous; deduplicate the task's documents"
            )
    aligned = _align(current, reference)
    if aligned is not None and aligned.cur.size > 0:
        assert current.item_values is not None and reference.item_values is not None
        cur = current.item_values[aligned.cur]
        ref = reference.item_values[aligned.ref]
        unshared = (int(aligned.cur_only.size), int(aligned.ref_only.size))
        binary = current.binary and reference.binary
        if binary:
            up = int(np.count_nonzero(cur > ref))
            down = int(np.count_nonzero(cur < ref))
            if flip:
                up, down = down, up
            paired: Estimate = paired_binary(up, down, int(cur.size))
            discordant: tuple[int, int] | None = (up, down)
        else:
            diffs = sign * (cur.astype(np.float64) - ref.astype(np.float64))
            paired, discordant = paired_values(diffs), None
        if aligned.complete:
            return Change(paired, base, discordant)
        if aligned.cur_only.size == 0 or aligned.ref_only.size == 0:
            note = PairedNote(paired, f"{unshared[0] + unshared[1]} unshared items left out")
            return Change(note, base, discordant, unshared)
        cur_rest = current.item_values[aligned.cur_only].astype(np.float64)
        ref_rest = reference.item_values[aligned.ref_only].astype(np.float64)
        if flip and binary:
            cur_rest, ref_rest = 1.0 - cur_rest, 1.0 - ref_rest
        rest = _agresti_caffo(cur_rest, ref_rest) if binary else _welch_part(cur_rest, ref_rest)
        if not binary and flip:
            rest = (-rest[0], -rest[1], rest[2])
        centre = getattr(paired, "centre", paired.estimate)
        combined = inverse_variance(
            [(paired.estimate, centre, paired.se**2), rest],
            f"paired on {cur.size} shared items + unpaired on {unshared[0]} / {unshared[1]} "
            "others (inverse-variance)",
            int(cur.size),
        )
        return Change(combined, base, discordant, unshared)
    if current.binary and reference.binary:
        return Change(_newcombe(current, reference, flip), base)
    cur_v, ref_v = current.item_values, reference.item_values
    if cur_v is not None and ref_v is not None and cur_v.size > 1 and ref_v.size > 1:
        est = welch(cur_v.astype(np.float64), ref_v.astype(np.float64))
        return Change(est.scaled(sign) if flip else est, base)
    if current.stderr is not None and reference.stderr is not None:
        diff = sign * (current.score - reference.score)
        return Change(from_stderrs(diff, current.stderr, reference.stderr), base)
    if _proportion(current) and _proportion(reference):
        return Change(_newcombe(current, reference, flip), base)
    return f"{current.task}: neither per-item outcomes nor standard errors to compare"


@dataclass(frozen=True, slots=True)
class PairedNote:
    """A paired estimate on the shared items only, saying what was left out."""

    inner: Estimate
    note: str

    @property
    def estimate(self) -> float:
        return self.inner.estimate

    @property
    def se(self) -> float:
        return self.inner.se

    @property
    def method(self) -> str:
        return f"{self.inner.method}; {self.note}"

    @property
    def n(self) -> int:
        return self.inner.n

    def lower(self, alpha: float) -> float:
        return self.inner.lower(alpha)

    def upper(self, alpha: float) -> float:
        return self.inner.upper(alpha)

    def p_greater(self, threshold: float) -> float:
        return self.inner.p_greater(threshold)

    def p_less(self, threshold: float) -> float:
        return self.inner.p_less(threshold)


def _agresti_caffo(
    cur: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]
) -> tuple[float, float, float]:
    """(estimate, centre, variance) of a difference of two proportions, with one success and
    one failure added to each side (Agresti and Caffo 2000) so the variance never vanishes."""
    n1, n2 = cur.size, ref.size
    x1, x2 = float(cur.sum()), float(ref.sum())
    t1, t2 = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
    variance = t1 * (1 - t1) / (n1 + 2) + t2 * (1 - t2) / (n2 + 2)
    return x1 / n1 - x2 / n2, t1 - t2, variance


def _welch_part(cur: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    est = welch(cur, ref)
    variance = est.se**2 if math.isfinite(est.se) else 1e12
    return est.estimate, est.centre, variance


def _newcombe(current: Score, reference: Score, flip: bool) -> Newcombe:
    p1, p2 = current.score, reference.score
    if flip:
        p1, p2 = 1.0 - p1, 1.0 - p2
    return Newcombe(p1, _n(current), p2, _n(reference))


def _n(score: Score) -> int:
    return int(score.item_values.size) if score.item_values is not None else score.n_items


def _proportion(score: Score) -> bool:
    return 0.0 <= score.score <= 1.0 and _n(score) > 0


def _band(score: Score) -> float | None:
    """The standard error of a score: its own, else the items' standard error of the mean."""
    if score.stderr is not None:
        return score.stderr
    values = score.item_values
    if values is not None and values.size > 1:
        return float(values.std(ddof=1)) / math.sqrt(values.size)
    return None


def _estimated_change(current: Score, reference: Score, sign: float, base: float) -> Change | str:
    """A change where one side (or both) is a model-based estimate of the full benchmark (an
    anchor subset): the difference of the estimates with their standard errors combined as
    independent. The anchors' own outcomes are not paired: they are a sample chosen for the
    model, not the benchmark, and their raw mean is not the score being compared."""
    se_cur, se_ref = _band(current), _band(reference)
    if se_cur is None or se_ref is None:
        side = "the checkpoint" if se_cur is None else "the reference"
        return f"{current.task}: {side}'s score has no standard error to compare an estimate with"
    estimators = sorted({s.estimator or "items" for s in (current, reference)})
    diff = sign * (current.score - reference.score)
    variance = se_cur**2 + se_ref**2
    method = f"estimated scores ({' vs '.join(estimators)}), standard errors combined"
    same_anchors = (
        current.estimator is not None
        and current.estimator == reference.estimator
        and current.item_key is not None
        and current.item_key == reference.item_key
    )
    if same_anchors and current.shared_se is not None and reference.shared_se is not None:
        shared = min(current.shared_se, reference.shared_se)
        variance = max(variance - 2 * shared**2, 0.0)
        method += " (the anchors' shared misfit counted once)"
    se = math.sqrt(variance)
    return Change(Pivot(diff, diff, se, method), base)


def measure_score(score: Score) -> Estimate | None:
    """A single score with its uncertainty (alert levels)."""
    if score.estimator is not None and score.stderr is not None:
        method = f"{score.estimator} estimate (normal band)"
        return Pivot(score.score, score.score, score.stderr, method)
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

    __slots__ = ("_cache", "baseline", "current", "reasons")

    def __init__(self, current: Snapshot, baseline: Snapshot | None) -> None:
        self.current = current
        self.baseline = baseline
        self._cache: dict[tuple[str, ...], Any] = {}
        self.reasons: dict[str, str] = {}
        """Why a comparison is missing, by task (or ``"<elicited> over <default>"``)."""

    def _measure(self, label: str, cur: Score | None, ref: Score | None) -> Change | None:
        if cur is None or ref is None:
            return None
        found = measure_change(cur, ref)
        if isinstance(found, str):
            self.reasons[label] = found
            return None
        return found

    def change(self, task: str) -> Change | None:
        """The task's change since the baseline."""
        key = ("change", task)
        if key not in self._cache:
            cur = self.current.scores.get(task)
            ref = self.baseline.scores.get(task) if self.baseline is not None else None
            self._cache[key] = self._measure(task, cur, ref)
        found: Change | None = self._cache[key]
        return found

    def gap(self, elicited: str, default: str) -> Change | None:
        """How much the ``elicited`` profile beats the ``default`` one on this checkpoint."""
        key = ("gap", elicited, default)
        if key not in self._cache:
            cur = self.current.scores.get(elicited)
            ref = self.current.scores.get(default)
            self._cache[key] = self._measure(f"{elicited} over {default}", cur, ref)
        found: Change | None = self._cache[key]
        return found

    def missing(self, label: str) -> str:
        """``label`` with the reason its comparison is missing, when one is known."""
        reason = self.reasons.get(label)
        return f"{label} ({reason})" if reason else label

    def score(self, task: str, *, of_baseline: bool = False) -> Estimate | None:
        """The task's score on this checkpoint (or on the baseline)."""
        key = ("score", task, "baseline" if of_baseline else "current")
        if key not in self._cache:
            snapshot = self.baseline if of_baseline else self.current
            found = snapshot.scores.get(task) if snapshot is not None else None
            self._cache[key] = None if found is None else measure_score(found)
        estimate: Estimate | None = self._cache[key]
        return estimate
