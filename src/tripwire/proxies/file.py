"""Anchor files: the anchors of one task with the fitted 2PL they were chosen by.

Written by ``tripwire proxy fit``, named by a suite task's ``anchor:``, printed by
``tripwire proxy show``. The format is described in ``docs/proxies.md``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tripwire.errors import EvaluationError, SuiteError
from tripwire.policy.sizes import estimates_change_se
from tripwire.proxies.anchors import FullEstimate, estimate_full, expected_se
from tripwire.proxies.irt import Array, ItemParams
from tripwire.results import TaskResult

ANCHOR_SCHEMA_VERSION: Literal[1] = 1
ESTIMATOR = "irt-anchor"
"""The ``estimator`` of scores estimated from an anchor file (``Score.estimator``)."""


class Anchor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    """The item's key as stored: lm-eval's document hash (``leaf:hash`` in a group)."""
    weight: float = Field(ge=0)
    """Share of the benchmark's items this anchor stands for (the weights sum to 1)."""


class ItemTable(BaseModel):
    """Every item of the full benchmark with its fitted parameters, aligned."""

    model_config = ConfigDict(extra="forbid")
    items: list[str]
    a: list[float]
    """Discrimination."""
    b: list[float]
    """Difficulty (logits)."""

    @model_validator(mode="after")
    def _aligned(self) -> ItemTable:
        if not len(self.items) == len(self.a) == len(self.b):
            raise ValueError("items, a and b must have one entry per item")
        return self


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: str
    suite_hash: str
    """Content hash of the suite whose full-item results were fitted."""
    checkpoints: list[str]
    """Content hashes of the checkpoints fitted."""
    created_at: datetime
    tripwire: str


class HeldOut(BaseModel):
    """Cross-validation over checkpoints: each fold fitted without it, estimated from anchors."""

    model_config = ConfigDict(extra="forbid")
    folds: int
    checkpoints: int
    mae_points: float
    """Mean absolute error of the anchor estimate against the full score, in points."""
    random_mae_points: float
    """The same for the plain mean over random subsets of the same size."""
    coverage_95: float
    """Share of held-out checkpoints inside the calibrated 95% band."""


class AnchorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = ANCHOR_SCHEMA_VERSION
    task: str
    metric: str
    model: Literal["2pl"] = "2pl"
    floor: float = Field(default=0.0, ge=0, lt=1)
    """The fixed chance of a right answer the 2PL sits on (1/4 for four choices)."""
    selection: str = "greedy information over abilities -2.5..3.5"
    anchors: list[Anchor] = Field(min_length=1)
    full: ItemTable
    misfit_sd: float = Field(ge=0)
    """Spread of the estimate's errors beyond what the model claims, as a fraction, measured
    on held-out checkpoints; part of every band."""
    held_out: HeldOut
    provenance: Provenance

    @model_validator(mode="after")
    def _anchors_known(self) -> AnchorFile:
        known = set(self.full.items)
        missing = [a.item for a in self.anchors if a.item not in known]
        if missing:
            raise ValueError(f"anchor {missing[0][:16]} is not among the full items")
        return self

    @property
    def params(self) -> ItemParams:
        return ItemParams(np.asarray(self.full.a), np.asarray(self.full.b), self.floor)

    @property
    def index(self) -> Array:
        position = {h: i for i, h in enumerate(self.full.items)}
        return np.asarray([position[a.item] for a in self.anchors])

    def expected_se(self, theta: float = 0.0) -> float:
        """The band (fraction) of a checkpoint of ability ``theta`` (0: the fitted checkpoints'
        mean ability), for planning."""
        return expected_se(self.index, self.params, self.misfit_sd, theta)

    def change_se(self) -> float:
        """The band (fraction) of a change between two checkpoints of the mean ability scored
        on these anchors, their shared misfit counted once: what ``policy check`` plans with."""
        return estimates_change_se(self.expected_se(), self.misfit_sd)

    def estimate(self, outcomes: dict[str, float]) -> FullEstimate:
        """The full score from the anchors' outcomes (keyed by item); every anchor is needed."""
        missing = [a.item for a in self.anchors if a.item not in outcomes]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(self.anchors)} anchors of {self.task} were not scored "
                f"(first {missing[0][:16]}): the task's items differ from those fitted"
            )
        answers = np.asarray([[outcomes[a.item] for a in self.anchors]])
        return estimate_full(answers, self.index, self.params, self.misfit_sd)


def load_anchor_file(path: Path) -> AnchorFile:
    """Read and validate an anchor file (JSON); errors name the file and the field."""
    try:
        return AnchorFile.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        problem = "anchor file does not exist: write it with `tripwire proxy fit`"
        raise SuiteError(path, [problem]) from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        ]
        raise SuiteError(path, problems[:5]) from None


def write_anchor_file(anchor: AnchorFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(anchor.model_dump_json(indent=1) + "\n")
    tmp.replace(path)


def anchored(result: TaskResult, anchor: AnchorFile) -> TaskResult:
    """``result`` scored on the anchors, with its score replaced by the full-benchmark
    estimate and its standard error by the band's."""
    outcomes = dict(zip(result.items.doc_hashes, result.items.values, strict=True))
    try:
        est = anchor.estimate(outcomes)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    return result.model_copy(
        update={
            "score": float(est.score[0]),
            "stderr": float(est.se[0]),
            "estimator": ESTIMATOR,
            "shared_se": anchor.misfit_sd,
        }
    )
