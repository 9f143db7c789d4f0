"""API tokens: created, listed, revoked and checked against the store.

A token is ``twk_`` followed by 32 random bytes (``secrets.token_urlsafe``, 43 characters). Only
its sha256 is stored: with 256 bits of entropy no guess or dictionary can find a token from its
hash, so the slow password hashes (argon2, bcrypt) that protect low-entropy passwords would add
cost to every request and no safety. A token is shown once, when it is created.

Each function takes the caller's ``Session``; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tripwire.errors import TokenError
from tripwire.store.models import ApiToken, Role

TOKEN_PREFIX = "twk_"
TOKEN_BYTES = 32
"""Random bytes in a token (256 bits)."""
SHOWN_PREFIX_CHARS = 10
"""Characters of a token kept in clear (``twk_`` and 6 more) to tell tokens apart in lists."""
LAST_USED_RESOLUTION_S = 60.0
"""``last_used_at`` is written at most once a minute per token, not on every request."""
MAX_NAME_CHARS = 255


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """sha256 (hex) of the token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, name: str, role: Role) -> tuple[ApiToken, str]:
    """A new token named ``name`` with ``role``: the row and the token (shown once)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise TokenError(
            f"token name {name!r}: give a person's or a pipeline's name, 1 to "
            f"{MAX_NAME_CHARS} printable characters"
        )
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(
            f"a token named {name!r} exists (revoked tokens keep their name, since reviews "
            "are attributed to it); choose another name"
        )
    token = new_token()
    row = ApiToken(
        name=name, role=role, token_hash=token_hash(token), prefix=token[:SHOWN_PREFIX_CHARS]
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists; choose another name") from None
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(session: Session, name: str, now: datetime) -> ApiToken:
    """Revoke the token named ``name`` (its browser sessions end too). Revoking twice keeps the
    first time."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        known = ", ".join(t.name for t in list_tokens(session)) or "none"
        raise TokenError(f"no token named {name!r}; tokens: {known}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def authenticate(session: Session, token: str, now: datetime) -> ApiToken | None:
    """The live (not revoked) token row for ``token``, or None; marks it used."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or not hmac.compare_digest(row.token_hash, token_hash(token)):
        return None
    return _live(row, now)


def by_id(session: Session, token_id: int, hashed: str, now: datetime) -> ApiToken | None:
    """The live token of a browser session (which keeps the id and the hash, never the token)."""
    row = session.get(ApiToken, token_id)
    if row is None or not hmac.compare_digest(row.token_hash, hashed):
        return None
    return _live(row, now)


def _live(row: ApiToken, now: datetime) -> ApiToken | None:
    if row.revoked_at is not None:
        return None
    last = row.last_used_at
    if last is None or now - last >= timedelta(seconds=LAST_USED_RESOLUTION_S):
        row.last_used_at = now
    return row
