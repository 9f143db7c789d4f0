"""``tripwire policy check``: validate a policy and report whether each rule can decide.

The command line only prints what :func:`check_policy` returns.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from tripwire.errors import PolicyError
from tripwire.policy.power import Planning, RulePower, flatten, policy_power
from tripwire.policy.schema import DEFAULT_DISCORDANCE, LoadedPolicy, load_policy
from tripwire.policy.sizes import ItemCount, suite_item_counts
from tripwire.validation import problem_at, read_yaml


@dataclass(frozen=True, slots=True)
class Observed:
    """Discordance observed in stored paired decisions, per task."""

    by_task: dict[str, list[float]] = field(default_factory=dict)

    def medians(self) -> dict[str, float]:
        return {t: statistics.median(v) for t, v in self.by_task.items() if v}

    def overall(self) -> float | None:
        values = [x for v in self.by_task.values() for x in v]
        return statistics.median(values) if values else None

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_task.values())


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """A policy that validated, with the power of each rule."""

    loaded: LoadedPolicy
    counts: dict[str, ItemCount]
    rules: list[RulePower]
    planning: Planning
    underpowered: list[str]
    """One line per comparison that cannot decide its threshold (file, line, field, numbers)."""
    unknown: list[str]
    """Comparisons whose item count is unknown."""
    warnings: list[str] = field(default_factory=list)
    """Observed discordance above the assumption, and other things to know."""


def planning_for(
    loaded: LoadedPolicy,
    *,
    discordance: float | None = None,
    power: float | None = None,
    base_score: float | None = None,
    observed: Observed | None = None,
) -> Planning:
    """The assumptions to plan with: a command-line option, else the policy's ``planning``,
    else the median discordance observed in stored decisions, else 0.25."""
    stated = loaded.policy.planning
    power = power if power is not None else stated.power
    base = (base_score if base_score is not None else stated.base_score) / 100
    if discordance is not None:
        return Planning(discordance, power, base, source="option")
    if stated.discordance is not None:
        return Planning(stated.discordance, power, base, source="policy")
    if observed is not None and (overall := observed.overall()) is not None:
        return Planning(overall, power, base, observed.medians(), source="stored")
    return Planning(DEFAULT_DISCORDANCE, power, base, source="default")


def check_policy(path: Path, planning: Planning | None = None, **options: object) -> PolicyCheck:
    """Load ``path`` (raising :class:`PolicyError` if invalid) and compute each rule's power.

    ``planning`` overrides the assumptions; otherwise ``options`` go to :func:`planning_for`.
    """
    loaded = load_policy(path)
    observed = options.get("observed")
    if planning is None:
        planning = planning_for(loaded, **options)  # type: ignore[arg-type]
    counts = suite_item_counts(loaded.proxy_suite)
    rules = policy_power(loaded.policy, counts, planning)
    data = read_yaml(loaded.path, PolicyError)
    underpowered, unknown = [], []
    for row in flatten(rules):
        rule_loc = tuple(int(p) if p.isdigit() else p for p in row.path.split("."))
        for part in row.parts:
            loc = (*rule_loc, part.field)
            if part.status == "underpowered" and row.mode != "point":
                assert part.mde is not None and part.margin is not None
                if part.band is None:
                    basis = f"discordance {part.discordance or 0:.2f}"
                    more = "more items (subset.size or limit)"
                else:
                    basis = f"anchored estimates, change se {part.band:.1f} {row.unit}"
                    more = "more anchors (tripwire proxy fit --anchors)"
                message = (
                    f"rule {row.rule_id!r} cannot decide its threshold on {part.label}: "
                    f"minimum detectable effect {part.mde:.1f} {row.unit} > {part.margin:g} "
                    f"{row.unit} with {part.items} items ({row.mode}, {row.confidence:.0%} "
                    f"one-sided, {row.spending}, alpha {row.alpha:.2g} per comparison, "
                    f"{planning.power:.0%} power, {basis}); allowed: a larger threshold, "
                    f"{more}, fewer planned looks (sequential.looks), a lower confidence, or "
                    "--allow-underpowered"
                )
                underpowered.append(f"{loaded.path}: {problem_at(data, loc, message)}")
            elif part.status == "unknown":
                unknown.append(f"rule {row.rule_id!r}: item count of {part.label} unknown")
    warnings = []
    if isinstance(observed, Observed) and planning.source in ("policy", "option"):
        for task, median in sorted(observed.medians().items()):
            if median > planning.discordance:
                warnings.append(
                    f"{task}: stored decisions observed a median discordance of {median:.2f}, "
                    f"above the assumed {planning.discordance:.2f}: the MDEs above are too "
                    "optimistic for it"
                )
    return PolicyCheck(loaded, counts, rules, planning, underpowered, unknown, warnings)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "?" if value is None else format(value, spec)


def power_table(check: PolicyCheck) -> Table:
    """One row per comparison of every rule: items, MDE counted from the threshold, the margin
    it must resolve, and the no-change fire rate of point and cannot_rule_out comparisons."""
    p = check.planning
    source = {
        "default": "the default",
        "policy": "the policy's planning",
        "option": "--discordance",
        "stored": "stored decisions (median per task)",
    }[p.source]
    table = Table(
        title=f"{check.loaded.name}: minimum detectable effects ({p.power:.0%} power, "
        f"discordance {p.discordance:.2f} from {source}, reference score {p.base_score:.0%})"
    )
    columns = (
        "rule",
        "type, mode",
        "comparison",
        "items",
        "MDE",
        "decides at",
        "must be",
        "no change: look / run",
        "status",
    )
    for column in columns:
        right = column in ("items", "MDE", "decides at", "no change: look / run")
        table.add_column(column, justify="right" if right else "left")
    for row in flatten(check.rules):
        name = "  " * row.path.count(".rules.") + row.rule_id
        mode = row.rule_type if row.mode == "-" else f"{row.rule_type}, {row.mode}"
        if row.confidence is not None and row.mode != "point":
            mode += f" {row.confidence:.0%}"
        if row.spending != "none":
            mode += f", {row.looks} looks"
        if not row.parts:
            shown: str = "n/a" if row.status == "deterministic" else row.status
            table.add_row(name, mode, row.note, "", "", "", "", "", shown)
            continue
        run_bound = row.run_no_change_bound
        for i, part in enumerate(row.parts):
            items = "?" if part.items is None else f"{'~' if part.approximate else ''}{part.items}"
            if part.band is not None:
                items += " anchors"
            at = part.decides_at
            verb = "fires at"
            if row.mode == "cannot_rule_out":
                verb = "quiet <=" if part.direction > 0 else "quiet >="
            sign = "" if row.rule_type == "level" else "+"
            decides = "-" if at is None else f"{verb} {at:{sign}.1f}"
            must = "-" if part.margin is None else f"MDE <= {part.margin:g} {row.unit}"
            rate = "-"
            if part.no_change_rate is not None:
                rate = f"{part.no_change_rate:.1%}"
                if i == 0 and run_bound is not None:
                    rate += f" / <={run_bound:.0%}"
            status: str = part.status
            if row.mode == "point" and status == "underpowered":
                status = "not_checked"
            first = i == 0
            table.add_row(
                name if first else "",
                mode if first else "",
                part.label,
                items,
                _fmt(part.mde),
                decides,
                must,
                rate,
                status,
            )
    return table
