"""Reports render to the right files, say the verdict plainly and never trust their inputs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from tripwire.reports import (
    ActionsRow,
    BaselineRef,
    CheckpointInfo,
    CheckpointReport,
    ComparisonRow,
    DecisionRow,
    DeepResult,
    JobRow,
    PolicyRef,
    RuleBand,
    RunReport,
    ScoreRow,
    SuiteRef,
    TrajectoryPoint,
    checkpoint_href,
    panels,
    write_checkpoint_report,
    write_run_report,
    write_site_index,
)
from tripwire.reports.model import CheckpointState, Verdict

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TASKS = ["mmlu", "gpqa_diamond", "arc_challenge"]
POLICY = PolicyRef(name="frontier-default", hash="sha256:" + "ab" * 32)
HOSTILE = "<script>alert('x')</script>"

# A run of 4 checkpoints; the third (step 3000) fires rule "mmlu-plus-5".
SCORES = {
    1000: {"mmlu": 0.41, "gpqa_diamond": 0.27, "arc_challenge": 0.38},
    2000: {"mmlu": 0.44, "gpqa_diamond": 0.28, "arc_challenge": 0.41},
    3000: {"mmlu": 0.52, "gpqa_diamond": 0.31, "arc_challenge": 0.47},
    4000: {"mmlu": 0.53, "gpqa_diamond": 0.30, "arc_challenge": 0.49},
}


def _hash(step: int) -> str:
    return f"{step:04d}" + "c0ffee" * 10


def _score_rows(step: int, baseline_step: int | None) -> list[ScoreRow]:
    rows = []
    for task, score in SCORES[step].items():
        base = SCORES[baseline_step][task] if baseline_step is not None else None
        rows.append(
            ScoreRow(
                task=task,
                metric="acc",
                score=score,
                stderr=0.014,
                n_items=1000 if task != "gpqa_diamond" else 198,
                num_fewshot=5,
                baseline_score=base,
                delta_points=None if base is None else (score - base) * 100,
            )
        )
    return rows


def _decision(
    verdict: Verdict = "not_fired", explanation: str = "mmlu rose 3.0 points, below 5.0."
) -> DecisionRow:
    fired = verdict == "fired"
    return DecisionRow(
        rule_id="mmlu-plus-5",
        rule_type="delta",
        severity="critical",
        verdict=verdict,
        threshold=5.0,
        statistic=8.0 if fired else 3.0,
        interval_low=6.2 if fired else 1.1,
        interval_high=9.8 if fired else 4.9,
        unit="points",
        p_value=0.0004 if fired else 0.8,
        explanation=explanation,
        comparisons=[
            ComparisonRow(
                task="mmlu",
                estimate=8.0 if fired else 3.0,
                low=6.2 if fired else 1.1,
                high=9.8 if fired else 4.9,
                unit="points",
                method="paired",
                paired_items=1000,
                crossed=fired,
                p_value=0.0004 if fired else 0.8,
            )
        ],
        actions=ActionsRow(deep_suites=["wmdp-bio"], notify=["safety-oncall"], review_hold=True),
        decided_at=T0,
        record_hash="d" * 64,
    )


def _checkpoint(
    step: int,
    *,
    run: str = "llama-7b-pretrain",
    baseline_step: int | None = 1000,
    decisions: list[DecisionRow] | None = None,
    state: CheckpointState = "decided",
    error: str | None = None,
) -> CheckpointReport:
    return CheckpointReport(
        generated_at=T0,
        checkpoint=CheckpointInfo(
            content_hash=_hash(step),
            run=run,
            step=step,
            stage="pretrain",
            path=f"/ckpt/{run}/step-{step}",
            locations=[f"/ckpt/{run}/step-{step}", f"s3://bucket/{run}/{step}"],
            training_flop=6 * 7e9 * step * 4e6,
            tokens_seen=step * 4_000_000,
            state=state,
            error=error,
        ),
        policy=POLICY,
        baseline=None
        if baseline_step is None
        else BaselineRef(content_hash=_hash(baseline_step), step=baseline_step),
        proxy_suite=SuiteRef(name="proxy-small", hash="e" * 64),
        proxy_scores=[] if state == "failed" else _score_rows(step, baseline_step),
        decisions=[_decision()] if decisions is None else decisions,
        review_hold=any(d.verdict == "fired" and d.actions.review_hold for d in decisions or []),
        deep=[],
        jobs=[
            JobRow(
                kind="proxy_eval",
                state="failed" if state == "failed" else "done",
                attempts=3 if state == "failed" else 1,
                error=error,
                created_at=T0,
                finished_at=T0 + timedelta(minutes=4),
            )
        ],
        versions={
            "lm_eval": "0.4.8",
            "transformers": "4.50.0",
            "torch": "2.6.0",
            "tripwire": "0.1",
        },
    )


def fired_checkpoint() -> CheckpointReport:
    report = _checkpoint(
        3000,
        decisions=[
            _decision("fired", "mmlu rose 8.0 points (one-sided 95% bounds 6.2 to 9.8), over 5.0.")
        ],
    )
    report.deep = [DeepResult(suite_name="wmdp-bio", suite_hash="f" * 64, state="running")]
    return report


def run_report(run: str = "llama-7b-pretrain", steps: list[int | None] | None = None) -> RunReport:
    steps = steps if steps is not None else [1000, 2000, 3000, 4000]
    points = []
    for i, step in enumerate(steps):
        key = step if step in SCORES else list(SCORES)[i % 4]
        fired = key == 3000
        points.append(
            TrajectoryPoint(
                step=step,
                content_hash=_hash(key),
                state="decided",
                scores=SCORES[key],
                stderrs={t: 0.014 for t in TASKS},
                fired=fired,
                fired_rules=["mmlu-plus-5"] if fired else [],
                fired_severity="critical" if fired else None,
                deep_evaluated=fired or i == 0,
                baseline_evaluation=i == 0,
                held=fired,
                tokens_seen=None if step is None else step * 4_000_000,
                training_flop=None if step is None else 6 * 7e9 * step * 4e6,
                compute_rule_fired=i in (0, 2),
                baseline_step=None if i == 0 else steps[0],
                baseline_scores={} if i == 0 else SCORES[next(iter(SCORES))],
                report_href=checkpoint_href(step, _hash(key)),
            )
        )
    bands = [
        RuleBand(rule_id="mmlu-plus-5", task="mmlu", kind="delta", severity="alert", threshold=5),
        RuleBand(
            rule_id="arc-level",
            task="arc_challenge",
            kind="level",
            severity="critical",
            level=60,
            critical_level=75,
        ),
    ]
    return RunReport(
        generated_at=T0, run=run, policies=[POLICY], points=points, tasks=TASKS, bands=bands
    )


def test_checkpoint_report_writes_json_html_and_markdown_in_the_run_directory(
    tmp_path: Path,
) -> None:
    paths = write_checkpoint_report(fired_checkpoint(), tmp_path)
    stem = f"step-3000-{_hash(3000)[:12]}"
    assert paths == {
        fmt: tmp_path.resolve() / "llama-7b-pretrain" / f"{stem}.{fmt}"
        for fmt in ("json", "html", "md")
    }
    assert all(p.is_file() for p in paths.values())
    assert sorted(p.name for p in (tmp_path / "llama-7b-pretrain").iterdir()) == sorted(
        p.name for p in paths.values()
    ), "no temporary files are left behind"


def test_checkpoint_json_round_trips_through_the_model(tmp_path: Path) -> None:
    report = fired_checkpoint()
    paths = write_checkpoint_report(report, tmp_path)
    assert CheckpointReport.model_validate_json(paths["json"].read_text()) == report
    assert json.loads(paths["json"].read_text())["schema_version"] == 2


def test_run_json_round_trips_even_with_nan_scores(tmp_path: Path) -> None:
    report = run_report()
    report.points[1].scores["gpqa_diamond"] = float("nan")
    write_run_report(report, tmp_path)
    text = (tmp_path / "llama-7b-pretrain" / "index.json").read_text()
    back = RunReport.model_validate_json(text)
    assert back.points[1].scores["gpqa_diamond"] != back.points[1].scores["gpqa_diamond"]  # NaN
    assert back.points[0] == report.points[0]


def test_fired_checkpoint_page_states_the_verdict_explanation_and_scores(tmp_path: Path) -> None:
    html = write_checkpoint_report(fired_checkpoint(), tmp_path)["html"].read_text()
    assert "FIRED: mmlu-plus-5 (critical)" in html
    assert 'class="banner critical"' in html
    assert "mmlu rose 8.0 points (one-sided 95% bounds 6.2 to 9.8), over 5.0." in html
    assert "52.0 ± 1.4" in html, "score and stderr in points"
    assert "+11.0" in html, "delta against the baseline in points"
    assert "[+6.20, +9.80]" in html, "the rule's interval"
    assert "REVIEW HOLD" in html
    assert "wmdp-bio" in html
    assert 'href="index.html"' in html, "links back to the run page"
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org", "")


def test_quiet_checkpoint_says_no_rule_fired_and_has_no_review_hold(tmp_path: Path) -> None:
    html = write_checkpoint_report(_checkpoint(2000), tmp_path)["html"].read_text()
    assert "No rule fired" in html
    assert "REVIEW HOLD" not in html


def test_markdown_summary_carries_the_verdict_and_a_scores_table(tmp_path: Path) -> None:
    md = write_checkpoint_report(fired_checkpoint(), tmp_path)["md"].read_text()
    assert "**FIRED: mmlu-plus-5 (critical)**" in md
    assert "| mmlu | 52.0 ± 1.4 | 41.0 | +11.0 |" in md
    assert "**REVIEW HOLD**" in md


def test_first_checkpoint_without_baseline_renders(tmp_path: Path) -> None:
    report = _checkpoint(1000, baseline_step=None, decisions=[])
    paths = write_checkpoint_report(report, tmp_path)
    html = paths["html"].read_text()
    assert "none: first checkpoint of the run" in html
    assert "No rule fired: the policy recorded no decision" in html
    assert "First checkpoint of the run" in html
    assert "none (first checkpoint of the run)" in paths["md"].read_text()


def test_failed_checkpoint_shows_the_reason(tmp_path: Path) -> None:
    reason = "safetensors header is truncated (expected 4096 bytes, read 17)"
    report = _checkpoint(4000, state="failed", error=reason, decisions=[])
    html = write_checkpoint_report(report, tmp_path)["html"].read_text()
    assert "FAILED: this checkpoint could not be evaluated" in html
    assert 'class="banner failed"' in html
    assert reason in html
    assert "No proxy scores recorded." in html


def test_hostile_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    run = f"evil {HOSTILE}"
    report = _checkpoint(3000, run=run, decisions=[_decision("fired", HOSTILE)])
    paths = write_checkpoint_report(report, tmp_path)
    trajectory = run_report(run=run)
    trajectory.tasks.append(HOSTILE)
    trajectory.points[0].scores[HOSTILE] = 0.5
    pages = [
        paths["html"].read_text(),
        write_run_report(trajectory, tmp_path).read_text(),
        write_site_index([trajectory], tmp_path).read_text(),
    ]
    for html in pages:
        assert "<script" not in html
        assert "&lt;script&gt;" in html
    assert "<script" not in paths["md"].read_text()


@pytest.mark.parametrize(
    "run", ["../../escape", "/etc/passwd", "..", ".", "", "a/../../b", "x\\..\\y", "index.html"]
)
def test_run_names_cannot_write_outside_the_output_directory(tmp_path: Path, run: str) -> None:
    out = tmp_path / "out"
    paths = write_checkpoint_report(_checkpoint(2000, run=run), out)
    page = write_run_report(run_report(run=run), out)
    for path in [*paths.values(), page]:
        assert path.resolve().parent.parent == out.resolve()
    assert {p.name for p in tmp_path.iterdir()} == {"out"}
    assert page.parent.name not in {"index.html", "index.json"}


def test_distinct_unsafe_run_names_get_distinct_directories(tmp_path: Path) -> None:
    names = ["team/run 1", "team_run_1", "team run 1"]
    dirs = {write_run_report(run_report(run=n), tmp_path).parent.name for n in names}
    assert len(dirs) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", d) for d in dirs)


def test_run_page_draws_one_panel_per_benchmark_on_each_axis(tmp_path: Path) -> None:
    html = write_run_report(run_report(), tmp_path).read_text()
    for axis in ("step", "tokens", "compute"):
        start = html.index(f'<div class="charts charts-{axis}">')
        charts = html[start : html.index("</div>", start)]
        assert charts.count('class="panel"') == len(TASKS)
        assert charts.count('class="series"') == len(TASKS)
        assert charts.count('class="fired critical"') == len(TASKS)  # one fire, every panel
        assert charts.count('class="first-baseline"') == len(TASKS)
        assert charts.count('class="held"') == len(TASKS)
        assert charts.count('class="compute-rule"') == 2 * len(TASKS)
    assert 'id="axis-compute"' in html and "training compute (FLOP)" in html
    mmlu = str(panels.panel(run_report(), "mmlu", "step"))
    assert mmlu.count('class="threshold-band"') == 3  # every checkpoint after the baseline
    assert mmlu.count('class="interval"') == 1
    arc = str(panels.panel(run_report(), "arc_challenge", "step"))
    assert arc.count('class="level"') == 2  # alert and critical lines
    for step in (1000, 3000):
        assert f'href="{checkpoint_href(step, _hash(step))}"' in html


def test_charts_survive_one_point_missing_steps_and_nan_scores(tmp_path: Path) -> None:
    single = run_report(steps=[1000])
    assert str(panels.panel(single, "mmlu", "step")).count('class="series"') == 1

    unknown = run_report(steps=[None, 2000, None])
    assert not panels.available(unknown, "step")
    html = write_run_report(unknown, tmp_path).read_text()
    assert "Not shown: training step, tokens seen" in html

    broken = run_report()
    broken.points[2].scores = {"mmlu": float("nan")}
    broken.points[2].stderrs = {"mmlu": float("nan")}
    svg = str(panels.panel(broken, "mmlu", "step"))
    assert svg.count('class="series"') == 1
    assert "nan" not in svg.lower()

    empty = RunReport(generated_at=T0, run="empty", policies=[POLICY])
    assert "No scores yet." in write_run_report(empty, tmp_path).read_text()


def test_site_index_lists_every_run_with_a_link(tmp_path: Path) -> None:
    path = write_site_index([run_report("b-run"), run_report("a run")], tmp_path)
    html = path.read_text()
    assert path == tmp_path.resolve() / "index.html"
    assert html.index("a run") < html.index("b-run")
    assert 'href="b-run/index.html"' in html


def test_report_href_must_be_a_relative_link() -> None:
    with pytest.raises(ValidationError, match="relative link"):
        TrajectoryPoint(content_hash="x", state="decided", report_href="javascript:alert(1)")
