"""Policy files: the shipped ones load; bad ones name the file, line, field and allowed values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tripwire.cli import app
from tripwire.errors import PolicyError
from tripwire.policy.schema import (
    AnyRule,
    CadenceRule,
    format_duration,
    load_policy,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[2]

SUITES = {
    "proxy.yaml": (
        "name: p\nkind: proxy\ntasks:\n"
        "  - {task: alpha, limit: 1000}\n  - {task: beta, limit: 1000}\n"
        "  - {task: alpha_cot, limit: 1000}\n  - {task: risk, limit: 1000}\n"
    ),
    "deep.yaml": "name: d\nkind: deep\ntasks:\n  - task: gamma\n",
}
GOOD = """\
name: test
proxy_suite: proxy.yaml
rules:
  - id: r1
    type: delta
    benchmarks: [alpha]
    threshold: 5
    actions:
      deep_suites: [deep.yaml]
"""
HEAD = "name: test\nproxy_suite: proxy.yaml\nrules:\n"


def write(tmp_path: Path, policy: str) -> Path:
    for name, text in SUITES.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return path


@pytest.mark.parametrize(
    "name", ["default.yaml", "demo.yaml", "rsp-style.yaml", "fsf-style.yaml", "sandbagging.yaml"]
)
def test_shipped_policies_load_and_can_decide_their_thresholds(name: str) -> None:
    loaded = load_policy(ROOT / "triggers" / name)
    assert loaded.policy.rules
    assert len(loaded.content_hash) == 64
    result = CliRunner().invoke(app, ["policy", "check", str(ROOT / "triggers" / name)])
    assert result.exit_code == 0, result.output


def test_a_valid_policy_loads_with_its_suites(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, GOOD))
    assert loaded.proxy_suite.name == "p"
    assert [s.name for s in loaded.initial_suites()] == ["d"]
    rule = loaded.policy.rules[0]
    assert rule.mode == "detected"  # type: ignore[union-attr]
    assert rule.correction == "holm"  # type: ignore[union-attr]
    # the default mode spends alpha over the run's 50 planned looks
    spending = rule.spending  # type: ignore[union-attr]
    assert (spending.method, spending.scope, spending.looks) == ("alpha_spending", "run", 50)


@pytest.mark.parametrize("mode", ["cannot_rule_out", "point"])
def test_alpha_spending_outside_detected_mode_is_refused_with_the_reason(
    tmp_path: Path, mode: str
) -> None:
    text = HEAD + (
        "  - id: r\n    type: delta\n    benchmarks: [alpha]\n    threshold: 5\n"
        f"    mode: {mode}\n    sequential: alpha_spending\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(write(tmp_path, text))
    message = str(caught.value)
    for fragment in ("rules.0.sequential", "detected mode only", "allowed: mode: detected"):
        assert fragment in message, message
    # the modes' defaults need no setting: none outside detected mode
    plain = HEAD + (
        f"  - id: r\n    type: delta\n    benchmarks: [alpha]\n    threshold: 5\n    mode: {mode}\n"
    )
    rule = load_policy(write(tmp_path, plain)).policy.rules[0]
    assert rule.spending.method == "none"  # type: ignore[union-attr]


def test_nested_rules_are_named_after_their_combinator(tmp_path: Path) -> None:
    text = HEAD + (
        "  - id: either\n    type: any\n    rules:\n"
        "      - {type: compute, factor: 4}\n"
        "      - {id: half-year, type: cadence, every: 182d}\n"
    )
    rule = load_policy(write(tmp_path, text)).policy.rules[0]
    assert isinstance(rule, AnyRule)
    assert [r.id for r in rule.rules] == ["either.0", "half-year"]
    cadence = rule.rules[1]
    assert isinstance(cadence, CadenceRule) and cadence.every == timedelta(days=182)


@pytest.mark.parametrize(
    ("text", "days"), [("180d", 180), ("26w", 182), ("12h", 0.5), ("90min", 0.0625), ("1.5d", 1.5)]
)
def test_durations(text: str, days: float) -> None:
    assert parse_duration(text).total_seconds() / 86400 == pytest.approx(days)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def _rule(*lines: str) -> str:
    return HEAD + "".join(line + "\n" for line in lines)


# (policy text, fragments the error must contain: the field path, the line, allowed values)
MALFORMED = [
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    mode: maybe"),
        ["line 8", "rules.0.mode", "'point'", "'maybe'"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: -1"),
        ["line 7", "rules.0.threshold", "greater than or equal to 0"],
    ),
    (GOOD.replace("type: delta", "type: deltaa"), ["rules.0", "'delta'", "'cadence'", "deltaa"]),
    (
        GOOD.replace("benchmarks: [alpha]", "benchmarks: [alfa]"),
        ["line 6", "rules.0.benchmarks.0", "allowed: alpha, alpha_cot, beta, risk"],
    ),
    (
        GOOD.replace("proxy_suite: proxy.yaml", "proxy_suite: nope.yaml"),
        ["line 2", "proxy_suite", "not found"],
    ),
    (
        GOOD.replace("deep_suites: [deep.yaml]", "deep_suites: [proxy.yaml]"),
        ["rules.0.actions.deep_suites.0", "expected deep"],
    ),
    (
        GOOD.replace("id: r1", "id: r1\n    colour: red"),
        ["line 5", "rules.0.colour", "Extra inputs"],
    ),
    (GOOD.replace("name: test", "name: test\nname2: x"), ["line 2", "name2"]),
    (GOOD.replace("threshold: 5", "threshold: five"), ["rules.0.threshold", "'five'"]),
    (GOOD.replace("rules:", "rulez:"), ["rules", "Field required"]),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    scale: percent"),
        ["rules.0.scale", "'relative'", "'error_rate_reduction'"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    severity: high"),
        ["rules.0.severity", "'alert'", "'critical'"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    correction: bonferroni"),
        ["rules.0.correction", "'holm'", "'bh'"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    sequential: forever"),
        ["rules.0.sequential.method", "'alpha_spending'"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    confidence: 1.5"),
        ["line 8", "rules.0.confidence", "less than 1"],
    ),
    (
        GOOD.replace("name: test", "name: test\nconfidence: 0.4"),
        ["line 2", "confidence", "greater than 0.5"],
    ),
    (
        GOOD.replace("threshold: 5", "threshold: 5\n    mode: point").replace(
            "threshold: 5", "threshold: 0"
        ),
        ["rules.0.threshold", "only meaningful in detected mode"],
    ),
    (
        GOOD.replace("deep_suites: [deep.yaml]", "notify: safety-team"),
        ["rules.0.actions.notify", "valid list"],
    ),
    (
        _rule("  - id: c", "    type: cadence", "    every: 6mo"),
        ["line 6", "rules.0.every", "182d", "'6mo'"],
    ),
    (
        _rule("  - id: c", "    type: cadence", "    every: 180"),
        ["rules.0.every", "units: s, min, h, d, w"],
    ),
    (_rule("  - id: c", "    type: compute"), ["line 4", "rules.0.factor", "above_flop"]),
    (
        _rule("  - id: c", "    type: compute", "    factor: 0.5"),
        ["rules.0.factor", "greater than 1"],
    ),
    (
        _rule("  - id: c", "    type: compute", "    factor: 4", "    mode: detected"),
        ["rules.0.mode", "Extra inputs"],
    ),
    (
        _rule("  - id: l", "    type: level", "    benchmarks: [alpha]", "    level: 150"),
        ["line 7", "rules.0.level: Input should be less than 100"],
    ),
    (
        _rule(
            "  - id: l",
            "    type: level",
            "    benchmarks: [alpha]",
            "    level: 60",
            "    critical_level: 50",
        ),
        ["line 8", "rules.0.critical_level", "above the alert level 60"],
    ),
    (
        _rule(
            "  - id: k",
            "    type: at_least",
            "    k: 3",
            "    rules:",
            "      - {type: compute, factor: 2}",
            "      - {type: compute, factor: 4}",
        ),
        ["line 6", "rules.0.k", "only 2 nested rules"],
    ),
    (
        _rule("  - id: a", "    type: any", "    rules:", "      - {type: compute, factor: 2}"),
        ["rules.0.rules", "at least 2"],
    ),
    (
        _rule(
            "  - id: a",
            "    type: any",
            "    rules:",
            "      - {type: compute, factor: 2}",
            "      - {type: compute, factor: 4, actions: {notify: [x]}}",
        ),
        ["rules.0.rules.1.actions", "set them on rules.0"],
    ),
    (
        _rule(
            "  - id: a",
            "    type: any",
            "    rules:",
            "      - {type: compute, factor: 2}",
            "      - {type: compote, factor: 4}",
        ),
        ["rules.0.rules.1", "'compute'", "compote"],
    ),
    (
        _rule("  - {id: x, type: compute, factor: 2}", "  - {id: x, type: compute, factor: 4}"),
        ["line 5", "rules.1.id", "already the id of rules.0"],
    ),
    (_rule("  - {type: compute, factor: 2}"), ["line 4", "rules.0.id", "needs an id"]),
    (_rule("  - {id: x, factor: 2}"), ["line 4", "rules.0", "give the 'type' field"]),
    (
        _rule(
            "  - id: d",
            "    type: divergence",
            "    general: [alpha]",
            "    risk: [risk]",
            "    general_rise: 5",
            "    risk_max_rise: 5",
        ),
        ["rules.0.risk_max_rise", "below general_rise 5"],
    ),
    (
        _rule(
            "  - id: d",
            "    type: divergence",
            "    general: [alpha]",
            "    risk: [danger]",
            "    general_rise: 5",
        ),
        ["line 7", "rules.0.risk.0", "'danger'", "allowed: alpha"],
    ),
    (
        _rule(
            "  - id: g",
            "    type: elicitation_gap",
            "    default: alpha",
            "    elicited: [alpha_cot, alpha_tot]",
            "    threshold: 5",
        ),
        ["rules.0.elicited.1", "'alpha_tot'"],
    ),
    (
        _rule(
            "  - id: g",
            "    type: elicitation_gap",
            "    default: alpha",
            "    elicited: [alpha]",
            "    threshold: 5",
        ),
        ["rules.0.elicited.0", "the default profile itself"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_a_bad_policy_names_file_field_and_allowed_values(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, message


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_policy_check_exits_non_zero_on_a_bad_policy(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    result = CliRunner().invoke(app, ["policy", "check", str(write(tmp_path, text))])
    assert result.exit_code == 2
    assert expected[0] in result.output
    assert "Traceback" not in result.output


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("threshold: 5", "threshold: [5"))
    with pytest.raises(PolicyError, match=r"line \d+: not valid YAML"):
        load_policy(path)


BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
name: bomb
proxy_suite: proxy.yaml
rules: *i
"""


def test_a_policy_of_nested_aliases_is_refused_before_it_expands(tmp_path: Path) -> None:
    """A 1 KB 'billion laughs' (9^9 values) is refused with little memory: the aliases are
    counted on the parsed nodes, before anything is built from them."""
    import tracemalloc

    path = write(tmp_path, BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(PolicyError) as caught:
            load_policy(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "aliases expand to more than 100,000 values" in str(caught.value)
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_yaml_anchors_in_moderation_still_work(tmp_path: Path) -> None:
    text = HEAD + (
        "  - {id: r1, type: delta, benchmarks: [alpha], threshold: 5,\n"
        "     actions: &deep {deep_suites: [deep.yaml]}}\n"
        "  - {id: r2, type: delta, benchmarks: [beta], threshold: 5, actions: *deep}\n"
    )
    policy = load_policy(write(tmp_path, text)).policy
    assert [str(r.actions.deep_suites[0]) for r in policy.rules] == ["deep.yaml", "deep.yaml"]
