"""What a checkpoint says about itself: the ``tripwire.json`` sidecar, or its folder names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from tripwire.errors import CheckpointError
from tripwire.sources.parsed import MAX_SIDECAR_BYTES, read_limited

CONTENT_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"

MAX_STEP = 2**31 - 1
"""Largest step the store keeps (a 32-bit column)."""
MAX_TOKENS = 2**63 - 1
"""Largest token count the store keeps (a 64-bit column)."""
MAX_FLOP = 1e40
"""Largest training compute accepted, in FLOP (frontier runs are near 1e26)."""
MAX_RUN_CHARS = 255
MAX_STAGE_CHARS = 64
MAX_PARENTS = 64
MAX_NOTES = 64
MAX_NOTE_KEY_CHARS = 255
MAX_NOTE_CHARS = 4096
MAX_PARENT_CHARS = 4096
PARENT_SCHEMES = ("s3://", "gs://", "az://", "file://")
"""URI schemes a parent may be named by (besides a content hash or an absolute path)."""

NoteKey = Annotated[str, StringConstraints(max_length=MAX_NOTE_KEY_CHARS)]
NoteValue = Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS)]

_STEP_RE = re.compile(
    r"(?:^|[^a-z0-9])(?:global[-_]?step|step|checkpoint|ckpt|iter)[-_]?(\d+)$", re.IGNORECASE
)


class CheckpointMetadata(BaseModel):
    """Facts about a checkpoint, from its ``tripwire.json`` sidecar or derived from its path."""

    model_config = ConfigDict(extra="forbid")

    run: str | None = Field(default=None, min_length=1, max_length=MAX_RUN_CHARS)
    """Training run (or fine-tuning job) that produced the checkpoint."""
    step: int | None = Field(default=None, ge=0, le=MAX_STEP)
    """Optimizer step within the run."""
    stage: str = Field(default="pretrain", min_length=1, max_length=MAX_STAGE_CHARS)
    """Free text; usually pretrain, sft, preference, merge or distill."""
    parents: list[str] = Field(default_factory=list, max_length=MAX_PARENTS)
    """The checkpoints this one was made from (several for a merge): each a content hash
    (``sha256:<hex>``), an object-store URI (``s3://bucket/run/step-100``) or an absolute path
    where the parent was seen."""
    tokens_seen: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    """Training tokens seen in this checkpoint's own run (stage), from its start: a fine-tune
    counts its fine-tuning tokens, not its base's."""
    training_flop: float | None = Field(default=None, ge=0, le=MAX_FLOP, allow_inf_nan=False)
    """Declared training compute of this checkpoint's own run so far, in FLOP (the parents'
    compute is added along the lineage, not here)."""
    notes: dict[NoteKey, NoteValue] = Field(default_factory=dict, max_length=MAX_NOTES)
    """Free-form data notes, e.g. data modality fractions."""

    @field_validator("parents")
    @classmethod
    def _parents_are_hashes(cls, parents: list[str]) -> list[str]:
        bad = [p for p in parents if not is_parent_ref(p)]
        if bad:
            raise ValueError(
                "each parent must be a content hash 'sha256:<64 hex>', an object-store URI "
                f"({', '.join(PARENT_SCHEMES)}) or an absolute path, got {bad[0][:200]!r}"
            )
        return parents


def is_parent_ref(ref: str) -> bool:
    """A content hash, an object-store URI or an absolute path, without ``..`` parts."""
    if re.match(CONTENT_HASH_PATTERN, ref):
        return True
    if not 1 <= len(ref) <= MAX_PARENT_CHARS or "\x00" in ref or ".." in ref.split("/"):
        return False
    return ref.startswith(PARENT_SCHEMES) or ref.startswith("/")


def load_sidecar(path: Path, size_bytes: int | None = None) -> CheckpointMetadata:
    """Read a ``tripwire.json`` sidecar (at most ``MAX_SIDECAR_BYTES``).

    Raises ``CheckpointError`` naming the file, the field, the value and what is allowed.
    """
    try:
        size = path.stat().st_size if size_bytes is None else size_bytes
        raw = read_limited(path, size, MAX_SIDECAR_BYTES)
    except OSError as exc:
        raise CheckpointError(path.parent, f"cannot read {path.name}: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(path.parent, f"{path.name} is not valid JSON ({exc})") from exc
    try:
        return CheckpointMetadata.model_validate(data)
    except ValidationError as exc:
        raise CheckpointError(path.parent, f"{path.name} is invalid: {_explain(exc)}") from exc


def complete(meta: CheckpointMetadata, directory: Path, root: Path) -> CheckpointMetadata:
    """``meta`` with ``run`` and ``step`` filled in from the folder names where it leaves them
    out, checked against the same bounds as the sidecar (``CheckpointError`` if out of them)."""
    run = meta.run if meta.run is not None else run_from_path(directory, root)
    step = meta.step if meta.step is not None else step_from_name(directory.name)
    try:
        return CheckpointMetadata.model_validate({**meta.model_dump(), "run": run, "step": step})
    except ValidationError as exc:
        raise CheckpointError(
            directory,
            f"the folder names give {_explain(exc)}; rename the folder, or set the field in "
            "tripwire.json",
        ) from exc


def _explain(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(CheckpointMetadata.model_fields)
            problems.append(f"field {field!r} is not allowed (allowed: {allowed})")
        else:
            problems.append(f"field {field!r}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(problems)


def step_from_name(name: str) -> int | None:
    """The training step in a folder name, or None.

    Recognises ``step-1200``, ``step_1200``, ``step1200``, ``checkpoint-1200``, ``ckpt-1200``,
    ``global_step1200``, ``global-step-1200`` and ``iter_0001200``, at the end of the name.
    """
    match = _STEP_RE.search(name)
    return int(match.group(1)) if match else None


def run_from_path(directory: Path, root: Path) -> str:
    """The run a checkpoint belongs to, from where it sits under ``root``.

    The run is the checkpoint folder's parent, relative to ``root`` (``team/run-a`` for
    ``root/team/run-a/step-100``). A checkpoint directly under ``root``, or ``root`` itself,
    belongs to the run named after ``root``.
    """
    parent = directory.parent
    if directory == root or parent == root or not parent.is_relative_to(root):
        return root.name
    return parent.relative_to(root).as_posix()
