"""Suite files: validation errors name the file and field; the content hash covers task files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.errors import SuiteError
from tripwire.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["proxy.yaml", "deep.yaml", "demo-proxy.yaml", "demo-deep.yaml"])
def test_shipped_suites_load(name: str) -> None:
    assert load_suite(ROOT / "evals" / name).suite.tasks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: s\nkind: proxi\ntasks: [{task: a}]\n",
            ["line 2", "kind", "'proxy' or 'deep'", "'proxi'"],
        ),
        ("name: s\nkind: proxy\ntasks: []\n", ["tasks", "at least 1"]),
        (
            "name: s\nkind: proxy\ntasks: [{task: a, limit: 0}]\n",
            ["tasks.0.limit", "greater than 0"],
        ),
        (
            "name: s\nkind: proxy\ntasks: [{task: a, limit: 5, subset: {size: 5}}]\n",
            ["either limit or subset"],
        ),
        ("name: s\nkind: proxy\ntasks: [{task: a}, {task: a}]\n", ["task listed twice: a"]),
        (
            "name: s\nkind: proxy\ninclude: [missing]\ntasks: [{task: a}]\n",
            ["include.0", "does not exist"],
        ),
        (
            "name: s\nkind: proxy\ntasks: [{task: a, fewshot: 3}]\n",
            ["tasks.0.fewshot", "Extra inputs"],
        ),
        ("- just\n- a list\n", ["expected a mapping"]),
    ],
)
def test_a_bad_suite_names_the_file_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    for fragment in expected:
        assert fragment in str(info.value), str(info.value)


def test_the_content_hash_covers_custom_task_files(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    task = tmp_path / "tasks" / "t.yaml"
    task.write_text("task: t\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\nkind: proxy\ninclude: [tasks]\ntasks: [{task: t}]\n")
    before = load_suite(suite).content_hash
    task.write_text("task: t\n# changed\n")
    assert load_suite(suite).content_hash != before
