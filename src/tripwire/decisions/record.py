"""The decision record: one rule evaluated for one checkpoint, as it is stored and read back.

A record is written once, in the hash-chained decision log (``Decision.inputs`` holds its JSON),
and everything that shows or audits a decision reads it back from there: reports, status,
backtests, ``audit verify``. Nothing re-decides history. A record carries everything the verdict
stood on: the policy (name, hash, the rule as written), the checkpoint and baseline (content
hashes, the evaluations used, their scores), the checkpoint's place in its run, the time the
rules were evaluated as of, and the verdict with every comparison's numbers.

``schema_version`` 2 is this layout; records written before it (version 1, a loose dict) are
read through :func:`read_record`, which lifts them into the same model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tripwire.policy.inputs import Snapshot
from tripwire.policy.verdicts import Comparison, RuleVerdict, finite
from tripwire.store.models import Decision

DECISION_RECORD_VERSION: Literal[2] = 2

Origin = Literal["live", "redecide"]
"""``live``: made by the loop when the checkpoint was evaluated. ``redecide``: appended later by
``tripwire decide --policy`` under another policy (the live records stay as they were)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComparisonRecord(_Model):
    """One benchmark (or set) compared with its reference, in the rule's unit."""

    task: str
    estimate: float | None
    low: float | None
    """One-sided lower bound at level ``alpha``."""
    high: float | None
    """One-sided upper bound at level ``alpha``."""
    p_value: float | None = None
    """One-sided p-value against "the threshold was not crossed" (uncorrected)."""
    adjusted_p: float | None = None
    """``p_value`` corrected across the rule's comparisons (``detected`` mode)."""
    alpha: float | None = None
    paired_items: int = 0
    unshared: tuple[int, int] = (0, 0)
    """Items scored only on the checkpoint, and only on the reference."""
    method: str = ""
    crossed: bool = False
    threshold: float | None = None
    discordant: tuple[int, int] | None = None
    """McNemar's b and c: paired items newly right and newly wrong."""
    discordance: float | None = None
    """Observed share of paired items whose outcome differs."""
    p_no_rise: float | None = None
    """Exact one-sided McNemar mid-p against "no rise at all"."""
    note: str = ""

    @classmethod
    def of(cls, c: Comparison) -> ComparisonRecord:
        return cls(
            task=c.task,
            estimate=finite(c.estimate),
            low=finite(c.low),
            high=finite(c.high),
            p_value=finite(c.p_value),
            adjusted_p=finite(c.adjusted_p),
            alpha=finite(c.alpha),
            paired_items=c.paired_items,
            unshared=c.unshared,
            method=c.method,
            crossed=c.crossed,
            threshold=finite(c.threshold),
            discordant=c.discordant,
            discordance=finite(c.discordance),
            p_no_rise=finite(c.p_no_rise),
            note=c.note,
        )


class ActionsRecord(_Model):
    deep_suites: list[str] = Field(default_factory=list)
    """Deep suite paths (as the policy names them)."""
    notify: list[str] = Field(default_factory=list)
    review_hold: bool = False


class VerdictRecord(_Model):
    """What the engine returned for the rule."""

    rule_id: str
    rule_type: str
    severity: str
    verdict: Literal["fired", "not_fired", "undecidable"]
    mode: str | None = None
    threshold: float | None = None
    statistic: float | None = None
    interval: tuple[float | None, float | None] | None = None
    p_value: float | None = None
    """The p-value that made the decision (see ``RuleVerdict.p_value``)."""
    alpha: float | None = None
    unit: str = ""
    explanation: str
    comparisons: list[ComparisonRecord] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    children: list[VerdictRecord] = Field(default_factory=list)
    actions: ActionsRecord = Field(default_factory=ActionsRecord)

    @property
    def fired(self) -> bool:
        return self.verdict == "fired"

    @classmethod
    def of(cls, v: RuleVerdict) -> VerdictRecord:
        return cls(
            rule_id=v.rule_id,
            rule_type=v.rule_type,
            severity=v.severity,
            verdict=v.verdict,
            mode=v.mode,
            threshold=finite(v.threshold),
            statistic=finite(v.statistic),
            interval=(finite(v.interval[0]), finite(v.interval[1])) if v.interval else None,
            p_value=finite(v.p_value),
            alpha=finite(v.alpha),
            unit=v.unit,
            explanation=v.explanation,
            comparisons=[ComparisonRecord.of(c) for c in v.comparisons],
            details=json_safe(v.details),
            warnings=list(v.warnings),
            children=[cls.of(c) for c in v.children],
            actions=ActionsRecord(
                deep_suites=[str(p) for p in v.actions.deep_suites],
                notify=list(v.actions.notify),
                review_hold=v.actions.review_hold,
            ),
        )


class ScoreRecord(_Model):
    score: float | None
    stderr: float | None = None
    n_items: int = 0


class SubjectRecord(_Model):
    """A checkpoint as the decision saw it: which evaluation, which scores."""

    checkpoint: str
    """Content hash."""
    checkpoint_id: int | None = None
    run: str
    step: int | None = None
    evaluation_id: int | None = None
    suite_name: str | None = None
    suite_hash: str | None = None
    evaluated_at: datetime | None = None
    training_flop: float | None = None
    scores: dict[str, ScoreRecord] = Field(default_factory=dict)

    @classmethod
    def of(
        cls,
        snapshot: Snapshot,
        *,
        checkpoint_id: int | None = None,
        evaluation_id: int | None = None,
        suite_name: str | None = None,
        suite_hash: str | None = None,
    ) -> SubjectRecord:
        return cls(
            checkpoint=snapshot.checkpoint,
            checkpoint_id=checkpoint_id,
            run=snapshot.run,
            step=snapshot.step,
            evaluation_id=evaluation_id,
            suite_name=suite_name,
            suite_hash=suite_hash,
            evaluated_at=snapshot.evaluated_at,
            training_flop=finite(snapshot.training_flop),
            scores={
                t: ScoreRecord(score=finite(s.score), stderr=finite(s.stderr), n_items=s.n_items)
                for t, s in snapshot.scores.items()
            },
        )


