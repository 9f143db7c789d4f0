"""What a report says: the data models behind every checkpoint page and run trajectory.

The store fills these models; ``render`` turns them into JSON, HTML and Markdown. The JSON files
are these models dumped as they are, so a report can be re-read with
``CheckpointReport.model_validate_json``.

Scores are fractions in [0, 1], as lm-eval reports them; differences between scores are in
points (score x 100), as rules speak. NaN and infinite numbers are written to JSON as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` so that the files stay valid JSON and read back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

REPORT_SCHEMA_VERSION: Literal[2] = 2
"""Version of the report JSON layout; bumped on any incompatible change."""

Severity = Literal["alert", "critical"]
Verdict = Literal["fired", "not_fired", "undecidable"]
CheckpointState = Literal["discovered", "evaluated", "decided", "failed"]
"""Mirrors ``tripwire.store.models.CheckpointState``."""
JobState = Literal["pending", "running", "done", "failed"]
"""Mirrors ``tripwire.store.models.JobState``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class ScoreRow(_Model):
    """One benchmark scored on one checkpoint, next to the baseline's score."""

    task: str
    """lm-eval task name."""
    metric: str
    """Primary metric name, e.g. ``acc``."""
    score: float
    """The metric as a fraction in [0, 1]; NaN when lm-eval produced no number."""
    stderr: float | None = None
    """Standard error of ``score``, as a fraction; None where lm-eval gives none."""
    n_items: int
    """Number of items scored."""
    num_fewshot: int
    """Few-shot examples in each prompt."""
    baseline_score: float | None = None
    """The baseline checkpoint's score on the same task, as a fraction; None without baseline."""
    delta_points: float | None = None
    """``score - baseline_score`` in points (x 100); None without baseline."""
    alert_level: float | None = None
    """Deep suites: the alert level the suite declares for the task, in points."""
    critical_level: float | None = None
    level_verdict: str | None = None
    """``critical``, ``alert``, ``below`` or ``unresolved``, as judged when the result was
    stored (one-sided 95% bounds against the levels)."""
    change: ChangeRow | None = None
    """Deep suites: the change since the run's previous deep evaluation of the same suite."""


class ChangeRow(_Model):
    """A paired (or unpaired) change between two stored evaluations of one task."""

    estimate: float
    """Points."""
    low: float
    """Lower bound of the two-sided 95% interval, in points."""
    high: float
    method: str
    paired_items: int = 0
    discordant: tuple[int, int] | None = None
    """Items newly right and newly wrong."""
    p_no_change: float | None = None
    """Two-sided p-value against "no change" (exact McNemar mid-p for paired binary items)."""


class ComparisonRow(_Model):
    """One benchmark compared with the baseline by one rule, in the rule's unit."""

    task: str
    """lm-eval task name."""
    estimate: float
    """Point estimate of the change, in ``unit``."""
    low: float
    """Lower confidence bound of the change, in ``unit``."""
    high: float
    """Upper confidence bound of the change, in ``unit``."""
    unit: str
    """Unit of ``estimate``, ``low`` and ``high``: ``points``, ``relative`` (percent) or ..."""
    method: str
    """How the change was measured: ``paired (Agresti-Min)`` or ``paired t`` on shared items,
    ``unpaired (Newcombe)`` or ``unpaired (standard errors)`` otherwise (docs/policies.md)."""
    paired_items: int = 0
    """Items shared by both checkpoints (0 when unpaired)."""
    crossed: bool
    """Whether this comparison crossed the rule's threshold in the rule's statistical mode."""
    p_value: float | None = None
    """One-sided p-value against 'no rise beyond the threshold'; None where not computed."""
    adjusted_p: float | None = None
    """``p_value`` corrected across the rule's benchmarks (``detected`` mode)."""
    alpha: float | None = None
    """The one-sided level the interval is shown at."""
    discordant: tuple[int, int] | None = None
    """Paired binary items newly right and newly wrong (McNemar's b and c)."""
    discordance: float | None = None
    """Observed share of paired items whose outcome changed."""
    unshared: tuple[int, int] = (0, 0)
    """Items scored only on the checkpoint, and only on the baseline."""
    note: str = ""


class ActionsRow(_Model):
    """What a rule does when it fires."""

    deep_suites: list[str] = Field(default_factory=list)
    """Deep suite names dispatched for the checkpoint."""
    notify: list[str] = Field(default_factory=list)
    """Notification channel names."""
    review_hold: bool = False
    """Whether the checkpoint is held for human review."""


