"""``settle``: when a staged proxy may stop asking items (issue 10 item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.policy.inputs import Score
from tripwire.policy.schema import AnyRule, DeltaRule
from tripwire.proxies.simulate import pair_context
from tripwire.proxies.staged import look_confidence, settle

LOOK = look_confidence(3)
"""Three intermediate looks at 5% disagreement: 98.3% each."""


def estimates(baseline: float, current: float, se: float = 0.01) -> list[Score]:
    """(baseline, current) full-score estimates from the same 100 anchors, no shared misfit."""
    hashes = tuple(f"item{j}" for j in range(100))
    values = np.zeros(100)
    return [
        Score("t", score, se, 100, True, hashes, values, "anchors", estimator="irt-anchor")
        for score in (baseline, current)
    ]


def rule(**fields: object) -> DeltaRule:
    spec: dict[str, object] = {"id": "r", "type": "delta", "benchmarks": ["t"], "threshold": 5}
    return DeltaRule.model_validate(spec | {"sequential": {"method": "none"}} | fields)


@pytest.mark.parametrize(
    ("current", "fields", "expected"),
    [
        # +9 +- 1.4 points: established at 98.3% and fires as the rule stands
        (0.59, {}, "fired"),
        # the same evidence, but the rule asks 99.9%: an early stop is never looser
        (0.59, {"confidence": 0.999}, "open"),
        # +7.7 +- 1.4 points: the rule (95%) fires, but the rise is not established at 98.3%
        (0.577, {}, "open"),
        # +0 +- 1.4 points: a +5 rise is excluded
        (0.50, {}, "quiet"),
        # +3 +- 1.4 points: not excluded at 98.3% (upper bound 6.0)
        (0.53, {}, "open"),
        # point mode: +9 fires and is established; +0 is quiet
        (0.59, {"mode": "point"}, "fired"),
        (0.50, {"mode": "point"}, "quiet"),
    ],
)
def test_settle_stops_only_when_the_rule_and_the_look_agree(
    current: float, fields: dict[str, object], expected: str
) -> None:
    ctx = pair_context(estimates(0.50, current), 0.95)
    assert settle(rule(**fields), ctx, LOOK) == expected


def test_a_combinator_cannot_be_staged() -> None:
    combined = AnyRule.model_validate(
        {
            "id": "c",
            "type": "any",
            "rules": [{"type": "delta", "benchmarks": ["t"], "threshold": t} for t in (5, 9)],
        }
    )
    with pytest.raises(ValueError, match="only a statistical leaf rule"):
        settle(combined, pair_context(estimates(0.5, 0.6), 0.95), LOOK)
