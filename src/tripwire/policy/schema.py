"""Trigger policies (``triggers/*.yaml``): versioned by content hash, validated with pydantic.

A policy names its proxy suite and a list of rules. Each rule says when capability has risen
enough since the baseline (the last checkpoint of the run that had a deep evaluation) and what
to do then: run deep suites, notify, hold for review. Rule types and their statistics are
described in ``docs/policies.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    model_validator,
)

from tripwire.errors import PolicyError, SuiteError
from tripwire.suites import LoadedSuite, load_suite
from tripwire.validation import Problem, problem_at, read_and_validate

POLICY_SCHEMA_VERSION: Literal[1] = 1
Loc = tuple[str | int, ...]
"""A field path in a policy file: ``("rules", 0, "threshold")``."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

Mode = Literal["point", "detected", "cannot_rule_out"]
"""How uncertainty enters a verdict.

``detected`` (the default): the one-sided lower confidence bound crosses (the rise is
established); with alpha spending over the run, a rule fires when the true rise is at most its
threshold with probability at most alpha over the whole run. ``cannot_rule_out``: the upper
bound crosses (a rise of that size cannot be excluded): a true crossing is missed at most alpha
of the time, but it fires on noise unless the suite resolves the threshold well (``tripwire
policy check`` prints its no-change fire rate). ``point``: the estimate crosses; no guarantee.
"""

DEFAULT_MODE: Mode = "detected"
DEFAULT_LOOKS = 50
"""Planned looks of an alpha-spending budget when a policy does not say."""

Scale = Literal["points", "relative", "error_rate_reduction"]
"""``points``: percentage points (score x 100). ``relative``: percent of the baseline score.
``error_rate_reduction``: percent of the baseline's errors removed; does not saturate near 100%."""

Severity = Literal["alert", "critical"]

Correction = Literal["holm", "bh", "none"]
"""Correction across a rule's benchmarks in ``detected`` mode: Holm's step-down (family-wise
error), Benjamini-Hochberg (false discovery rate), or none."""

SCALE_UNITS: dict[str, str] = {
    "points": "points",
    "relative": "% relative",
    "error_rate_reduction": "% of errors",
}

# ---------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d|w)\s*$")
_UNIT_S = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """``"180d"`` -> 180 days. Units: s, min, h, d, w; months and years are refused."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or (match := _DURATION.match(value)) is None:
        raise ValueError(
            "expected a duration such as '180d'; units: s, min, h, d, w (months and years "
            "vary in length: write days, e.g. '182d' for six months)"
        )
    duration = timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    if duration <= timedelta(0):
        raise ValueError("the duration must be positive")
    return duration


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: ``182d``, ``12h``, ``90min``, ``45s``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "min"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{int(seconds // _UNIT_S[unit])}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]

# ---------------------------------------------------------------- parts of rules


class Actions(BaseModel):
    """What a fired rule does."""

    model_config = ConfigDict(extra="forbid")
    deep_suites: list[Path] = Field(default_factory=list)
    """Deep suites to run on the checkpoint, relative to the policy file."""
    notify: list[str] = Field(default_factory=list)
    """Notification channel names (recorded with the decision)."""
    review_hold: bool = False
    """Hold the checkpoint for human review."""


class Sequential(BaseModel):
    """How a rule controls false alarms over the repeated looks at a run.

    ``alpha_spending`` (the default in ``detected`` mode): each of the first ``looks`` looks
    is tested at alpha / (looks + 1) and every later look k at alpha / (k (k + 1)); the shares
    sum to alpha, so the chance of any false alarm across all looks stays within alpha
    (``docs/policies.md``, "Repeated looks"). ``none``: each checkpoint is tested at the rule's
    confidence on its own (alpha per look).
    """

    model_config = ConfigDict(extra="forbid")
    method: Literal["none", "alpha_spending"] = "alpha_spending"
    scope: Literal["run", "baseline"] = "run"
    """Count looks since the run's first checkpoint (one budget for the whole run), or since
    the baseline (the budget renews after each deep evaluation, so over a run with several
    baselines false alarms add up: measured 32% over 50 looks once a cadence rule moves it)."""
    looks: int = Field(default=DEFAULT_LOOKS, ge=0, le=100_000)
    """Looks the budget is planned for (checkpoints per run, or per baseline); 0: no plan,
    look k is tested at alpha / (k (k + 1)) from the first."""


def _sequential_shorthand(value: object) -> object:
    return {"method": value} if isinstance(value, str) else value


SequentialField = Annotated[Sequential | None, BeforeValidator(_sequential_shorthand)]


def no_spending() -> Sequential:
    return Sequential(method="none")


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, min_length=1, pattern=ID_PATTERN)
    """Unique within the policy; required on top-level rules (it keys the decision log). A
    nested rule without one is called ``<parent id>.<index>``."""
    description: str = ""
    severity: Severity = "alert"
    actions: Actions = Field(default_factory=Actions)

    @property
    def rule_id(self) -> str:
        return self.id or "?"

    @property
    def unit(self) -> str:
        """The unit of the rule's threshold and statistic."""
        return ""

    @property
    def needs_baseline(self) -> bool:
        """Whether the rule can only be decided against a baseline."""
        return True


