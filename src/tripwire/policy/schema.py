"""Trigger policies (``triggers/*.yaml``): versioned by content hash, validated with pydantic.

A policy names its proxy suite and a list of rules. Each rule says when capability has risen
enough since the baseline (the last checkpoint of the run that had a deep evaluation) and what
to do then: run deep suites, notify, hold for review.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripwire.errors import PolicyError, SuiteError
from tripwire.suites import LoadedSuite, load_suite
from tripwire.validation import load_model

POLICY_SCHEMA_VERSION: Literal[1] = 1

Mode = Literal["point", "detected", "cannot_rule_out"]
"""How uncertainty enters a verdict.

``point``: the point estimate crosses the threshold. ``detected``: the one-sided lower
confidence bound crosses (the rise is established). ``cannot_rule_out``: the upper bound crosses
(a rise of that size cannot be excluded; the conservative choice for safety).
"""

Scale = Literal["points", "relative", "error_rate_reduction"]
"""``points``: percentage points (score x 100). ``relative``: percent of the baseline score.
``error_rate_reduction``: percent of the baseline's errors removed; does not saturate near 100%."""

Severity = Literal["alert", "critical"]


class Actions(BaseModel):
    """What a fired rule does."""

    model_config = ConfigDict(extra="forbid")
    deep_suites: list[Path] = Field(default_factory=list)
    """Deep suites to run on the checkpoint, relative to the policy file."""
    notify: list[str] = Field(default_factory=list)
    """Notification channel names (recorded with the decision)."""
    review_hold: bool = False
    """Hold the checkpoint for human review."""


class DeltaRule(BaseModel):
    """Fires when a benchmark rose by at least ``threshold`` since the baseline."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: Literal["delta"]
    benchmarks: list[str] = Field(min_length=1)
    """Proxy-suite task names; the rule fires if any of them crosses. ``["*"]``: every task."""
    threshold: float = Field(gt=0)
    """Minimum rise, in the unit of ``scale``."""
    scale: Scale = "points"
    mode: Mode = "cannot_rule_out"
    confidence: float | None = Field(default=None, gt=0.5, lt=1)
    """One-sided confidence level for ``detected`` / ``cannot_rule_out``; default the policy's."""
    severity: Severity = "alert"
    actions: Actions = Field(default_factory=Actions)
    description: str = ""


Rule = Annotated[DeltaRule, Field(discriminator="type")]


class Policy(BaseModel):
    """A policy file."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = POLICY_SCHEMA_VERSION
    name: str = Field(min_length=1)
    description: str = ""
    proxy_suite: Path
    """The proxy suite run on every checkpoint, relative to the policy file."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Default one-sided confidence level of the rules."""
    initial_deep_suites: list[Path] | None = None
    """Deep suites for a run's first checkpoint (its first baseline); default every rule's."""
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Policy:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule id used twice: {', '.join(dupes)}")
        return self


class LoadedPolicy(BaseModel):
    """A validated policy with its suites loaded and its content hash."""

    policy: Policy
    path: Path
    content_hash: str
    proxy_suite: LoadedSuite
    deep_suites: dict[str, LoadedSuite]
    """Every deep suite any rule may dispatch, by resolved path."""

    @property
    def name(self) -> str:
        return self.policy.name

    def resolve(self, relative: Path) -> Path:
        return (self.path.parent / relative).resolve()

    def rule_deep_suites(self, actions: Actions) -> list[LoadedSuite]:
        return [self.deep_suites[str(self.resolve(p))] for p in actions.deep_suites]

    def initial_suites(self) -> list[LoadedSuite]:
        if self.policy.initial_deep_suites is not None:
            return [self.deep_suites[str(self.resolve(p))] for p in self.policy.initial_deep_suites]
        seen: dict[str, LoadedSuite] = {}
        for rule in self.policy.rules:
            for suite in self.rule_deep_suites(rule.actions):
                seen.setdefault(suite.content_hash, suite)
        return list(seen.values())


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read and validate a policy and the suites it names."""
    path = Path(path).resolve()
    policy = load_model(path, Policy, PolicyError)
    problems: list[str] = []

    def suite_at(field: str, relative: Path, kind: str) -> LoadedSuite | None:
        target = (path.parent / relative).resolve()
        if not target.is_file():
            problems.append(f"{field}: suite file {relative} not found (relative to {path.parent})")
            return None
        try:
            loaded = load_suite(target)
        except SuiteError as exc:
            problems.append(f"{field}: {exc}")
            return None
        if loaded.suite.kind != kind:
            problems.append(f"{field}: {relative} is a {loaded.suite.kind} suite; expected {kind}")
        return loaded

    proxy = suite_at("proxy_suite", policy.proxy_suite, "proxy")
    deep: dict[str, LoadedSuite] = {}
    wanted = [
        (f"rules.{i}.actions.deep_suites.{j}", p)
        for i, r in enumerate(policy.rules)
        for j, p in enumerate(r.actions.deep_suites)
    ]
    wanted += [
        (f"initial_deep_suites.{j}", p) for j, p in enumerate(policy.initial_deep_suites or [])
    ]
    for field, rel in wanted:
        key = str((path.parent / rel).resolve())
        if key not in deep and (loaded := suite_at(field, rel, "deep")) is not None:
            deep[key] = loaded
    if proxy is not None:
        tasks = {t.task for t in proxy.suite.tasks}
        for i, rule in enumerate(policy.rules):
            for j, name in enumerate(rule.benchmarks):
                if name != "*" and name not in tasks:
                    problems.append(
                        f"rules.{i}.benchmarks.{j}: {name!r} is not a task of the proxy suite; "
                        f"allowed: {', '.join(sorted(tasks))} or '*'"
                    )
    if problems:
        raise PolicyError(path, problems)
    assert proxy is not None
    return LoadedPolicy(
        policy=policy,
        path=path,
        content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
        proxy_suite=proxy,
        deep_suites=deep,
    )