class DecisionRow(_Model):
    """One rule evaluated for one checkpoint, as recorded in the decision log."""

    rule_id: str
    rule_type: str
    """``delta``, ``level``, ``compute``, ``cadence``, ``any``, ..."""
    severity: Severity
    verdict: Verdict
    threshold: float | None = None
    """The rule's threshold, in ``unit``; None for combinators."""
    statistic: float | None = None
    """The deciding comparison's estimate, in ``unit``."""
    interval_low: float | None = None
    """Lower confidence bound of ``statistic``, in ``unit``."""
    interval_high: float | None = None
    """Upper confidence bound of ``statistic``, in ``unit``."""
    unit: str | None = None
    """Unit of ``threshold``, ``statistic`` and the interval (``points``, ``relative``, ...)."""
    p_value: float | None = None
    """The p-value that made the decision: in ``detected`` mode the rule fired iff it is at
    most ``alpha``; in ``cannot_rule_out`` mode iff it is above ``alpha``."""
    mode: str | None = None
    """``detected``, ``cannot_rule_out`` or ``point``; None for rules without statistics."""
    alpha: float | None = None
    """The one-sided error level the decision was made at (after alpha spending)."""
    explanation: str
    """Human-readable reason for the verdict, written by the policy engine."""
    warnings: list[str] = Field(default_factory=list)
    """E.g. an observed discordance above the policy's assumption."""
    comparisons: list[ComparisonRow] = Field(default_factory=list)
    actions: ActionsRow = Field(default_factory=ActionsRow)
    decided_at: datetime
    record_hash: str
    """Hash of this record in the hash-chained decision log."""


class CheckpointRef(_Model):
    """Another checkpoint a page links to."""

    content_hash: str
    step: int | None = None
    run: str | None = None


class DeepResult(_Model):
    """One deep suite run (or queued) on the checkpoint."""

    suite_name: str
    suite_hash: str
    """Content hash of the suite file and what it uses."""
    scores: list[ScoreRow] = Field(default_factory=list)
    state: JobState
    error: str | None = None
    """Why the deep evaluation failed; None unless ``state`` is ``failed``."""
    previous: CheckpointRef | None = None
    """The run's previous checkpoint evaluated with the same deep suite (``scores[*].change``
    is measured from it)."""
    logs: list[str] = Field(default_factory=list)
    """Where the suite's harness kept its logs (Inspect's ``.eval`` files), as it reported."""


class ReviewRow(_Model):
    """A reviewer's action on the checkpoint, as recorded (and in the ledger)."""

    created_at: datetime
    action: str
    """``acknowledge``, ``approve``, ``escalate``, ``hold`` or ``release``."""
    actor: str
    """The token's name."""
    role: str
    comment: str = ""
    decision_id: int | None = None


class JobRow(_Model):
    """One queued unit of work about the checkpoint."""

    kind: str
    """``proxy_eval``, ``decide``, ``deep_eval``, ``report``, ..."""
    state: JobState
    attempts: int
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class CheckpointInfo(_Model):
    """The checkpoint a report is about."""

    content_hash: str
    """Content hash of the weights and config: the checkpoint's identity."""
    run: str
    """Name of the training run."""
    step: int | None = None
    """Training step; None when the checkpoint does not declare one."""
    stage: str
    """``pretrain``, ``sft``, ``preference``, ``merge``, ``distill``, ..."""
    path: str
    """Where the checkpoint was first seen."""
    locations: list[str] = Field(default_factory=list)
    """Every path the same weights were seen under."""
    training_flop: float | None = None
    """Training compute in FLOP along the lineage (each term declared, else estimated 6·N·D);
    None when unknown. What compute rules see."""
    declared_flop: float | None = None
    """Cumulative compute from declared figures only (None if any is missing)."""
    estimated_flop: float | None = None
    """Cumulative compute from 6·N·D estimates only (None if any is missing)."""
    params_total: int | None = None
    params_active: int | None = None
    """Parameters per token (a mixture of experts: fewer than ``params_total``)."""
    tokens_seen: int | None = None
    state: CheckpointState
    error: str | None = None
    """Why the checkpoint failed; None unless ``state`` is ``failed``."""


class PolicyRef(_Model):
    """The trigger policy a checkpoint was judged under."""

    name: str
    hash: str
    """Content hash of the policy file."""


class SuiteRef(_Model):
    """A suite by name and content hash."""

    name: str
    hash: str


class BaselineRef(_Model):
    """The checkpoint compared against: the last one in the lineage with a deep evaluation."""

    content_hash: str
    step: int | None = None


class DecisionSetRow(_Model):
    """The decisions of another policy for the same checkpoint (``tripwire decide``)."""

    policy: PolicyRef
    origin: str
    """``live`` or ``redecide``."""
    decisions: list[DecisionRow] = Field(default_factory=list)