class _Statistical(_RuleBase):
    mode: Mode = DEFAULT_MODE
    confidence: float | None = Field(default=None, gt=0.5, lt=1)
    """One-sided confidence level; default the policy's."""
    sequential: SequentialField = None
    """Default: alpha spending over the run in ``detected`` mode, none in the other modes."""

    @property
    def spending(self) -> Sequential:
        """The sequential setting in force (the mode's default when the rule sets none)."""
        if self.sequential is not None:
            return self.sequential
        return Sequential() if self.mode == "detected" else no_spending()


class _Corrected(_Statistical):
    correction: Correction = "holm"
    """Correction across the rule's benchmarks in ``detected`` mode."""


# ---------------------------------------------------------------- rule types


class DeltaRule(_Corrected):
    """Fires when a benchmark rose by at least ``threshold`` since the baseline."""

    type: Literal["delta"]
    benchmarks: list[str] = Field(min_length=1)
    """Proxy-suite task names; the rule fires if any of them crosses. ``["*"]``: every task."""
    threshold: float = Field(ge=0)
    """Minimum rise, in the unit of ``scale``. 0 (``detected`` mode only): any established rise."""
    scale: Scale = "points"

    @property
    def unit(self) -> str:
        return SCALE_UNITS[self.scale]


class LevelRule(_Corrected):
    """Fires when a benchmark reached an alert level it had not reached at the baseline."""

    type: Literal["level"]
    benchmarks: list[str] = Field(min_length=1)
    level: float = Field(gt=0, lt=100)
    """Alert level in points (score x 100); for lower-is-better metrics, reaching means falling
    to it."""
    critical_level: float | None = Field(default=None, gt=0, le=100)
    """The critical level the alert level warns of, in points (documentation and power check)."""

    @property
    def unit(self) -> str:
        return "points"

    @property
    def needs_baseline(self) -> bool:
        return False


class ComputeRule(_RuleBase):
    """Fires when training compute grew by ``factor`` since the baseline, or crossed
    ``above_flop``."""

    type: Literal["compute"]
    factor: float | None = Field(default=None, gt=1)
    """Growth since the baseline, as a multiple (4 = 4x)."""
    above_flop: float | None = Field(default=None, gt=0)
    """An absolute figure in FLOP (1e26), crossed since the baseline."""

    @property
    def unit(self) -> str:
        return "x compute" if self.factor is not None else "FLOP"

    @property
    def needs_baseline(self) -> bool:
        return self.above_flop is None


class CadenceRule(_RuleBase):
    """Fires when the time since the baseline's deep evaluation reaches ``every``."""

    type: Literal["cadence"]
    every: Duration
    """A duration such as ``180d`` (units s, min, h, d, w)."""

    @property
    def unit(self) -> str:
        return "days"


