"""Policy files: the shipped ones load; bad ones name the file, line, field and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.errors import PolicyError
from tripwire.policy.schema import load_policy

ROOT = Path(__file__).resolve().parents[2]

SUITES = {
    "proxy.yaml": "name: p\nkind: proxy\ntasks:\n  - task: alpha\n  - task: beta\n",
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


def write(tmp_path: Path, policy: str) -> Path:
    for name, text in SUITES.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return path


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml"])
def test_shipped_policies_load(name: str) -> None:
    loaded = load_policy(ROOT / "triggers" / name)
    assert loaded.policy.rules
    assert len(loaded.content_hash) == 64


def test_a_valid_policy_loads_with_its_suites(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, GOOD))
    assert loaded.proxy_suite.name == "p"
    assert [s.name for s in loaded.initial_suites()] == ["d"]
    assert loaded.policy.rules[0].mode == "cannot_rule_out"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("mode: point", "mode: maybe"), ["line 8", "rules.0.mode", "'point'", "'maybe'"]),
        (("threshold: 5", "threshold: -1"), ["line 7", "rules.0.threshold", "greater than 0"]),
        (("type: delta", "type: deltaa"), ["rules.0", "'delta'", "deltaa"]),
        (("benchmarks: [alpha]", "benchmarks: [alfa]"), ["rules.0.benchmarks.0", "alpha, beta"]),
        (("proxy_suite: proxy.yaml", "proxy_suite: nope.yaml"), ["proxy_suite", "not found"]),
        (("deep_suites: [deep.yaml]", "deep_suites: [proxy.yaml]"), ["expected deep"]),
        (("id: r1", "id: r1\n    colour: red"), ["rules.0.colour", "Extra inputs"]),
        (("name: test", "name: test\nname2: x"), ["name2"]),
        (("threshold: 5", "threshold: five"), ["rules.0.threshold", "'five'"]),
        (("rules:", "rulez:"), ["rules", "Field required"]),
    ],
)
def test_a_bad_policy_names_file_field_and_allowed_values(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    text = GOOD.replace("    threshold: 5\n", "    threshold: 5\n    mode: point\n")
    path = write(tmp_path, text.replace(*change))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("threshold: 5", "threshold: [5"))
    with pytest.raises(PolicyError, match=r"line \d+: not valid YAML"):
        load_policy(path)
