"""The decision engine: pure functions from (policy, scores, baseline, lineage, now) to verdicts.

No database, queue or clock here: everything arrives as arguments, so the same code decides live
checkpoints and replays history in backtests. Statistics are explained in ``docs/policies.md``.
"""

from __future__ import annotations

from datetime import datetime

from tripwire.policy.compare import Comparer
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.rules import (
    Context,
    evaluate_cadence,
    evaluate_compute,
    evaluate_divergence,
    evaluate_gap,
    evaluate_level,
)
from tripwire.policy.rules import evaluate_delta as _evaluate_delta
from tripwire.policy.schema import (
    Actions,
    CadenceRule,
    Combinator,
    ComputeRule,
    DeltaRule,
    DivergenceRule,
    ElicitationGapRule,
    LevelRule,
    Policy,
    Rule,
)
from tripwire.policy.verdicts import Comparison, RuleVerdict, Verdict

__all__ = [
    "BASELINE_RULE_ID",
    "Comparison",
    "Context",
    "Lineage",
    "RuleVerdict",
    "Score",
    "Snapshot",
    "Verdict",
    "compare",
    "evaluate_delta",
    "evaluate_policy",
    "evaluate_rule",
]

BASELINE_RULE_ID = "first-checkpoint-baseline"
EPOCH = datetime(1970, 1, 1)


def evaluate_rule(rule: Rule, ctx: Context) -> RuleVerdict:
    """One rule (a leaf or a combinator of nested rules) for the context's checkpoint."""
    if isinstance(rule, DeltaRule):
        return _evaluate_delta(rule, ctx)
    if isinstance(rule, LevelRule):
        return evaluate_level(rule, ctx)
    if isinstance(rule, ComputeRule):
        return evaluate_compute(rule, ctx)
    if isinstance(rule, CadenceRule):
        return evaluate_cadence(rule, ctx)
    if isinstance(rule, ElicitationGapRule):
        return evaluate_gap(rule, ctx)
    if isinstance(rule, DivergenceRule):
        return evaluate_divergence(rule, ctx)
    return _combine(rule, ctx)


def _combine(rule: Combinator, ctx: Context) -> RuleVerdict:
    """Three-valued logic over the nested verdicts: undecidable children count as unknown."""
    children = [evaluate_rule(child, ctx) for child in rule.rules]
    fired = sum(c.verdict == "fired" for c in children)
    unknown = sum(c.verdict == "undecidable" for c in children)
    n = len(children)
    need = rule.needed()
    verdict: Verdict
    if fired >= need:
        verdict = "fired"
    elif fired + unknown < need:
        verdict = "not_fired"
    else:
        verdict = "undecidable"
    listing = " | ".join(
        f"{c.rule_id} {c.verdict.replace('_', ' ')}: {c.explanation}" for c in children
    )
    label = rule.type if rule.type in ("any", "all") else f"at least {need}"
    explanation = f"{fired} of {n} nested rules fired ({label} needed): {listing}"
    if verdict == "undecidable":
        explanation += f"; {unknown} undecidable, so the outcome is unknown"
    return RuleVerdict(
        rule_id=rule.rule_id,
        rule_type=rule.type,
        severity=rule.severity,
        verdict=verdict,
        threshold=float(need),
        statistic=float(fired),
        interval=None,
        p_value=None,
        explanation=explanation,
        actions=rule.actions,
        unit=rule.unit,
        children=children,
        details={"fired": fired, "undecidable": unknown, "needed": need},
    )


def evaluate_policy(
    policy: Policy,
    current: Snapshot,
    baseline: Snapshot | None,
    *,
    initial_actions: Actions,
    now: datetime,
    lineage: Lineage | None = None,
) -> list[RuleVerdict]:
    """Every rule of ``policy`` for ``current``.

    With no baseline (the run's first decided checkpoint) the baseline rule fires, so the
    checkpoint is evaluated deeply and becomes the run's first baseline; rules that can be
    decided without a baseline (levels, absolute compute, elicitation gaps) are evaluated too,
    and the others wait for the next checkpoint.
    """
    ctx = Context(Comparer(current, baseline), lineage or Lineage(), now, policy.confidence)
    if baseline is None:
        first = RuleVerdict(
            BASELINE_RULE_ID,
            "baseline",
            "alert",
            "fired",
            None,
            None,
            None,
            None,
            f"first checkpoint of run {current.run!r}: evaluated deeply to become its "
            "first baseline",
            initial_actions,
        )
        return [first] + [evaluate_rule(r, ctx) for r in policy.rules if not r.needs_baseline]
    return [evaluate_rule(rule, ctx) for rule in policy.rules]


# ---------------------------------------------------------------- one comparison, one delta rule


def _two(current: Score, baseline: Score) -> Comparer:
    return Comparer(
        Snapshot("current", "", None, {current.task: current}),
        Snapshot("baseline", "", None, {current.task: baseline}),
    )


def compare(current: Score, baseline: Score, rule: DeltaRule, confidence: float) -> Comparison:
    """The rise of ``current`` over ``baseline`` in the rule's scale, with one-sided bounds."""
    single = rule.model_copy(update={"benchmarks": [current.task], "correction": "none"})
    verdict = evaluate_delta(single, _two(current, baseline), confidence=confidence)
    return verdict.comparisons[0]


def evaluate_delta(
    rule: DeltaRule,
    current: Snapshot | Comparer,
    baseline: Snapshot | None = None,
    confidence: float = 0.95,
) -> RuleVerdict:
    """A ``delta`` rule on two snapshots (or a prepared :class:`Comparer`), at look 1."""
    comparer = current if isinstance(current, Comparer) else Comparer(current, baseline)
    return _evaluate_delta(rule, Context(comparer, Lineage(), EPOCH, confidence))