class ElicitationGapRule(_Corrected):
    """Fires when an elicited profile beats the default one by at least ``threshold``.

    Profiles are proxy-suite tasks over the same items asked differently (``gsm8k`` and
    ``gsm8k_cot``); the comparison is paired on shared items.
    """

    type: Literal["elicitation_gap"]
    default: str = Field(min_length=1)
    """The default profile's task."""
    elicited: list[str] = Field(min_length=1)
    """Tasks of the other profiles; the best of them counts."""
    threshold: float = Field(ge=0)
    scale: Scale = "points"

    @property
    def unit(self) -> str:
        return SCALE_UNITS[self.scale]

    @property
    def needs_baseline(self) -> bool:
        return False


class DivergenceRule(_Statistical):
    """A sandbagging alarm: the ``general`` set rose by ``general_rise`` while the ``risk`` set
    rose by at most ``risk_max_rise`` (stayed flat or dropped), both since the baseline."""

    type: Literal["divergence"]
    general: list[str] = Field(min_length=1)
    """Tasks of general capability; their mean change counts."""
    risk: list[str] = Field(min_length=1)
    """Tasks of the risk domain; their mean change counts."""
    general_rise: float = Field(gt=0)
    risk_max_rise: float = 0.0
    """Negative: the risk set must have dropped by at least that much."""
    scale: Scale = "points"

    @property
    def unit(self) -> str:
        return SCALE_UNITS[self.scale]


class _Combinator(_RuleBase):
    rules: list[Rule] = Field(min_length=2)

    @property
    def unit(self) -> str:
        return "rules"

    def needed(self) -> int:
        """How many nested rules must fire."""
        raise NotImplementedError

    @property
    def needs_baseline(self) -> bool:
        """Undecidable without a baseline unless enough children need none."""
        return sum(not r.needs_baseline for r in self.rules) < self.needed()

    @property
    def corrects(self) -> bool:
        """Whether the combinator corrects across its children's tests (Holm). ``any`` and
        ``at_least`` do: one false child can make them fire. ``all``, and ``at_least`` with
        k equal to the number of children, need every child to fire: an intersection-union
        test that needs no correction."""
        return self.needed() < len(self.rules)


class AnyRule(_Combinator):
    """Fires when any nested rule fires."""

    type: Literal["any"]

    def needed(self) -> int:
        return 1


class AllRule(_Combinator):
    """Fires when every nested rule fires."""

    type: Literal["all"]

    def needed(self) -> int:
        return len(self.rules)


class AtLeastRule(_Combinator):
    """Fires when at least ``k`` nested rules fire."""

    type: Literal["at_least"]
    k: int = Field(ge=1)

    def needed(self) -> int:
        return self.k


Rule = Annotated[
    DeltaRule
    | LevelRule
    | ComputeRule
    | CadenceRule
    | ElicitationGapRule
    | DivergenceRule
    | AnyRule
    | AllRule
    | AtLeastRule,
    Field(discriminator="type"),
]
_Combinator.model_rebuild()
AnyRule.model_rebuild()
AllRule.model_rebuild()
AtLeastRule.model_rebuild()

Combinator = AnyRule | AllRule | AtLeastRule
LeafRule = DeltaRule | LevelRule | ComputeRule | CadenceRule | ElicitationGapRule | DivergenceRule
RULE_TYPES = (
    "delta",
    "level",
    "compute",
    "cadence",
    "elicitation_gap",
    "divergence",
    "any",
    "all",
    "at_least",
)


def walk(rules: list[Rule], prefix: Loc = ("rules",)) -> Iterator[tuple[Loc, Rule]]:
    """Every rule with its field path (``("rules", 0, "rules", 1)``), parents first."""
    for i, rule in enumerate(rules):
        loc = (*prefix, i)
        yield loc, rule
        if isinstance(rule, AnyRule | AllRule | AtLeastRule):
            yield from walk(rule.rules, (*loc, "rules"))


