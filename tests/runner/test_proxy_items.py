"""Through real lm-eval on a tiny model: stratified subsets and anchor files choose the items
by their documents, and an anchored task reports the full-score estimate (issue 10 item 3)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tripwire.proxies.file import (
    Anchor,
    AnchorFile,
    HeldOut,
    ItemTable,
    Provenance,
    write_anchor_file,
)
from tripwire.runner import Runner
from tripwire.suites import load_suite


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxy-items")
    write_tasks(root / "evals" / "tiny", names=("add",))
    make_checkpoint(root / "ckpt", seed=1)
    return root


def test_stratified_and_anchored_items_through_lm_eval(workspace: Path) -> None:
    runner = Runner()
    full_path = write_suite(
        workspace / "evals" / "full.yaml",
        "name: full\nkind: proxy\ninclude: [tiny]\ntasks:\n  - task: tiny_add\n",
    )
    full = runner.evaluate(workspace / "ckpt", load_suite(full_path)).tasks["tiny_add"]
    assert full.n_items == 60

    strat_path = write_suite(
        workspace / "evals" / "strat.yaml",
        "name: strat\nkind: proxy\ninclude: [tiny]\ntasks:\n  - task: tiny_add\n"
        "    subset: {size: 12, seed: 1, stratify_by: answer}\n",
    )
    strat = runner.evaluate(workspace / "ckpt", load_suite(strat_path)).tasks["tiny_add"]
    again = runner.evaluate(workspace / "ckpt", load_suite(strat_path)).tasks["tiny_add"]
    assert strat.n_items == 12 and strat.items.doc_hashes == again.items.doc_hashes
    assert set(strat.items.doc_hashes) < set(full.items.doc_hashes)

    picked = full.items.doc_hashes[::6]  # 10 anchors
    anchor = AnchorFile(
        task="tiny_add",
        metric="acc",
        anchors=[Anchor(item=h, weight=0.1) for h in picked],
        full=ItemTable(
            items=full.items.doc_hashes,
            a=[1.0] * 60,
            b=[(j % 7 - 3) / 2 for j in range(60)],
        ),
        misfit_sd=0.01,
        held_out=HeldOut(
            folds=2, checkpoints=8, mae_points=1.0, random_mae_points=2.0, coverage_95=0.95
        ),
        provenance=Provenance(
            suite="full",
            suite_hash="h",
            checkpoints=["c"],
            created_at=datetime(2026, 11, 30, tzinfo=UTC),
            tripwire="t",
        ),
    )
    write_anchor_file(anchor, workspace / "evals" / "anchors" / "tiny_add.json")
    anchored_path = write_suite(
        workspace / "evals" / "anchored.yaml",
        "name: anchored\nkind: proxy\ninclude: [tiny]\ntasks:\n  - task: tiny_add\n"
        "    anchor: anchors/tiny_add.json\n",
    )
    found = runner.evaluate(workspace / "ckpt", load_suite(anchored_path)).tasks["tiny_add"]
    assert sorted(found.items.doc_hashes) == sorted(picked)
    outcomes = dict(zip(full.items.doc_hashes, full.items.values, strict=True))
    assert found.items.values == [outcomes[h] for h in found.items.doc_hashes]
    expected = anchor.estimate(outcomes)
    assert found.estimator == "irt-anchor" and found.shared_se == 0.01
    assert found.score == pytest.approx(float(expected.score[0]))
    assert found.stderr == pytest.approx(float(expected.se[0]))
    assert Counter(found.items.doc_hashes).most_common(1)[0][1] == 1
