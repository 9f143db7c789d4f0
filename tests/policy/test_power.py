"""Item counts and minimum detectable effects behind ``tripwire policy check``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.stats import multinomial
from typer.testing import CliRunner

from tripwire.cli import app
from tripwire.policy.power import Planning, policy_power
from tripwire.policy.schema import Policy
from tripwire.policy.sizes import ItemCount, count_items, suite_item_counts
from tripwire.policy.stats import PairedScore
from tripwire.suites import SuiteTask, load_suite

ROOT = Path(__file__).resolve().parents[2]
Z95, Z80 = 1.6448536269514722, 0.8416212335729143


@pytest.mark.parametrize(
    ("entry", "items", "approximate"),
    [
        ({"task": "mmlu", "subset": {"size": 20}}, 1140, False),  # 57 subjects of >= 100 items
        ({"task": "mmlu", "subset": {"size": 150}}, 8550, True),  # small subjects run out
        ({"task": "mmlu"}, 14042, False),
        ({"task": "gpqa_diamond_zeroshot"}, 198, False),
        ({"task": "gpqa_diamond_cot_zeroshot", "limit": 500}, 198, False),
        ({"task": "arc_challenge", "subset": {"size": 500}}, 500, False),
        ({"task": "wmdp_chem"}, 408, False),
        ({"task": "my_custom_task", "limit": 300}, 300, True),
        ({"task": "my_custom_task"}, None, False),
    ],
)
def test_item_counts_of_suite_tasks(
    entry: dict[str, object], items: int | None, approximate: bool
) -> None:
    count = count_items(SuiteTask.model_validate(entry), [])
    assert (count.items, count.approximate) == (items, approximate)


def test_custom_tasks_are_counted_from_their_local_data() -> None:
    counts = suite_item_counts(load_suite(ROOT / "evals" / "demo-proxy.yaml"))
    assert {t: c.items for t, c in counts.items()} == {
        "demo_addition": 200,
        "demo_comparison": 200,
        "demo_successor": 200,
    }


def _power(rule: dict[str, object], counts: dict[str, int | None]) -> list[object]:
    policy = Policy.model_validate({"name": "p", "proxy_suite": "x.yaml", "rules": [rule]})
    items = {t: ItemCount(n, "test") for t, n in counts.items()}
    return policy_power(policy, items, Planning())  # type: ignore[return-value]


def _exact_power(n: int, d: float, change: float, t: float, alpha: float) -> float:
    """P(the engine's paired test at ``alpha`` fires) on n items, with the discordant shares
    of the planning model, summed exactly over every (b, c)."""
    p12, p21 = (d + change) / 2, (d - change) / 2
    total = 0.0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            prob = multinomial.pmf([b, c, n - b - c], n, [p12, p21, 1 - p12 - p21])
            if prob > 1e-12 and PairedScore(b, c, n).p_greater(t) <= alpha:
                total += prob
    return total


def test_the_mde_is_the_rise_above_the_threshold_the_engine_detects_80_percent_of_the_time() -> (
    None
):
    rule = {"id": "r", "type": "delta", "benchmarks": ["a"], "threshold": 5, "mode": "detected"}
    (row,) = _power({**rule, "sequential": "none"}, {"a": 300})
    (part,) = row.parts  # type: ignore[attr-defined]
    assert part.decides_at == pytest.approx(5 + part.mde)
    # the normal approximation's figure, for scale: (z95 + z80) * sqrt(0.25 / 300) = 7.2
    assert part.mde == pytest.approx((Z95 + Z80) * 100 * math.sqrt(0.25 / 300), rel=0.1)
    power = _exact_power(300, 0.25, (5 + part.mde) / 100, 0.05, 0.05)
    assert power == pytest.approx(0.80, abs=0.02)


def test_corrections_and_planned_looks_set_the_level_of_one_comparison() -> None:
    rule = {"id": "r", "type": "delta", "benchmarks": ["a", "b"], "threshold": 5}
    (plain,) = _power({**rule, "mode": "detected", "sequential": "none"}, {"a": 2000, "b": 198})
    assert plain.alpha == pytest.approx(0.025)  # type: ignore[attr-defined]  # Holm: alpha / 2
    a, b = plain.parts  # type: ignore[attr-defined]
    assert (a.status, b.status) == ("ok", "underpowered")
    assert plain.status == "underpowered"  # type: ignore[attr-defined]
    (spent,) = _power(rule, {"a": 2000, "b": 198})  # the default: alpha spent over 50 looks
    assert spent.alpha == pytest.approx(0.05 / 51 / 2)  # type: ignore[attr-defined]
    assert spent.parts[0].mde > a.mde  # type: ignore[attr-defined]
    (short,) = _power({**rule, "sequential": {"looks": 10}}, {"a": 2000, "b": 198})
    assert short.alpha == pytest.approx(0.05 / 11 / 2)  # type: ignore[attr-defined]


def test_cannot_rule_out_reports_where_it_stays_quiet_and_its_no_change_fire_rate() -> None:
    rule = {"id": "r", "type": "delta", "benchmarks": ["a"], "threshold": 5}
    (row,) = _power({**rule, "mode": "cannot_rule_out"}, {"a": 1000})
    (part,) = row.parts  # type: ignore[attr-defined]
    assert part.decides_at == pytest.approx(5 - part.mde)
    se = 100 * math.sqrt(0.25 / 1000)
    assert part.no_change_rate == pytest.approx(0.5 * math.erfc((5 / se - Z95) / math.sqrt(2)))
    (point,) = _power({**rule, "mode": "point"}, {"a": 1000})
    assert point.parts[0].no_change_rate == pytest.approx(  # type: ignore[attr-defined]
        0.5 * math.erfc(5 / se / math.sqrt(2))
    )
    assert point.run_no_change_bound == pytest.approx(  # type: ignore[attr-defined]
        min(1.0, 50 * point.parts[0].no_change_rate)  # type: ignore[attr-defined]
    )


def test_point_mode_and_unknown_sizes_are_not_errors() -> None:
    rule = {"id": "r", "type": "delta", "benchmarks": ["a", "b"], "threshold": 5, "mode": "point"}
    (row,) = _power(rule, {"a": 198, "b": None})
    # point mode fires at threshold + z(80%) se; its no-change fire rate is reported beside
    assert [p.status for p in row.parts] == ["ok", "unknown"]  # type: ignore[attr-defined]
    assert row.parts[0].no_change_rate > 0.05  # type: ignore[attr-defined]
    assert row.status == "unknown"  # type: ignore[attr-defined]


def test_a_level_must_tell_its_alert_level_from_its_critical_level() -> None:
    rule = {
        "id": "l",
        "type": "level",
        "benchmarks": ["a"],
        "level": 50,
        "critical_level": 55,
        "sequential": "none",
    }
    (row,) = _power(rule, {"a": 500})
    part = row.parts[0]  # type: ignore[attr-defined]
    assert part.mde == pytest.approx((Z95 + Z80) * 100 * math.sqrt(0.25 / 500))  # 5.6
    assert part.margin == 5
    assert part.status == "underpowered"


DIVERGENCE = {
    "id": "d",
    "type": "divergence",
    "general": ["a", "b"],
    "risk": ["c"],
    "general_rise": 5,
    "risk_max_rise": 1,
    "sequential": "none",
}


def test_a_divergence_pools_each_set() -> None:
    (row,) = _power(DIVERGENCE, {"a": 1000, "b": 1000, "c": 1000})
    general, risk = row.parts  # type: ignore[attr-defined]
    assert general.mde == pytest.approx((Z95 + Z80) * 100 * math.sqrt(0.25 / 1000) / math.sqrt(2))
    assert (general.margin, risk.margin) == (5, 4)


def test_a_divergence_pools_anchored_estimates_with_paired_items() -> None:
    """An anchored task in a divergence set adds its estimates' change variance, not d / n."""
    policy = Policy.model_validate({"name": "p", "proxy_suite": "x.yaml", "rules": [DIVERGENCE]})
    anchored = ItemCount(100, "anchor file", estimate_se=0.03, shared_se=0.01)
    counts = {"a": anchored, "b": ItemCount(1000, "test"), "c": ItemCount(1000, "test")}
    (row,) = policy_power(policy, counts, Planning())
    general, _ = row.parts
    change_var = 2 * 0.03**2 - 2 * 0.01**2
    se = 100 * math.sqrt(change_var + 0.25 / 1000) / 2
    assert general.mde == pytest.approx((Z95 + Z80) * se)
    assert general.items == 1100


UNDERPOWERED = """\
name: thin
proxy_suite: proxy.yaml
rules:
  - id: gpqa-plus-5
    type: delta
    benchmarks: [gpqa_diamond_zeroshot]
    threshold: 5
    mode: detected
"""


def test_policy_check_refuses_a_rule_that_cannot_decide_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text(
        "name: p\nkind: proxy\ntasks:\n  - task: gpqa_diamond_zeroshot\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(UNDERPOWERED)
    runner = CliRunner()
    refused = runner.invoke(app, ["policy", "check", str(policy)])
    assert refused.exit_code == 2
    for fragment in (str(policy), "line 7", "rules.0.threshold", "cannot decide", "198 items"):
        assert fragment in refused.output, refused.output
    allowed = runner.invoke(app, ["policy", "check", str(policy), "--allow-underpowered"])
    assert allowed.exit_code == 0
    assert "warning" in allowed.output and "underpowered" in allowed.output


def test_policy_check_plans_with_the_discordance_stored_decisions_observed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.decided import decide_live, write_policy
    from tripwire.store.db import Database

    url = f"sqlite:///{tmp_path / 'store.db'}"
    db = Database(url)
    decide_live(db, write_policy(tmp_path))
    db.dispose()
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", url)
    runner = CliRunner()
    result = runner.invoke(app, ["policy", "check", str(ROOT / "triggers" / "demo.yaml")])
    assert "from stored decisions" in result.output, result.output
    stated = runner.invoke(
        app, ["policy", "check", str(ROOT / "triggers" / "demo.yaml"), "--discordance", "0.1"]
    )
    assert "discordance 0.10 from --discordance" in stated.output
    unused = runner.invoke(
        app, ["policy", "check", str(ROOT / "triggers" / "demo.yaml"), "--no-stored"]
    )
    assert "discordance 0.25 from the default" in unused.output


def test_policy_check_validates_suite_task_names_against_lm_evals_index(tmp_path: Path) -> None:
    """Quoted-key names (wmdp_bio, mmlu_<subject>) pass; an unknown name is refused with the
    suite file, the field and close matches."""
    (tmp_path / "proxy.yaml").write_text(
        "name: p\nkind: proxy\ntasks:\n  - task: gpqa_diamond_zeroshot\n"
        "  - task: wmdp_bio\n  - task: mmlu_anatomy\n  - task: wmdp_bioo\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(UNDERPOWERED)
    result = CliRunner().invoke(app, ["policy", "check", str(policy), "--allow-underpowered"])
    assert result.exit_code == 2
    assert "tasks.3.task: 'wmdp_bioo' is neither a built-in lm-eval task" in result.output
    assert "did you mean wmdp_bio" in result.output
    assert "wmdp_bio'" not in result.output.replace("'wmdp_bioo'", "")
