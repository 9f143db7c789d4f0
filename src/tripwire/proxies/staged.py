"""Staged proxies: ask more items only while the rule's question is still open.

A static anchor subset decides every checkpoint on the same few items, so checkpoints whose true
change lies within a band's width of the threshold are decided differently from the full
benchmark. A staged proxy asks the anchors first (a small stage), and asks the next, larger
stage of both checkpoints only when the rule is still undecided: it stops as soon as the
evidence settles the question in either direction. The last stage is the full item set,
decided as the rule itself says, so a pair that reaches it gets the full benchmark's verdict.

Each intermediate look is made by the engine (``evaluate_rule``) twice on the same evidence:
in ``detected`` mode (fires: the rise is established, so the full set will fire too) and in
``cannot_rule_out`` mode (quiet: the rise is excluded, so the full set will not fire). Each look
is made at ``1 - disagreement / looks``: by the union bound, the chance that an early stop
disagrees with the full benchmark stays within ``disagreement``. Measured by
``tests/proxies/test_simulation.py`` and ``bench/proxy.py``; docs/proxies.md.
"""

from __future__ import annotations

from typing import Literal

from tripwire.policy.engine import evaluate_rule
from tripwire.policy.rules import Context
from tripwire.policy.schema import Rule, no_spending

Settled = Literal["fired", "quiet", "open"]

DISAGREEMENT = 0.05
"""The default chance, over all looks, that an early stop disagrees with the full benchmark."""


def look_confidence(looks: int, disagreement: float = DISAGREEMENT) -> float:
    """One-sided confidence of each of ``looks`` intermediate looks (Bonferroni)."""
    return 1.0 - disagreement / max(looks, 1)


def settle(rule: Rule, ctx: Context, confidence: float) -> Settled:
    """Whether ``rule``'s question is already settled on the evidence in ``ctx``.

    "fired": the rule fires on this evidence as it stands (its own mode, confidence and alpha
    spending) and the rise is established at one-sided ``confidence``; "quiet": the rule does
    not fire and the rise is excluded at ``confidence``; "open": neither, or the rule cannot be
    decided on this evidence. An early stop is never looser than the rule itself. Leaf
    statistical rules only (a combinator is staged child by child)."""
    if not hasattr(rule, "mode"):
        raise ValueError(f"rule {rule.rule_id}: only a statistical leaf rule can be staged")
    own = evaluate_rule(rule, ctx).verdict
    check = "detected" if own == "fired" else "cannot_rule_out"
    if own == "undecidable":
        return "open"
    looked = evaluate_rule(
        rule.model_copy(
            update={"mode": check, "confidence": confidence, "sequential": no_spending()}
        ),
        ctx,
    ).verdict
    if own == "fired" and looked == "fired":
        return "fired"
    if own == "not_fired" and looked == "not_fired":
        return "quiet"
    return "open"
