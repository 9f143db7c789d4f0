"""What a checkpoint says about itself: the ``tripwire.json`` sidecar, or its folder names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tripwire.errors import CheckpointError

CONTENT_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"

_STEP_RE = re.compile(
    r"(?:^|[^a-z0-9])(?:global[-_]?step|step|checkpoint|ckpt|iter)[-_]?(\d+)$", re.IGNORECASE
)


class CheckpointMetadata(BaseModel):
    """Facts about a checkpoint, from its ``tripwire.json`` sidecar or derived from its path."""

    model_config = ConfigDict(extra="forbid")

    run: str | None = None
    """Training run (or fine-tuning job) that produced the checkpoint."""
    step: int | None = Field(default=None, ge=0)
    """Optimizer step within the run."""
    stage: str = "pretrain"
    """Free text; usually pretrain, sft, preference, merge or distill."""
    parents: list[str] = Field(default_factory=list)
    """Content hashes (``sha256:<hex>``) of the checkpoints this one was made from."""
    tokens_seen: int | None = Field(default=None, ge=0)
    """Training tokens seen so far."""
    training_flop: float | None = Field(default=None, ge=0)
    """Declared training compute in FLOP."""
    notes: dict[str, str] = Field(default_factory=dict)
    """Free-form notes, e.g. data modality fractions."""

    @field_validator("parents")
    @classmethod
    def _parents_are_hashes(cls, parents: list[str]) -> list[str]:
        bad = [p for p in parents if not re.match(CONTENT_HASH_PATTERN, p)]
        if bad:
            raise ValueError(f"parents must be content hashes 'sha256:<64 hex>', got {bad[0]!r}")
        return parents


def load_sidecar(path: Path) -> CheckpointMetadata:
    """Read a ``tripwire.json`` sidecar.

    Raises ``CheckpointError`` naming the file, the field and what is allowed.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(path.parent, f"cannot read {path.name}: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(path.parent, f"{path.name} is not valid JSON ({exc})") from exc
    try:
        return CheckpointMetadata.model_validate(data)
    except ValidationError as exc:
        raise CheckpointError(path.parent, f"{path.name} is invalid: {_explain(exc)}") from exc


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
