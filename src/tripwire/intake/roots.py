"""Whether an announced URI lies under a configured root (paths resolved, ``..`` refused)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import urlsplit

SCHEMES = ("s3", "gs", "az")


def normalise(uri: str) -> str | None:
    """``uri`` in the form roots are compared in: a resolved absolute path, or
    ``scheme://bucket/key`` without a trailing slash. None when it is neither, or when it holds
    ``..``, a NUL or a backslash (a path-traversal attempt is refused, not resolved)."""
    if "\x00" in uri or "\\" in uri:
        return None
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    parts = urlsplit(uri)
    if parts.scheme in SCHEMES:
        if not parts.netloc or ".." in parts.path.split("/") or parts.query or parts.fragment:
            return None
        key = posixpath.normpath(parts.path) if parts.path not in ("", "/") else ""
        return f"{parts.scheme}://{parts.netloc}{key.rstrip('/')}".rstrip("/")
    if parts.scheme or not uri.startswith("/") or ".." in uri.split("/"):
        return None
    try:
        return str(Path(uri).resolve())
    except (OSError, RuntimeError, ValueError):
        return None


def within_roots(uri: str, roots: list[str]) -> str | None:
    """The normalised ``uri`` when it is one of ``roots`` or under one, else None. A symlink
    inside a root that leads outside it is outside."""
    target = normalise(uri)
    if target is None:
        return None
    for root in roots:
        base = normalise(root)
        if base is not None and (target == base or target.startswith(base.rstrip("/") + "/")):
            return target
    return None
