"""One-time messages for the next page a browser sees (a form posts, redirects, and the page it
lands on says what happened). Kept in the signed session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request

FlashKind = Literal["info", "error"]
MAX_FLASHES = 5
"""Older messages are dropped beyond this (the cookie stays small)."""


@dataclass(frozen=True, slots=True)
class Flash:
    kind: FlashKind
    text: str


def flash(request: Request, text: str, kind: FlashKind = "info") -> None:
    queued = list(request.session.get("flash", []))[-(MAX_FLASHES - 1) :]
    request.session["flash"] = [*queued, [kind, text[:500]]]


def pop_flashes(request: Request) -> list[Flash]:
    """The messages waiting for this session (removed as they are read)."""
    if "flash" not in request.session:
        return []
    found = request.session.pop("flash")
    if not isinstance(found, list):
        return []
    return [
        Flash("error" if item[0] == "error" else "info", str(item[1]))
        for item in found
        if isinstance(item, list) and len(item) == 2
    ]
