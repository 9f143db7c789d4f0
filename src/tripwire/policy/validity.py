"""Do the statistical modes and the shipped policies keep their error rates? Measured, not argued.

Every figure comes from simulations through the engine's own public functions
(``tripwire.policy.simulation``: ``evaluate_rule`` per look, ``backtest.replay`` per run,
the estimators' bounds for coverage). ``bench/validity.py`` prints the tables with many
replicates; the tests run the same functions on smaller, seeded runs and assert the targets.

Targets (issue 7): over a run of 50 looks with no true change, a shipped policy in its
documented mode fires at most 5% of the time; each comparison fires with at least 80%
probability at a true change of threshold + MDE (the minimum detectable effect ``tripwire
policy check`` prints; for ``cannot_rule_out``, stays quiet at threshold - MDE); one-sided 95%
bounds on paired items cover the true change at least 94% of the time for n >= 50 when every
changed item moves one way (emergence).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.policy.power import (
    PartPower,
    Planning,
    RulePower,
    discordance_at,
    flatten,
    policy_power,
)
from tripwire.policy.schema import (
    DEFAULT_DISCORDANCE,
    Combinator,
    DeltaRule,
    DivergenceRule,
    ElicitationGapRule,
    LevelRule,
    LoadedPolicy,
    Policy,
    Rule,
    walk,
)
from tripwire.policy.simulation import (
    Coverage,
    ItemModel,
    Rate,
    fire_rate,
    paired_coverage,
    run_fire_rate,
)
from tripwire.policy.sizes import ItemCount, suite_item_counts
from tripwire.policy.stats import PairedScore, agresti_min

BASE_ACCURACY = 0.6
"""The true accuracy of every proxy task in the no-change scenario (level tasks: their level)."""

MODES: dict[str, dict[str, Any]] = {
    "detected (default: alpha spending over the run, 50 looks)": {"mode": "detected"},
    "detected, sequential none": {"mode": "detected", "sequential": "none"},
    "point": {"mode": "point"},
    "cannot_rule_out": {"mode": "cannot_rule_out"},
}
"""The modes compared on a +5 delta."""


def _policy(rule: dict[str, Any]) -> Policy:
    fields = {"id": "r", "actions": {"deep_suites": ["deep.yaml"]}, **rule}
    return Policy.model_validate({"name": "sim", "proxy_suite": "proxy.yaml", "rules": [fields]})


@dataclass(frozen=True, slots=True)
class ModeRow:
    """One mode of a +``threshold`` delta on one benchmark of ``n`` items."""

    mode: str
    n: int
    discordance: float
    per_look: Rate
    """Fires at one look with no true change."""
    run_wide: Rate
    """Fires at some look of a run of ``looks`` looks with no true change."""
    mde: float
    """Points, as ``tripwire policy check`` computes it at this discordance."""
    decides_at: float
    """True change (points) at which ``power`` is measured: threshold + MDE
    (threshold - MDE for cannot_rule_out)."""
    power: Rate
    """Fires at ``decides_at`` (detected, point), or stays quiet there (cannot_rule_out)."""


def mode_rows(
    *,
    threshold: float = 5.0,
    ns: Iterable[int] = (200, 700),
    discordances: Iterable[float] = (0.1, 0.2, 0.4),
    modes: dict[str, dict[str, Any]] = MODES,
    looks: int = 50,
    runs: int = 1000,
    replicates: int = 4000,
    seed: int = 0,
) -> list[ModeRow]:
    """Each mode of a +``threshold`` point delta at each size and discordance."""
    rows = []
    for label, fields in modes.items():
        for n in ns:
            for d in discordances:
                policy = _policy(
                    {"type": "delta", "benchmarks": ["t"], "threshold": threshold, **fields}
                )
                rule = policy.rules[0]
                model = ItemModel.for_discordance(d, BASE_ACCURACY)
                per_look = fire_rate(
                    rule,
                    changes={"t": 0.0},
                    n_items=n,
                    model=model,
                    seed=seed,
                    replicates=replicates,
                )
                run_wide = run_fire_rate(
                    policy,
                    items={"t": n},
                    looks=looks,
                    runs=runs,
                    seed=seed + 1,
                    models={"t": model},
                )
                part = _parts(policy, {"t": ItemCount(n, "sim")}, d)[0][1]
                assert part.mde is not None and part.decides_at is not None
                at = part.decides_at
                # the power is measured where the discordance at the change is the assumed one
                at_model = _model(d, BASE_ACCURACY, at / 100)
                hit = fire_rate(
                    rule,
                    changes={"t": at / 100},
                    n_items=n,
                    model=at_model,
                    seed=seed + 2,
                    replicates=replicates // 2,
                )
                power = _quiet(hit) if fields["mode"] == "cannot_rule_out" else hit
                rows.append(ModeRow(label, n, d, per_look, run_wide, part.mde, at, power))
    return rows


def _quiet(rate: Rate) -> Rate:
    return Rate(rate.replicates - rate.fired, rate.replicates)


def _parts(
    policy: Policy, counts: dict[str, ItemCount], discordance: float
) -> list[tuple[RulePower, PartPower]]:
    rows = flatten(policy_power(policy, counts, Planning(discordance)))
    return [(row, part) for row in rows for part in row.parts]


# ---------------------------------------------------------------- coverage


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """Exact coverage of one-sided 95% bounds when every changed item moves one way."""

    n: int
    p12: float
    """Share of items newly right (none newly wrong): the true change."""
    tango: Coverage
    """The engine's paired interval (Tango's score, continuity-corrected)."""
    agresti_min: Coverage
    """The Wald interval with 1/2 added to each cell, the engine's previous one."""


