"""``tripwire policy check``: validate a policy and report whether each rule can decide.

The command line only prints what :func:`check_policy` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from tripwire.errors import PolicyError
from tripwire.policy.power import Planning, RulePower, flatten, policy_power
from tripwire.policy.schema import LoadedPolicy, load_policy
from tripwire.policy.sizes import ItemCount, suite_item_counts
from tripwire.validation import problem_at, read_yaml


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


def check_policy(path: Path, planning: Planning) -> PolicyCheck:
    """Load ``path`` (raising :class:`PolicyError` if invalid) and compute each rule's power."""
    loaded = load_policy(path)
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
                message = (
                    f"rule {row.rule_id!r} cannot decide its threshold on {part.label}: "
                    f"minimum detectable effect {part.mde:.1f} {row.unit} > {part.margin:g} "
                    f"{row.unit} with {part.items} items ({row.mode}, {row.confidence:.0%} "
                    f"one-sided, {planning.power:.0%} power); allowed: a larger threshold, more "
                    f"items (subset.size or limit), a lower confidence, or --allow-underpowered"
                )
                underpowered.append(f"{loaded.path}: {problem_at(data, loc, message)}")
            elif part.status == "unknown":
                unknown.append(f"rule {row.rule_id!r}: item count of {part.label} unknown")
    return PolicyCheck(loaded, counts, rules, planning, underpowered, unknown)


def power_table(check: PolicyCheck) -> Table:
    """One row per comparison of every rule: items, MDE, the margin it must resolve."""
    p = check.planning
    table = Table(
        title=f"{check.loaded.name}: minimum detectable effects ({p.power:.0%} power, "
        f"paired discordance {p.discordance:.0%}, reference score {p.base_score:.0%})"
    )
    for column in ("rule", "type, mode", "comparison", "items", "MDE", "must be", "status"):
        table.add_column(column, justify="right" if column in ("items", "MDE") else "left")
    for row in flatten(check.rules):
        name = "  " * row.path.count(".rules.") + row.rule_id
        mode = row.rule_type if row.mode == "-" else f"{row.rule_type}, {row.mode}"
        if row.confidence is not None and row.mode != "point":
            mode += f" {row.confidence:.0%}"
        if not row.parts:
            shown: str = "n/a" if row.status == "deterministic" else row.status
            table.add_row(name, mode, row.note, "", "", "", shown)
            continue
        for i, part in enumerate(row.parts):
            items = "?" if part.items is None else f"{'~' if part.approximate else ''}{part.items}"
            mde = "?" if part.mde is None else f"{part.mde:.1f}"
            must = "-" if part.margin is None else f"<= {part.margin:g} {row.unit}"
            status: str = part.status
            if row.mode == "point" and status == "underpowered":
                status = "not_checked"
            first = i == 0
            table.add_row(
                name if first else "", mode if first else "", part.label, items, mde, must, status
            )
    return table