def task_fields(rule: Rule) -> list[tuple[Loc, str]]:
    """The proxy-suite task names a leaf rule reads, with their paths inside the rule."""
    found: list[tuple[Loc, str]] = []
    if isinstance(rule, DeltaRule | LevelRule):
        found += [(("benchmarks", j), name) for j, name in enumerate(rule.benchmarks)]
    elif isinstance(rule, ElicitationGapRule):
        found.append((("default",), rule.default))
        found += [(("elicited", j), name) for j, name in enumerate(rule.elicited)]
    elif isinstance(rule, DivergenceRule):
        found += [(("general", j), name) for j, name in enumerate(rule.general)]
        found += [(("risk", j), name) for j, name in enumerate(rule.risk)]
    return found


class Planning(BaseModel):
    """Assumptions ``tripwire policy check`` plans with, and decisions are checked against."""

    model_config = ConfigDict(extra="forbid")
    discordance: float | None = Field(default=None, gt=0, le=1)
    """Share of items whose outcome differs between two checkpoints. Default: the median
    observed in the store's paired decisions when there are any, else 0.25."""
    power: float = Field(default=0.8, ge=0.5, lt=1)
    base_score: float = Field(default=50.0, gt=0, lt=100)
    """Reference score in points that converts relative and error-rate scales."""


