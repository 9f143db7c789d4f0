"""Decisions: the one place that joins stored results to the policy engine, and the typed,
append-only records of what it decided (``docs/policies.md``, "Decision records")."""

from tripwire.decisions.decide import Outcome, decide_checkpoint
from tripwire.decisions.record import DecisionRecord, read_record

__all__ = ["DecisionRecord", "Outcome", "decide_checkpoint", "read_record"]
