"""The webhook signature: HMAC-SHA256 over ``timestamp + "." + body``.

Sent as ``X-Tripwire-Signature: t=<unix seconds>,v1=<hex digest>``. A receiver recomputes the
digest with its copy of the secret over the raw request body, compares in constant time, and
refuses a timestamp too far from its clock (a replayed request). The timestamp is part of what
is signed, so it cannot be changed without the secret. ``docs/operations.md`` (Notifications)
shows a receiver in a few lines.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Tripwire-Signature"
TOLERANCE_S = 300.0
"""How far a signature's timestamp may be from the receiver's clock (seconds)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Tripwire-Signature`` value: ``t=<timestamp>,v1=<hex>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = TOLERANCE_S
) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` with a timestamp within
    ``tolerance_s`` of ``now`` (unix seconds). Several ``v1=`` values (a key rotation) are
    accepted if any matches."""
    parts = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for name, _, value in parts if name == "t"]
    digests = [value for name, _, value in parts if name == "v1"]
    if len(timestamps) != 1 or not digests or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, digest) for digest in digests)
