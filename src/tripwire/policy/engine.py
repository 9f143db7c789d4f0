"""The decision engine: pure functions from (policy, scores, baseline, lineage, now) to verdicts.

No database, queue or clock here: everything arrives as arguments, so the same code decides live
checkpoints and replays history in backtests. Statistics are explained in ``docs/policies.md``.
"""

from __future__ import annotations

from datetime import datetime

from tripwire.policy.compare import Comparer
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.multiplicity import step_levels
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
    DEFAULT_DISCORDANCE,
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
    """Three-valued logic over the nested verdicts: undecidable children count as unknown.

    Children decided in ``detected`` mode (their verdict carries a ``ratio``, p / alpha) are
    corrected across with Holm's step-down when the combinator corrects (``corrects``):
    the child with the smallest ratio is tested at alpha / m, the next at alpha / (m - 1), ...
    Each is re-evaluated at its step's level, so its interval and explanation show the level
    it was decided at. Children in other modes, and compute and cadence rules, carry no error
    rate to correct and are counted as they are.
    """
    children = [evaluate_rule(child, ctx) for child in rule.rules]
    tested = [
        i for i, c in enumerate(children) if c.ratio is not None and c.verdict != "undecidable"
    ]
    factors: dict[str, float] = {}
    if rule.corrects and len(tested) > 1:
        _, levels = step_levels([children[i].ratio or 0.0 for i in tested], 1.0, "holm")
        for i, level in zip(tested, levels, strict=True):
            children[i] = evaluate_rule(rule.rules[i], ctx.scaled(level))
            factors[children[i].rule_id] = level
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
    explanation = f"{fired} of {n} nested rules fired ({label} needed)"
    if factors:
        explanation += f"; Holm across the {len(factors)} rules decided in detected mode"
    explanation += f": {listing}"
    if verdict == "undecidable":
        explanation += f"; {unknown} undecidable, so the outcome is unknown"
    details: dict[str, object] = {"fired": fired, "undecidable": unknown, "needed": need}
    if factors:
        details["holm_factors"] = factors
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
        details=details,
        ratio=_ratio(rule, children, tested),
    )


def _ratio(rule: Combinator, children: list[RuleVerdict], tested: list[int]) -> float | None:
    """The combinator's own p / alpha, so that a parent combinator can correct across it."""
    untested_fired = sum(
        c.verdict == "fired" for i, c in enumerate(children) if i not in set(tested)
    )
    need = rule.needed() - untested_fired
    if need <= 0:
        return 0.0
    if need > len(tested):
        return None
    ratios = sorted(children[i].ratio or 0.0 for i in tested)
    if rule.corrects:
        m = len(ratios)
        running, holm = 0.0, []
        for step, r in enumerate(ratios):
            running = max(running, (m - step) * r)
            holm.append(running)
        ratios = holm
    return ratios[need - 1]


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
    assumed = policy.planning.discordance or DEFAULT_DISCORDANCE
    ctx = Context(
        Comparer(current, baseline), lineage or Lineage(), now, policy.confidence, assumed
    )
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
