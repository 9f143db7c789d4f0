"""The webhook's body and signature.

A sender signs ``<timestamp>.<body>`` with HMAC-SHA256 under the shared secret and sends
``X-Tripwire-Timestamp: <unix seconds>`` and ``X-Tripwire-Signature: v1=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import Field

from tripwire.sources.metadata import CONTENT_HASH_PATTERN, MAX_PARENT_CHARS, CheckpointMetadata

TIMESTAMP_HEADER = "X-Tripwire-Timestamp"
SIGNATURE_HEADER = "X-Tripwire-Signature"
SIGNATURE_PREFIX = "v1="


class CheckpointEvent(CheckpointMetadata):
    """A checkpoint announced by its trainer: where it is, and the sidecar's fields (which win
    over a ``tripwire.json`` in the folder)."""

    schema_version: Literal[1] = 1
    uri: str = Field(min_length=1, max_length=MAX_PARENT_CHARS)
    """The checkpoint folder: an absolute path, ``file://`` URL or ``s3://bucket/key`` prefix,
    under one of ``TRIPWIRE_INTAKE_ROOTS``."""
    content_hash: str | None = Field(default=None, pattern=CONTENT_HASH_PATTERN)
    """The sender's content hash, if it knows it; Tripwire hashes the files itself and records
    a mismatch as the event's error."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp`` (``v1=<hex>``)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """Whether ``header`` signs ``body`` at ``timestamp`` (compared in constant time)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header.strip())