def coverage_rows(
    ns: Iterable[int] = (50, 100, 200, 700),
    shares: Iterable[float] = (0.01, 0.02, 0.05, 0.1, 0.2),
) -> list[CoverageRow]:
    """Emergence: accuracy rising by ``p12`` with every changed item moving up."""
    return [
        CoverageRow(
            n, p, paired_coverage(PairedScore, n, p, 0.0), paired_coverage(agresti_min, n, p, 0.0)
        )
        for n in ns
        for p in shares
    ]


def worst_coverage(
    n: int,
    estimator: Callable[[int, int, int], Any] = PairedScore,
    step: float = 0.02,
    most: float = 0.4,
) -> tuple[float, tuple[float, float]]:
    """The lowest exact coverage of ``estimator``'s bounds over a grid of true (p12, p21)."""
    worst, where = 1.0, (0.0, 0.0)
    k = round(most / step)
    for i in range(k + 1):
        for j in range(k + 1 - i):
            p12, p21 = i * step, j * step
            if p12 + p21 == 0:
                continue
            cov = paired_coverage(estimator, n, p12, p21).worst
            if cov < worst:
                worst, where = cov, (p12, p21)
    return worst, where


# ---------------------------------------------------------------- combinators


def combinator_rates(
    *, benchmarks: int = 10, n: int = 200, replicates: int = 1000, seed: int = 0
) -> dict[str, Rate]:
    """An ``any`` over single-benchmark detected rules (sequential none, so one look is tested
    at alpha), every benchmark unchanged: with Holm across the children (the engine) and with
    the children's own verdicts taken as they are (what the engine did before)."""
    tasks = [f"b{i}" for i in range(benchmarks)]
    children = [
        {"type": "delta", "benchmarks": [t], "threshold": 0, "sequential": "none"} for t in tasks
    ]
    any_rule = _policy({"type": "any", "rules": children}).rules[0]
    changes = dict.fromkeys(tasks, 0.0)

    def rate(rule: Rule) -> Rate:
        return fire_rate(rule, changes=changes, n_items=n, replicates=replicates, seed=seed)

    corrected = rate(any_rule)
    two = rate(_policy({"type": "at_least", "k": 2, "rules": children}).rules[0])
    one_rule = _policy(
        {
            "type": "delta",
            "benchmarks": tasks,
            "threshold": 0,
            "sequential": "none",
            "correction": "none",
        }
    ).rules[0]
    uncorrected = rate(one_rule)
    return {
        f"any of {benchmarks} (Holm across children)": corrected,
        f"at_least 2 of {benchmarks} (Holm across children)": two,
        f"uncorrected: {benchmarks} benchmarks, correction none": uncorrected,
    }


# ---------------------------------------------------------------- shipped policies


@dataclass(frozen=True, slots=True)
class ComparisonPower:
    """One comparison of a shipped policy at its threshold + MDE."""

    rule: str
    label: str
    mode: str
    items: int
    mde: float
    decides_at: float
    power: Rate


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A shipped policy over runs of 50 looks with no true change, and each comparison's power."""

    name: str
    run_wide: Rate
    comparisons: list[ComparisonPower]
    discordance: float
    null: dict[str, float]
    """True accuracy of each task in the no-change runs."""


def _null_accuracies(policy: Policy, tasks: Iterable[str]) -> dict[str, float]:
    """Every task at ``BASE_ACCURACY``; a task read by level rules sits at its lowest alert
    level (the worst case for a false alarm)."""
    out = dict.fromkeys(tasks, BASE_ACCURACY)
    for _, rule in walk(policy.rules):
        if isinstance(rule, LevelRule):
            for name in rule.benchmarks:
                if name in out:
                    out[name] = min(out[name], rule.level / 100)
    return out


def _shared(policy: Policy) -> dict[str, str]:
    """Elicited profiles ask the default profile's items."""
    shared = {}
    for _, rule in walk(policy.rules):
        if isinstance(rule, ElicitationGapRule):
            for name in rule.elicited:
                shared[name] = rule.default
    return shared


