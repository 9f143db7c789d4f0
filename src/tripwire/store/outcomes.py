"""Packing per-item outcomes: one float32 vector per task score, aligned to a shared item set."""

from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.results import ItemOutcomes
from tripwire.store.models import ItemSet, ItemTexts


def item_set_digest(doc_hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(doc_hashes).encode()).hexdigest()


def get_or_create_item_set(session: Session, doc_hashes: list[str]) -> ItemSet:
    """The stored item set with exactly these hashes in this order, created if new."""
    digest = item_set_digest(doc_hashes)
    found = session.scalar(select(ItemSet).where(ItemSet.digest == digest))
    if found is not None:
        return found
    item_set = ItemSet(
        digest=digest,
        n_items=len(doc_hashes),
        hashes=zlib.compress("\n".join(doc_hashes).encode(), 6),
    )
    with session.begin_nested():
        session.add(item_set)
    return item_set


def unpack_hashes(item_set: ItemSet) -> list[str]:
    text = zlib.decompress(item_set.hashes).decode()
    return text.split("\n") if text else []


def pack_values(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def unpack_values(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def unpack(item_set: ItemSet, blob: bytes) -> ItemOutcomes:
    return ItemOutcomes(
        doc_hashes=unpack_hashes(item_set), values=[float(v) for v in unpack_values(blob)]
    )


def get_or_create_texts(session: Session, texts: list[tuple[str, str]]) -> ItemTexts:
    """The stored prompts and targets with exactly this content, created if new."""
    blob = zlib.compress(json.dumps(texts, separators=(",", ":")).encode(), 6)
    digest = hashlib.sha256(blob).hexdigest()
    found = session.scalar(select(ItemTexts).where(ItemTexts.digest == digest))
    if found is not None:
        return found
    row = ItemTexts(digest=digest, n_items=len(texts), blob=blob)
    with session.begin_nested():
        session.add(row)
    return row


def unpack_texts(row: ItemTexts) -> list[tuple[str, str]]:
    return [(str(p), str(t)) for p, t in json.loads(zlib.decompress(row.blob))]


def pack_answers(answers: list[str]) -> bytes:
    return zlib.compress(json.dumps(answers, separators=(",", ":")).encode(), 6)


def unpack_answers(blob: bytes) -> list[str]:
    return [str(a) for a in json.loads(zlib.decompress(blob))]