class CheckpointReport(_Model):
    """The job report of one checkpoint: scores, decisions, dispatches and jobs.

    Everything here is read from stored records; nothing is decided again when it is written.
    """

    schema_version: Literal[2] = REPORT_SCHEMA_VERSION
    generated_at: datetime
    checkpoint: CheckpointInfo
    policy: PolicyRef | None = None
    """The policy of the decisions shown (the live ones); None before any decision."""
    baseline: BaselineRef | None = None
    """None when this is the run's first checkpoint (nothing to compare with)."""
    proxy_suite: SuiteRef | None = None
    """The proxy evaluation the decisions read; None before any evaluation."""
    proxy_scores: list[ScoreRow] = Field(default_factory=list)
    decisions: list[DecisionRow] = Field(default_factory=list)
    """The live decisions: the ones that dispatched."""
    other_decisions: list[DecisionSetRow] = Field(default_factory=list)
    """Decisions appended later under other policies; they dispatched only if they say so."""
    review_hold: bool = False
    """The checkpoint is held for review now (it cannot become a baseline)."""
    previous: CheckpointRef | None = None
    """The run's checkpoint before this one (by step)."""
    next: CheckpointRef | None = None
    reviews: list[ReviewRow] = Field(default_factory=list)
    """Every review action on the checkpoint, oldest first."""
    deep: list[DeepResult] = Field(default_factory=list)
    jobs: list[JobRow] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    """Library versions the proxy scores were produced with: lm_eval, transformers, torch, ..."""


class TrajectoryPoint(_Model):
    """One checkpoint on a run's capability trajectory."""

    step: int | None = None
    content_hash: str
    state: CheckpointState
    scores: dict[str, float] = Field(default_factory=dict)
    """Proxy score per task, as a fraction; a missing task was not scored."""
    stderrs: dict[str, float | None] = Field(default_factory=dict)
    """Standard error per task, as a fraction."""
    fired: bool = False
    """A rule of the live policy fired (the run's first checkpoint's routine baseline
    evaluation is not a fire: see ``baseline_evaluation``)."""
    baseline_evaluation: bool = False
    """The run's first decided checkpoint, evaluated deeply to become its first baseline."""
    fired_rules: list[str] = Field(default_factory=list)
    fired_severity: Severity | None = None
    """Highest severity among the fired rules; None when none fired."""
    deep_evaluated: bool = False
    """Whether a deep evaluation was dispatched for this checkpoint."""
    held: bool = False
    """Held for review now (it cannot become a baseline)."""
    tokens_seen: int | None = None
    training_flop: float | None = None
    """Training compute to date along the lineage (declared, else estimated), in FLOP: the
    compute axis."""
    declared_flop: float | None = None
    estimated_flop: float | None = None
    """Declared and estimated cumulative compute, side by side."""
    compute_rule_fired: bool | None = None
    """Whether an effective-compute rule (``RunReport.compute_rule``) would have called for a
    deep evaluation here; None when the compute is unknown."""
    baseline_step: int | None = None
    """The step of the baseline the live decision compared this checkpoint with."""
    baseline_scores: dict[str, float] = Field(default_factory=dict)
    """That baseline's proxy scores, as a fraction, as the decision record holds them."""
    report_href: str
    """Link to the checkpoint's page, relative to the run page (see ``paths.checkpoint_href``)."""

    @field_validator("report_href")
    @classmethod
    def _relative_href(cls, href: str) -> str:
        if ":" in href or href.startswith(("/", "\\")):
            raise ValueError(
                f"report_href must be a relative link such as 'step-100-ab12.html', got {href!r}"
            )
        return href


class RuleBand(_Model):
    """A rule's threshold on one benchmark, drawn on the run's trajectory."""

    rule_id: str
    task: str
    kind: Literal["delta", "level"]
    severity: Severity
    threshold: float | None = None
    """``delta``: the rise above the baseline, in ``scale`` units."""
    scale: str = "points"
    level: float | None = None
    """``level``: the alert level, in points."""
    critical_level: float | None = None


class RunReport(_Model):
    """A run's capability trajectory: every checkpoint's proxy scores and verdicts."""

    schema_version: Literal[2] = REPORT_SCHEMA_VERSION
    generated_at: datetime
    run: str
    """Name of the training run."""
    policies: list[PolicyRef] = Field(default_factory=list)
    """The policies whose live decisions the run's checkpoints carry, in order of use."""
    points: list[TrajectoryPoint] = Field(default_factory=list)
    """Checkpoints in training order."""
    tasks: list[str] = Field(default_factory=list)
    """Proxy tasks, in the order they are plotted and tabulated."""
    bands: list[RuleBand] = Field(default_factory=list)
    """Thresholds of the live policies' delta and level rules, per benchmark."""
    compute_rule: str = "every 4x training compute"
    """The effective-compute rule shown beside the capability triggers."""
    compute_factor: float = 4.0


class SiteRow(_Model):
    """One run on the site index."""

    run: str
    policies: list[PolicyRef] = Field(default_factory=list)
    checkpoints: int = 0
    latest_step: int | None = None
    fired: int = 0
    """Checkpoints where a rule fired (the run's first baseline not counted)."""
    fired_severity: Severity = "alert"
    deep: int = 0
    failed: int = 0
    held: int = 0
    updated_at: datetime | None = None


ScoreRow.model_rebuild()