def policy_row(
    loaded: LoadedPolicy,
    *,
    looks: int = 50,
    runs: int = 1000,
    replicates: int = 2000,
    seed: int = 0,
) -> PolicyRow:
    """Run-wide no-change fire rate and per-comparison power of a loaded policy, at its
    planning discordance (default 0.25) and its proxy suite's item counts."""
    policy = loaded.policy
    d = policy.planning.discordance or DEFAULT_DISCORDANCE
    counts = suite_item_counts(loaded.proxy_suite)
    anchored = sorted(t for t, c in counts.items() if c.estimate_se is not None)
    if anchored:
        raise ValueError(
            f"{loaded.path}: {', '.join(anchored)} scored on anchors: this simulation draws "
            "paired items, not anchor estimates (bench/proxy.py measures those)"
        )
    items = {t: c.items for t, c in counts.items() if c.items}
    null = _null_accuracies(policy, items)
    models = {t: _model(d, acc, 0.0) for t, acc in null.items()}
    shared = _shared(policy)
    run_wide = run_fire_rate(
        policy,
        items=items,
        looks=looks,
        runs=runs,
        seed=seed,
        models=models,
        shared_items=shared,
    )
    comparisons = []
    for row, part in _parts(policy, counts, d):
        if part.mde is None or part.decides_at is None:
            continue
        owner = policy.rules[int(row.path.split(".")[1])]
        rate = _part_power(owner, row, part, policy, items, d, shared, replicates, seed)
        comparisons.append(
            ComparisonPower(
                row.rule_id,
                part.label,
                row.mode,
                part.items or 0,
                part.mde,
                part.decides_at,
                rate,
            )
        )
    return PolicyRow(policy.name, run_wide, comparisons, d, null)


def _part_power(
    owner: Rule,
    row: RulePower,
    part: PartPower,
    policy: Policy,
    items: dict[str, int],
    d: float,
    shared: dict[str, str],
    replicates: int,
    seed: int,
) -> Rate:
    """Whether the top-level rule ``owner`` does what the comparison promises at its
    ``decides_at``: fires (detected) or stays quiet (cannot_rule_out)."""
    leaf = _leaf(owner, row.rule_id)
    at = part.decides_at or 0.0
    bases = dict.fromkeys(items, BASE_ACCURACY)
    changes = dict.fromkeys(items, 0.0)
    if isinstance(leaf, DeltaRule):
        changes[part.label] = at / 100
    elif isinstance(leaf, ElicitationGapRule):
        elicited = part.label.split(" over ")[0]
        changes[elicited] = at / 100
    elif isinstance(leaf, LevelRule):
        # the baseline 10 points under the alert level, the checkpoint at ``at``
        bases[part.label] = leaf.level / 100 - 0.10
        changes[part.label] = at / 100 - bases[part.label]
    elif isinstance(leaf, DivergenceRule):
        general, risk = part.label.startswith("general"), part.label.startswith("risk")
        for name in leaf.general:
            changes[name] = at / 100 if general else (leaf.general_rise + 10) / 100
        for name in leaf.risk:
            changes[name] = at / 100 if risk else leaf.risk_max_rise / 100 - 0.05
    models = {t: _model(d, bases[t], changes[t]) for t in items}
    for elicited, default in shared.items():
        # profiles ask the same items: one population, with the discordance the MDE assumes
        # between the two profiles at the elicited one's change
        models[elicited] = models[default] = _model(d, bases[default], changes[elicited])
    rate = fire_rate(
        owner,
        changes=changes,
        n_items=items,
        replicates=replicates,
        seed=seed + 7,
        models=models,
        shared_items=shared,
        confidence=policy.confidence,
        target=row.rule_id,
    )
    quiet = row.mode == "cannot_rule_out"
    return _quiet(rate) if quiet else rate


def _model(discordance: float, base: float, change: float) -> ItemModel:
    """Items on which a checkpoint ``change`` above a baseline at ``base`` disagrees with it on
    ``discordance`` of the items (the discordance the MDE assumes), or as near as possible."""
    try:
        return ItemModel.for_discordance(discordance_at(discordance, change), base, change)
    except ValueError:
        return ItemModel.for_discordance(min(discordance, 1.9 * base * (1 - base)), base)


def _leaf(rule: Rule, rule_id: str) -> Rule:
    if rule.rule_id == rule_id:
        return rule
    if isinstance(rule, Combinator):
        for child in rule.rules:
            found = _leaf(child, rule_id)
            if found.rule_id == rule_id:
                return found
    return rule


def shipped_policies(root: Path) -> list[Path]:
    """Every policy in ``triggers/``."""
    return sorted((root / "triggers").glob("*.yaml"))