DEFAULT_DISCORDANCE = 0.25


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
    planning: Planning = Field(default_factory=Planning)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _name_nested_rules_and_check(self, info: ValidationInfo) -> Policy:
        for _loc, rule in walk(self.rules):
            if isinstance(rule, AnyRule | AllRule | AtLeastRule):
                for i, child in enumerate(rule.rules):
                    if child.id is None and rule.id is not None:
                        child.id = f"{rule.id}.{i}"
        if not (info.context or {}).get("deferred_checks"):
            problems = policy_problems(self)
            if problems:
                raise ValueError("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems))
        return self


def _dotted(loc: Loc) -> str:
    return ".".join(map(str, loc))


def policy_problems(policy: Policy) -> list[Problem]:
    """Checks across fields, each with the path of the field to fix."""
    problems: list[Problem] = []
    seen: dict[str, Loc] = {}
    for loc, rule in walk(policy.rules):
        nested = len(loc) > 2
        if rule.id is None:
            if not nested:
                message = "a top-level rule needs an id (it keys the decisions)"
                problems.append(((*loc, "id"), message))
        elif rule.id in seen:
            problems.append(
                ((*loc, "id"), f"{rule.id!r} is already the id of {_dotted(seen[rule.id])}")
            )
        else:
            seen[rule.id] = loc
        if nested:
            for field in ("actions", "severity"):
                if field in rule.model_fields_set:
                    parent = _dotted(loc[:-2])
                    problems.append(
                        (
                            (*loc, field),
                            f"the {field} of a nested rule are ignored: the combinator's own "
                            f"apply when it fires; set them on {parent}",
                        )
                    )
        problems.extend(((*loc, *sub), msg) for sub, msg in _rule_problems(rule))
    return problems


def _rule_problems(rule: Rule) -> list[tuple[Loc, str]]:
    if (
        isinstance(rule, _Statistical)
        and rule.sequential is not None
        and rule.sequential.method == "alpha_spending"
        and rule.mode != "detected"
    ):
        why = (
            "it widens the upper bound, so the rule fires more, not less (99.8% of 50-look "
            "runs with no true change)"
            if rule.mode == "cannot_rule_out"
            else "point mode tests nothing to spend alpha on"
        )
        return [
            (
                ("sequential",),
                f"alpha_spending controls false fires of detected mode only; in {rule.mode} "
                f"mode {why}; allowed: mode: detected, or sequential: none",
            )
        ]
    if isinstance(rule, AtLeastRule) and rule.k > len(rule.rules):
        return [(("k",), f"k={rule.k} but only {len(rule.rules)} nested rules")]
    if isinstance(rule, ComputeRule) and rule.factor is None and rule.above_flop is None:
        return [(("factor",), "give factor (e.g. 4), above_flop (e.g. 1e26) or both")]
    if isinstance(rule, LevelRule) and (rule.critical_level or 100.0) <= rule.level:
        return [
            (
                ("critical_level",),
                f"{rule.critical_level:g} must be above the alert level {rule.level:g}",
            )
        ]
    if isinstance(rule, DivergenceRule) and rule.risk_max_rise >= rule.general_rise:
        return [
            (
                ("risk_max_rise",),
                f"{rule.risk_max_rise:g} must be below general_rise {rule.general_rise:g}",
            )
        ]
    if (
        isinstance(rule, DeltaRule | ElicitationGapRule)
        and rule.threshold == 0
        and rule.mode != "detected"
    ):
        return [
            (
                ("threshold",),
                f"0 is only meaningful in detected mode (an established rise); in "
                f"{rule.mode} mode it fires on noise",
            )
        ]
    if isinstance(rule, ElicitationGapRule) and rule.default in rule.elicited:
        j = rule.elicited.index(rule.default)
        return [(("elicited", j), f"{rule.default!r} is the default profile itself")]
    return []


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

    def initial_actions(self) -> Actions:
        """The actions of the built-in first-checkpoint rule."""
        return Actions(deep_suites=[s.path for s in self.initial_suites()])


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read and validate a policy and the suites it names.

    Every problem is reported at once, each with the line, the field path, the bad value and
    what is allowed.
    """
    path = Path(path).resolve()
    policy, data = read_and_validate(path, Policy, PolicyError, context={"deferred_checks": True})
    problems = [problem_at(data, loc, msg) for loc, msg in policy_problems(policy)]

    def suite_at(loc: Loc, relative: Path, kind: str) -> LoadedSuite | None:
        target = (path.parent / relative).resolve()
        if not target.is_file():
            problems.append(
                problem_at(
                    data, loc, f"suite file {relative} not found (relative to {path.parent})"
                )
            )
            return None
        try:
            loaded = load_suite(target)
        except SuiteError as exc:
            problems.append(problem_at(data, loc, str(exc)))
            return None
        if loaded.suite.kind != kind:
            problems.append(
                problem_at(data, loc, f"{relative} is a {loaded.suite.kind} suite; expected {kind}")
            )
        return loaded

    proxy = suite_at(("proxy_suite",), policy.proxy_suite, "proxy")
    deep: dict[str, LoadedSuite] = {}
    wanted: list[tuple[Loc, Path]] = [
        ((*loc, "actions", "deep_suites", j), p)
        for loc, rule in walk(policy.rules)
        for j, p in enumerate(rule.actions.deep_suites)
    ]
    wanted += [
        (("initial_deep_suites", j), p) for j, p in enumerate(policy.initial_deep_suites or [])
    ]
    for loc, rel in wanted:
        key = str((path.parent / rel).resolve())
        if key not in deep and (loaded := suite_at(loc, rel, "deep")) is not None:
            deep[key] = loaded
    if proxy is not None:
        problems.extend(_task_problems(policy, proxy, data))
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


def _task_problems(policy: Policy, proxy: LoadedSuite, data: Any) -> list[str]:
    tasks = set(proxy.suite.result_names())
    problems = []
    for loc, rule in walk(policy.rules):
        for sub, name in task_fields(rule):
            wildcard = name == "*" and isinstance(rule, DeltaRule | LevelRule)
            if not wildcard and name not in tasks:
                allowed = ", ".join(sorted(tasks))
                if isinstance(rule, DeltaRule | LevelRule):
                    allowed += " or '*'"
                problems.append(
                    problem_at(
                        data,
                        (*loc, *sub),
                        f"{name!r} is not a task of the proxy suite {proxy.name}; "
                        f"allowed: {allowed}",
                    )
                )
    return problems