class LineageRecord(_Model):
    """Where the checkpoint sat in its run when it was decided."""

    looks_since_baseline: int
    looks_in_run: int
    baseline_at: datetime | None = None
    """The baseline's time (cadence rules count from it)."""


class PolicyRecord(_Model):
    name: str
    hash: str
    """sha256 of the policy file."""
    path: str | None = None
    confidence: float | None = None
    assumed_discordance: float | None = None
    """The discordance the policy planned with; decisions warn above it."""


class DecisionRecord(_Model):
    """One rule evaluated for one checkpoint under one policy: written once, never changed."""

    schema_version: int = DECISION_RECORD_VERSION
    origin: Origin = "live"
    policy: PolicyRecord
    checkpoint: SubjectRecord
    baseline: SubjectRecord | None = None
    """None for a run's first decided checkpoint."""
    lineage: LineageRecord
    as_of: datetime | None = None
    """The time the rules were evaluated as of (the checkpoint's proxy evaluation)."""
    verdict: VerdictRecord
    rule: dict[str, Any] | None = None
    """The rule's definition as the policy states it (None for the built-in baseline rule)."""
    dispatched: bool = False
    """Whether the checkpoint's decisions under this policy dispatched deep evaluations (the
    checkpoint then becomes the run's next baseline unless it is held)."""

    @property
    def fired(self) -> bool:
        return self.verdict.fired


def read_record(row: Decision) -> DecisionRecord:
    """The typed record of a stored decision, whichever layout it was written in."""
    data = row.inputs or {}
    if data.get("schema_version") == DECISION_RECORD_VERSION:
        return DecisionRecord.model_validate(data)
    return _from_version_1(row, data)


def _from_version_1(row: Decision, data: dict[str, Any]) -> DecisionRecord:
    """A version-1 decision (a loose dict beside the row's columns) in the current model."""
    base = data.get("baseline")
    lineage = data.get("lineage") or {}
    actions = row.actions or {}
    unit = data.get("unit") or ""

    def comparison(c: dict[str, Any]) -> ComparisonRecord:
        fields = {k: v for k, v in c.items() if k in ComparisonRecord.model_fields}
        return ComparisonRecord.model_validate(fields)

    def child(c: dict[str, Any]) -> VerdictRecord:
        return VerdictRecord(
            rule_id=c.get("rule_id", "?"),
            rule_type=c.get("rule_type", "?"),
            severity=c.get("severity", row.severity),
            verdict=c.get("verdict", "undecidable"),
            threshold=c.get("threshold"),
            statistic=c.get("statistic"),
            interval=tuple(c["interval"]) if c.get("interval") else None,
            p_value=c.get("p_value"),
            unit=c.get("unit", ""),
            explanation=c.get("explanation", ""),
            comparisons=[comparison(x) for x in c.get("comparisons", [])],
            details=c.get("details", {}),
            children=[child(x) for x in c.get("children", [])],
        )

    return DecisionRecord(
        schema_version=1,
        origin="live",
        policy=PolicyRecord(
            name=row.policy_name,
            hash=row.policy_hash,
            confidence=data.get("policy_confidence"),
        ),
        checkpoint=SubjectRecord(
            checkpoint=str(row.checkpoint_id),
            checkpoint_id=row.checkpoint_id,
            run="",
            evaluation_id=data.get("evaluation_id"),
            suite_hash=data.get("suite_hash"),
            training_flop=data.get("training_flop"),
            scores={t: ScoreRecord(score=s) for t, s in (data.get("scores") or {}).items()},
        ),
        baseline=None
        if base is None
        else SubjectRecord(
            checkpoint=base.get("checkpoint", ""),
            checkpoint_id=row.baseline_checkpoint_id,
            run="",
            step=base.get("step"),
            training_flop=base.get("training_flop"),
            scores={t: ScoreRecord(score=s) for t, s in (base.get("scores") or {}).items()},
        ),
        lineage=LineageRecord(
            looks_since_baseline=lineage.get("looks_since_baseline", 1),
            looks_in_run=lineage.get("looks_in_run", 1),
            baseline_at=lineage.get("baseline_at"),
        ),
        as_of=row.decided_at,
        verdict=VerdictRecord(
            rule_id=row.rule_id,
            rule_type=row.rule_type,
            severity=row.severity,
            verdict=row.verdict,
            threshold=data.get("threshold"),
            statistic=row.statistic,
            interval=(row.interval_low, row.interval_high)
            if row.interval_low is not None or row.interval_high is not None
            else None,
            p_value=row.p_value,
            unit=unit,
            explanation=row.explanation,
            comparisons=[comparison(c) for c in data.get("comparisons", [])],
            details=data.get("details", {}),
            children=[child(c) for c in data.get("children", [])],
            actions=ActionsRecord(
                deep_suites=list(actions.get("deep_suites", [])),
                notify=list(actions.get("notify", [])),
                review_hold=bool(actions.get("review_hold", False)),
            ),
        ),
        rule=data.get("rule"),
    )


def json_safe(value: Any) -> Any:
    """Plain JSON: no NaN or infinity (PostgreSQL refuses them), no numpy scalars."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return finite(value)
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
