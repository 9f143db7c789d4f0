"""Typed evaluation results: what the runner returns and the store, policy engine and reports read.

Scores are fractions in [0, 1] as lm-eval reports them; rules and reports speak in points (x 100).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

RESULT_SCHEMA_VERSION: Literal[1] = 1

LevelVerdict = Literal["critical", "alert", "below", "unresolved"]
"""``critical`` / ``alert``: the one-sided 95% lower bound of the score reached that level;
``below``: the upper bound stayed under the alert level; ``unresolved``: the interval straddles
a level."""


class ItemOutcomes(BaseModel):
    """Per-item metric values, aligned: ``values[i]`` is the outcome of item ``doc_hashes[i]``.

    Items are keyed by lm-eval's ``doc_hash`` (sha256 of the document), so two evaluations of
    the same task can be paired item by item even when they selected different subsets.
    """

    doc_hashes: list[str]
    """lm-eval document hashes, in the order lm-eval iterated the documents."""
    values: list[float]
    """The task's primary metric for each item (1.0 / 0.0 for accuracy)."""
    texts: list[tuple[str, str]] | None = None
    """(prompt, target) of each item, as lm-eval built them (the prompt's last 1,500
    characters): the same for every checkpoint scored with the same suite."""
    answers: list[str] | None = None
    """The checkpoint's answer to each item: the choice it ranked first, or its filtered
    generation (300 characters at most)."""


class Elicitation(BaseModel):
    """How a task's profiles compare on one checkpoint."""

    default: str
    """The default profile (the suite's first)."""
    best: str
    scores: dict[str, float]
    """Each profile's score."""
    gap: float
    """Best minus default, in the metric's units (signed so that positive is better)."""
    inference_flop: dict[str, float | None] = {}
    """Each profile's inference compute."""


class TaskResult(BaseModel):
    """One lm-eval task scored on one checkpoint."""

    task: str
    """lm-eval task name."""
    metric: str
    """Primary metric name, e.g. ``acc``."""
    filter: str = "none"
    """lm-eval filter the metric was read under."""
    score: float
    """The metric as lm-eval aggregates it (a fraction for accuracy)."""
    stderr: float | None
    """lm-eval's standard error of ``score``; None where lm-eval gives none."""
    n_items: int
    """Number of items scored."""
    num_fewshot: int
    higher_is_better: bool = True
    task_version: str | None = None
    """The task's ``metadata.version`` from its YAML."""
    alert_level: float | None = None
    """Deep suites: the suite's alert level for the task, in points."""
    critical_level: float | None = None
    """Deep suites: the critical level, in points."""
    level_verdict: LevelVerdict | None = None
    """Deep suites with levels: where the score stands (``tripwire.decisions.levels``)."""
    profile: str | None = None
    """The elicitation profile these scores came from (on the task's own row: the best one)."""
    elicitation: Elicitation | None = None
    """On the task's own row of a task with profiles: every profile's score and the gap."""
    inference_tokens: int | None = None
    """Tokens the model read and wrote for this row's profile (every sample counted)."""
    inference_flop: float | None = None
    """Inference compute of this row's profile: 2 x parameters x ``inference_tokens``."""
    estimator: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """``irt-anchor``: ``score`` and ``stderr`` are the 2PL estimate of the full benchmark from
    an anchor subset (``items`` are the anchors' own outcomes); None: the items' mean."""
    shared_se: float | None = Field(default=None, exclude_if=lambda v: v is None)
    """With an estimator: the part of ``stderr`` shared by every estimate from the same anchor
    file (its misfit), counted once in a difference of two."""
    items: ItemOutcomes


class Versions(BaseModel):
    """Library versions recorded with every result, for reproducibility."""

    lm_eval: str
    transformers: str
    torch: str
    tripwire: str
    batch_size: int | None = Field(default=None, exclude_if=lambda v: v is None)
    """lm-eval batch size the scores were computed at: the configured one, or smaller after an
    out-of-memory retry (the runner halves it). Left out where unknown."""
    backend: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """lm-eval's model type the scores came from (``hf``, ``vllm``); left out in older results."""
    dtype: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The dtype the weights were held in (``float32``, ``bfloat16``); left out in older results."""
    logs: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)
    """Where a deep suite's harness kept its logs (Inspect's ``.eval`` files)."""
    cached_answers: int | None = Field(default=None, exclude_if=lambda v: v is None)
    """Model answers taken from the response cache (``tripwire.runner.responses``) rather than
    computed; left out when the cache was off."""
    computed_answers: int | None = Field(default=None, exclude_if=lambda v: v is None)
    """Model answers computed by the model in this evaluation; left out when the cache was off."""


class SuiteResult(BaseModel):
    """Every task of one suite scored on one checkpoint."""

    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    suite_name: str
    suite_hash: str
    """Content hash of the suite file and the custom task files and data it uses."""
    model_path: str
    tasks: dict[str, TaskResult]
    versions: Versions
    started_at: datetime
    duration_s: float
    """Wall time of the whole suite, model loading included."""
    seed: int = Field(default=0, description="lm-eval random seed")
