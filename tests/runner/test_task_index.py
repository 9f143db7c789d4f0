"""Tripwire's task index knows exactly the names lm-eval knows, where lm-eval finds them."""

from __future__ import annotations

import time
from pathlib import Path

from tripwire.runner.task_index import build_index, lm_eval_tasks_root


def test_every_name_the_installed_lm_eval_knows_resolves_to_its_folder() -> None:
    """Same names (tasks, groups, tags, quoted YAML keys or not), same kind, same folder as
    lm-eval's own TaskManager index; built faster than lm-eval builds it."""
    from lm_eval.tasks import TaskManager

    root = lm_eval_tasks_root()
    t0 = time.perf_counter()
    ours = build_index(root)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = TaskManager().task_index
    theirs_s = time.perf_counter() - t0
    print(f"index: {len(ours)} names in {ours_s:.1f} s; lm-eval: {len(theirs)} in {theirs_s:.1f} s")

    assert set(ours) == set(theirs)
    for name, entry in theirs.items():
        kind = {"TASK": "task", "PY_TASK": "task", "GROUP": "group", "TAG": "tag"}[entry.kind.name]
        assert ours[name]["kind"] == kind, name
        if entry.yaml_path is not None:
            assert ours[name]["folder"] == Path(entry.yaml_path).relative_to(root).parts[0], name
        else:
            assert sorted(ours[name]["members"]) == sorted(entry.tags), name
    for quoted in ("wmdp_bio", "wmdp_chem", "wmdp_cyber", "mmlu_abstract_algebra"):
        assert ours[quoted]["folder"] in ("wmdp", "mmlu")
