"""Who is asking, and may they: bearer tokens with roles, browser sessions, CSRF.

INTERFACE (stable; the implementation fills it in):

- ``Principal``: the caller's token name and role.
- ``require(role)``: a FastAPI dependency that returns the ``Principal`` when the request
  carries a valid token (``Authorization: Bearer ...``) or a signed-in session of at least
  ``role`` (viewer < reviewer < admin); else 401 (no or bad credentials; pages redirect to
  ``/login``) or 403 (a role too low).
- ``csrf_token(request)``: the token a form of this session must post back as ``csrf_token``;
  ``check_csrf(request, token)`` raises 403 when it does not match.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from pydantic import BaseModel

from tripwire.store.models import Role

RANK = {Role.viewer: 0, Role.reviewer: 1, Role.admin: 2}


class Principal(BaseModel):
    name: str
    role: Role


def require(role: Role) -> Callable[[Request], Principal]:
    """A dependency admitting callers of at least ``role``. (Stub: admits everyone as admin.)"""

    def dependency(request: Request) -> Principal:
        return Principal(name="anonymous", role=Role.admin)

    return dependency


def csrf_token(request: Request) -> str:
    """The CSRF token forms of this session post back. (Stub.)"""
    return ""


def check_csrf(request: Request, token: str) -> None:
    """Refuse (403) a form whose CSRF token does not match the session's. (Stub.)"""
    return None
