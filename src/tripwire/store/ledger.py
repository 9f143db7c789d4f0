"""The ledger: one append-only, hash-chained log over decisions, reviews and evaluations.

Each entry names a row (``kind``, ``ref_id``) and carries the sha256 of that row's canonical
fields (``body_hash``) and of the previous entry (``entry_hash`` chains them). Editing a row
changes its body hash; deleting one leaves an entry without a row; a row written outside the
log has no entry; removing or re-ordering entries breaks the chain. ``tripwire audit verify``
checks all four (``tripwire.audit``).

Entries are appended under the log's write lock (``repo.lock_decision_log``), in the caller's
transaction, so a row and its entry are committed together or not at all. When the process has
a ledger key, each entry is also signed, and the transaction's last entry is appended to the
anchor once it commits (``tripwire.store.seal``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.store.models import Decision, Evaluation, LedgerEntry, Review

GENESIS_HASH = "0" * 64
SEAL_KEY = "tripwire.seal"
"""``Session.info`` key of the process's ``tripwire.store.seal.Seal`` (set by ``Database``)."""
HEAD_KEY = "tripwire.ledger_head"
"""``Session.info`` key of the last entry signed in the transaction, anchored after commit."""
KINDS = ("decision", "review", "evaluation")


def iso(moment: datetime | None) -> str | None:
    """UTC ISO time without a zone suffix (the form the decision chain has always hashed)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat()


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def decision_fields(decision: Any) -> dict[str, Any]:
    """The fields a decision's hashes cover (its record, verdict and actions included)."""
    return {
        "checkpoint_id": decision.checkpoint_id,
        "baseline_checkpoint_id": decision.baseline_checkpoint_id,
        "policy_name": decision.policy_name,
        "policy_hash": decision.policy_hash,
        "rule_id": decision.rule_id,
        "rule_type": decision.rule_type,
        "severity": decision.severity,
        "verdict": decision.verdict,
        "statistic": decision.statistic,
        "interval_low": decision.interval_low,
        "interval_high": decision.interval_high,
        "p_value": decision.p_value,
        "explanation": decision.explanation,
        "inputs": decision.inputs,
        "actions": decision.actions,
        "decided_at": iso(decision.decided_at),
    }


def review_fields(review: Any) -> dict[str, Any]:
    return {
        "id": review.id,
        "checkpoint_id": review.checkpoint_id,
        "decision_id": review.decision_id,
        "action": str(review.action.value if hasattr(review.action, "value") else review.action),
        "comment": review.comment,
        "actor": review.actor,
        "role": review.role,
        "created_at": iso(review.created_at),
    }


def evaluation_fields(evaluation: Any, scores: list[Any] | None = None) -> dict[str, Any]:
    """An evaluation with every task score and a digest of its packed per-item outcomes."""
    rows = scores if scores is not None else list(evaluation.scores)
    return {
        "id": evaluation.id,
        "checkpoint_id": evaluation.checkpoint_id,
        "kind": evaluation.kind,
        "suite_name": evaluation.suite_name,
        "suite_hash": evaluation.suite_hash,
        "versions": evaluation.versions,
        "seed": evaluation.seed,
        "started_at": iso(evaluation.started_at),
        "duration_s": evaluation.duration_s,
        "scores": sorted(
            (
                {
                    "task": s.task,
                    "metric": s.metric,
                    "filter": s.filter,
                    "score": s.score,
                    "stderr": s.stderr,
                    "n_items": s.n_items,
                    "num_fewshot": s.num_fewshot,
                    "higher_is_better": s.higher_is_better,
                    "task_version": s.task_version,
                    "item_set_id": s.item_set_id,
                    "outcomes_sha256": sha256(bytes(s.outcomes)),
                    "level_verdict": getattr(s, "level_verdict", None),
                }
                | _elicitation_fields(s)
                | _estimated(s)
                for s in rows
            ),
            key=lambda x: str(x["task"]),
        ),
    }


def _elicitation_fields(score: Any) -> dict[str, Any]:
    """A score's profile fields, only where set: rows written before profiles keep their hash."""
    fields = {
        "profile": getattr(score, "profile", None),
        "elicitation": getattr(score, "elicitation", None),
        "inference_tokens": getattr(score, "inference_tokens", None),
        "inference_flop": getattr(score, "inference_flop", None),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _estimated(score: Any) -> dict[str, Any]:
    """An anchor estimate's fields; absent for plain scores, so older entries hash as before."""
    estimator = getattr(score, "estimator", None)
    if estimator is None:
        return {}
    return {"estimator": estimator, "shared_se": getattr(score, "shared_se", None)}


BODIES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "decision": decision_fields,
    "review": review_fields,
    "evaluation": evaluation_fields,
}
MODELS: dict[str, type[Decision] | type[Review] | type[Evaluation]] = {
    "decision": Decision,
    "review": Review,
    "evaluation": Evaluation,
}


def body_hash(kind: str, row: Any) -> str:
    return sha256(canonical(BODIES[kind](row)))


def entry_hash(prev_hash: str, kind: str, ref_id: int, body: str) -> str:
    return sha256(f"{prev_hash}\n{kind}\n{ref_id}\n{body}")


def head(session: Session) -> LedgerEntry | None:
    return session.scalar(select(LedgerEntry).order_by(LedgerEntry.id.desc()).limit(1))


def first(session: Session) -> LedgerEntry | None:
    """The log's first entry: its hash names the log in the anchor (``AnchorRecord.log``)."""
    return session.scalar(select(LedgerEntry).order_by(LedgerEntry.id).limit(1))


def append(session: Session, kind: str, row: Any) -> LedgerEntry:
    """Append ``row`` (flushed, so it has an id) to the ledger; the caller holds the log lock."""
    last = head(session)
    prev = last.entry_hash if last is not None else GENESIS_HASH
    body = body_hash(kind, row)
    entry = LedgerEntry(
        kind=kind,
        ref_id=row.id,
        body_hash=body,
        prev_hash=prev,
        entry_hash=entry_hash(prev, kind, row.id, body),
    )
    seal = session.info.get(SEAL_KEY)
    if seal is not None and seal.signer is not None:
        # the entry hash chains the entry to everything before it, so signing it signs the
        # entry's place in the log; signed before the INSERT, so no entry is ever updated
        entry.key_id = seal.signer.key_id
        entry.signature = seal.signer.sign(entry.entry_hash)
    session.add(entry)
    session.flush()
    if entry.signature is not None:
        start = entry if last is None else first(session)
        log = start.entry_hash if start is not None else entry.entry_hash
        session.info[HEAD_KEY] = (entry.id, entry.entry_hash, entry.signature, log)
    return entry
