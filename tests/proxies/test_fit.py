"""``tripwire proxy fit`` and ``show`` on a real store, anchor files in suites, and anchored
scores read back into the engine (issue 10 item 3)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tripwire.cli import app
from tripwire.decisions.inputs import score_of
from tripwire.errors import SuiteError
from tripwire.policy.check import check_policy, power_table
from tripwire.policy.compare import measure_change, measure_score
from tripwire.policy.validity import policy_row
from tripwire.proxies.file import anchored, load_anchor_file
from tripwire.proxies.simulate import make_world
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.store.db import Database
from tripwire.store.models import Evaluation
from tripwire.store.repo import record_checkpoint, save_evaluation
from tripwire.suites import load_suite

N_ITEMS, N_CHECKPOINTS, N_ANCHORS = 300, 16, 20
FIT_OPTIONS = ["--folds", "4", "--floor", "0.25"]
SUITE = "name: full\nkind: proxy\ntasks:\n  - task: t\n"


def _result(values: np.ndarray, suite_hash: str, hashes: list[str]) -> SuiteResult:
    task = TaskResult(
        task="t",
        metric="acc",
        score=float(values.mean()),
        stderr=None,
        n_items=values.size,
        num_fewshot=0,
        items=ItemOutcomes(doc_hashes=hashes, values=[float(v) for v in values]),
    )
    return SuiteResult(
        suite_name="full",
        suite_hash=suite_hash,
        model_path="/m",
        tasks={"t": task},
        versions=Versions(lm_eval="x", transformers="y", torch="z", tripwire="w"),
        started_at=datetime(2026, 11, 30, tzinfo=UTC),
        duration_s=1.0,
    )


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Database]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", url)
    suite_path = tmp_path / "full.yaml"
    suite_path.write_text(SUITE)
    suite = load_suite(suite_path)
    rng = np.random.default_rng(3)
    world = make_world(rng, N_ITEMS, guessing=0.25)
    answers = world.answers(rng, rng.normal(0.0, 1.0, N_CHECKPOINTS))
    hashes = [f"{j:064x}" for j in range(N_ITEMS)]
    db = Database(url)
    with db.session() as session:
        for i, row in enumerate(answers):
            checkpoint, _ = record_checkpoint(
                session, content_hash=f"c{i}", path=f"/c{i}", run="r", step=i
            )
            save_evaluation(session, checkpoint, _result(row, suite.content_hash, hashes), "proxy")
    return suite_path, db


def test_fit_writes_an_anchor_file_that_show_prints(stored: tuple[Path, Database]) -> None:
    """proxy fit reads every checkpoint's stored full-item outcomes and writes the anchors, the
    fitted parameters, the held-out error and the provenance; proxy show prints them."""
    suite_path, _ = stored
    runner = CliRunner()
    fitted = runner.invoke(
        app,
        ["proxy", "fit", str(suite_path), "--anchors", str(N_ANCHORS), *FIT_OPTIONS],
    )
    assert fitted.exit_code == 0, fitted.output
    path = suite_path.parent / "anchors" / "t.json"
    found = load_anchor_file(path)
    assert len(found.anchors) == N_ANCHORS
    assert len(found.full.items) == N_ITEMS
    assert found.provenance.suite_hash == load_suite(suite_path).content_hash
    assert sorted(found.provenance.checkpoints) == sorted(f"c{i}" for i in range(N_CHECKPOINTS))
    assert abs(sum(a.weight for a in found.anchors) - 1.0) < 1e-9
    assert found.held_out.checkpoints == N_CHECKPOINTS
    assert found.floor == 0.25 and found.params.floor == 0.25
    shown = runner.invoke(app, ["proxy", "show", str(path), "--items"])
    assert shown.exit_code == 0, shown.output
    assert f"anchors: {N_ANCHORS} of {N_ITEMS} items" in shown.output
    assert "held out (4-fold over 16 checkpoints)" in shown.output
    planned = f"planned band at the fitted mean ability: se {100 * found.expected_se():.2f}"
    assert planned in shown.output


def test_too_few_checkpoints_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    suite_path = tmp_path / "full.yaml"
    suite_path.write_text(SUITE)
    result = CliRunner().invoke(app, ["proxy", "fit", str(suite_path)])
    assert result.exit_code == 2
    assert "evaluate checkpoints with it first" in result.output


def test_anchored_scores_are_stored_and_compared_through_their_band(
    stored: tuple[Path, Database],
) -> None:
    """A suite naming the anchor file hashes it; a result scored on the anchors carries the
    full-score estimate and band into the store, and the engine compares through the band."""
    suite_path, db = stored
    runner = CliRunner()
    assert runner.invoke(app, ["proxy", "fit", str(suite_path), "--anchors", "20"]).exit_code == 0
    proxy_path = suite_path.parent / "proxy.yaml"
    proxy_path.write_text(
        "name: tiny\nkind: proxy\ntasks:\n  - task: t\n    anchor: anchors/t.json\n"
    )
    proxy = load_suite(proxy_path)
    assert "anchors/t.json" in proxy.file_hashes
    anchor = load_anchor_file(suite_path.parent / "anchors" / "t.json")
    items = [a.item for a in anchor.anchors]
    scores = []
    with db.session() as session:
        for i, right in enumerate((0.3, 0.9)):
            values = np.asarray([1.0 if k < right * len(items) else 0.0 for k in range(len(items))])
            raw = _result(values, proxy.content_hash, items).tasks["t"]
            estimate = anchored(raw, anchor)
            assert estimate.estimator == "irt-anchor" and estimate.stderr is not None
            result = _result(values, proxy.content_hash, items)
            result.tasks["t"] = estimate
            checkpoint, _ = record_checkpoint(
                session, content_hash=f"new{i}", path=f"/new{i}", run="r2", step=i
            )
            evaluation: Evaluation = save_evaluation(session, checkpoint, result, "proxy")
            scores.append(score_of(evaluation.scores[0]))
    low, high = scores
    assert high.estimator == "irt-anchor" and high.shared_se == anchor.misfit_sd
    change = measure_change(high, low)
    assert not isinstance(change, str)
    assert "estimated scores" in change.est.method
    assert change.est.se > 0.0 and change.est.estimate == pytest.approx(high.score - low.score)
    level = measure_score(high)
    assert level is not None and level.se == pytest.approx(high.stderr)
    (suite_path.parent / "anchors" / "t.json").write_text(
        (suite_path.parent / "anchors" / "t.json")
        .read_text()
        .replace('"misfit_sd":', '"misfit_sd": ')
    )
    assert load_suite(proxy_path).content_hash != proxy.content_hash


def test_a_missing_anchor_file_names_the_command(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text("name: tiny\nkind: proxy\ntasks:\n  - task: t\n    anchor: anchors/t.json\n")
    with pytest.raises(SuiteError, match="tripwire proxy fit"):
        load_suite(path)


def test_policy_check_plans_anchored_tasks_with_the_anchor_files_band(
    stored: tuple[Path, Database],
) -> None:
    """policy check counts an anchored task's anchors, not the full benchmark's items, and
    plans its rules with the band the anchor file gives (a normal comparison of estimates, the
    shared misfit counted once); an underpowered rule's error says to fit more anchors."""
    suite_path, _ = stored
    runner = CliRunner()
    assert runner.invoke(app, ["proxy", "fit", str(suite_path), "--anchors", "20"]).exit_code == 0
    (suite_path.parent / "proxy.yaml").write_text(
        "name: tiny\nkind: proxy\ntasks:\n  - task: t\n    anchor: anchors/t.json\n"
    )
    policy = suite_path.parent / "policy.yaml"
    policy.write_text(
        "schema_version: 1\nname: p\nproxy_suite: proxy.yaml\nrules:\n"
        "  - {id: rise, type: delta, benchmarks: [t], threshold: 40, mode: point}\n"
        "  - {id: small, type: delta, benchmarks: [t], threshold: 5, mode: detected,\n"
        "     sequential: {method: none}}\n"
    )
    anchor = load_anchor_file(suite_path.parent / "anchors" / "t.json")
    band = 100 * np.sqrt(2 * anchor.expected_se() ** 2 - 2 * anchor.misfit_sd**2)
    assert band > 100 * np.sqrt(0.25 / N_ITEMS)  # wider than pairing every item would give

    checked = check_policy(policy)
    assert checked.counts["t"].items == 20
    rise, small = (row.parts[0] for row in checked.rules)
    assert rise.band == pytest.approx(band) and small.band == pytest.approx(band)
    assert rise.discordance is None
    assert rise.mde == pytest.approx(0.841621 * band, rel=1e-4)  # point: z(80%) se
    assert small.mde == pytest.approx((1.644854 + 0.841621) * band, rel=1e-4)
    assert len(checked.underpowered) == 1
    assert "rule 'small'" in checked.underpowered[0]
    assert "more anchors (tripwire proxy fit --anchors)" in checked.underpowered[0]
    console = Console(record=True, width=240)
    console.print(power_table(checked))
    assert "20 anchors" in console.export_text()
    with pytest.raises(ValueError, match="t scored on anchors: this simulation draws paired"):
        policy_row(checked.loaded)  # bench/validity.py's model does not apply to them
