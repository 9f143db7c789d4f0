"""Where report files go, and writing them so that a reader never sees half a file.

Run names and hashes come from outside (directory names, webhook bodies), so every name used in a
path is reduced to ``[A-Za-z0-9._-]``. A name that had to be changed gets a short hash of the
original appended, so that ``a/b`` and ``a_b`` do not share a directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME_CHARS = 80
_RESERVED = frozenset({"index.html", "index.json"})
"""Names the site index uses next to the run directories."""


def safe_name(name: str) -> str:
    """A file or directory name derived from ``name`` that cannot leave its parent directory."""
    cleaned = _UNSAFE.sub("_", name).strip("._-")[:_MAX_NAME_CHARS]
    if cleaned == name and cleaned and cleaned.lower() not in _RESERVED:
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"run-{digest}"


def short_hash(content_hash: str, length: int = 12) -> str:
    """The first ``length`` characters of a hash, without an ``algorithm:`` prefix."""
    return content_hash.rpartition(":")[2][:length]


def checkpoint_stem(step: int | None, content_hash: str) -> str:
    """File name (without suffix) of a checkpoint's report inside its run directory.

    The step alone is not unique: new weights can be uploaded under an old step, so the short
    content hash is part of the name too.
    """
    hash12 = safe_name(short_hash(content_hash))
    return hash12 if step is None else f"step-{step}-{hash12}"


def checkpoint_href(step: int | None, content_hash: str) -> str:
    """Link to a checkpoint's HTML page, relative to its run's ``index.html``."""
    return f"{checkpoint_stem(step, content_hash)}.html"


def run_dir(out_dir: Path, run: str) -> Path:
    """The directory of one run's reports, guaranteed to be inside ``out_dir``."""
    root = out_dir.resolve()
    path = (root / safe_name(run)).resolve()
    if path.parent != root:
        raise ValueError(f"run name {run!r} would leave the report directory {root}")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
