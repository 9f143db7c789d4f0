"""How many items each task of a suite scores, for ``tripwire policy check``'s power figures.

From the suite's ``limit`` or ``subset.size`` (per leaf task), a table of the test sizes of
well-known lm-eval tasks, and the local data files of custom tasks. Reads files but never
imports lm-eval (indexing its tasks takes seconds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tripwire.suites import LoadedSuite, SuiteTask


@dataclass(frozen=True, slots=True)
class KnownTask:
    """The evaluation split of an lm-eval task or group."""

    items: int
    leaves: int = 1
    """Leaf tasks of a group (``limit`` and ``subset`` apply per leaf)."""
    smallest_leaf: int | None = None
    """Items of the group's smallest leaf, when known."""


_MMLU = KnownTask(14042, 57, 100)
KNOWN_TASKS: list[tuple[str, KnownTask]] = [
    (r"mmlu|mmlu_(flan|generative|continuation)\w*", _MMLU),
    (r"mmlu_pro\w*", KnownTask(12032, 14)),
    (r"gpqa_diamond\w*", KnownTask(198)),
    (r"gpqa_main\w*", KnownTask(448)),
    (r"gpqa_extended\w*", KnownTask(546)),
    (r"arc_challenge(_chat)?", KnownTask(1172)),
    (r"arc_easy", KnownTask(2376)),
    (r"hellaswag", KnownTask(10042)),
    (r"gsm8k(_cot\w*)?", KnownTask(1319)),
    (r"wmdp", KnownTask(3668, 3, 408)),
    (r"wmdp_bio", KnownTask(1273)),
    (r"wmdp_chem", KnownTask(408)),
    (r"wmdp_cyber", KnownTask(1987)),
    (r"truthfulqa_mc[12]", KnownTask(817)),
    (r"winogrande", KnownTask(1267)),
    (r"piqa", KnownTask(1838)),
    (r"boolq", KnownTask(3270)),
    (r"lambada_openai", KnownTask(5153)),
    (r"openbookqa", KnownTask(500)),
    (r"commonsense_qa", KnownTask(1221)),
    (r"sciq", KnownTask(1000)),
    (r"humaneval", KnownTask(164)),
    (r"mbpp", KnownTask(500)),
    (r"ifeval", KnownTask(541)),
    (r"bbh\w*", KnownTask(6511, 27, 146)),
    (r"minerva_math|hendrycks_math", KnownTask(5000, 7, 474)),
]
"""Evaluation-split sizes of common lm-eval tasks (full-name regular expressions)."""


@dataclass(frozen=True, slots=True)
class ItemCount:
    """Items a suite task scores."""

    items: int | None
    """None when unknown."""
    source: str
    """Where the figure comes from."""
    approximate: bool = False
    estimate_se: float | None = None
    """An anchored task's band (fraction) at the fitted checkpoints' mean ability: its score
    is the 2PL estimate of the full benchmark's, compared with this standard error."""
    shared_se: float | None = None
    """The part of ``estimate_se`` two estimates from the same anchors share (the misfit)."""

    def change_se(self) -> float | None:
        """Standard error (fraction) of a change between two estimates on these anchors, the
        shared misfit counted once (``tripwire.policy.compare.measure_change``)."""
        if self.estimate_se is None:
            return None
        return estimates_change_se(self.estimate_se, self.shared_se or 0.0)


def estimates_change_se(se: float, shared: float) -> float:
    """Standard error of a change between two estimates from the same anchors, each with
    standard error ``se`` of which ``shared`` is common to both and counted once."""
    return math.sqrt(max(2 * se**2 - 2 * shared**2, 0.0))


def known_task(name: str) -> KnownTask | None:
    for pattern, known in KNOWN_TASKS:
        if re.fullmatch(pattern, name):
            return known
    return None


def _per_leaf(entry: SuiteTask) -> int | None:
    if entry.limit is not None:
        return entry.limit
    if entry.subset is not None:
        return entry.subset.size
    return None


def count_items(entry: SuiteTask, include_dirs: list[Path]) -> ItemCount:
    """Items one suite task scores: known sizes, custom data files, limit and subset."""
    per_leaf = _per_leaf(entry)
    known = known_task(entry.task)
    custom = _custom_items(entry.task, include_dirs)
    if custom is not None:
        known, source = KnownTask(custom), "local data"
    elif known is not None:
        source = "known size"
    elif per_leaf is not None:
        return ItemCount(per_leaf, "limit/subset (task size unknown; at most this)", True)
    else:
        return ItemCount(None, "unknown: give the task a limit or subset, or add its size")
    if per_leaf is None:
        return ItemCount(known.items, source)
    if known.leaves == 1:
        return ItemCount(min(per_leaf, known.items), source)
    exact = known.smallest_leaf is not None and per_leaf <= known.smallest_leaf
    return ItemCount(min(per_leaf * known.leaves, known.items), source, not exact)


def anchored_count(entry: SuiteTask, suite_path: Path) -> ItemCount:
    """An anchored task: its anchors, and the band its anchor file gives a typical checkpoint."""
    from tripwire.proxies.file import load_anchor_file  # numpy and scipy, only when anchored

    assert entry.anchor is not None
    found = load_anchor_file(suite_path.parent / entry.anchor)
    return ItemCount(
        len(found.anchors),
        f"anchor file, 2PL estimate of {len(found.full.items)} items",
        estimate_se=found.expected_se(),
        shared_se=found.misfit_sd,
    )


def suite_item_counts(suite: LoadedSuite) -> dict[str, ItemCount]:
    """Items of every task of ``suite``, by task name."""
    counts = {}
    for t in suite.suite.tasks:
        if t.anchor is not None:
            count = anchored_count(t, suite.path)
        else:
            count = count_items(t, suite.include_dirs)
        for name in t.result_names():  # a task's profiles ask the same items
            counts[name] = count
    return counts


class _Lenient(yaml.SafeLoader):
    """Reads lm-eval task YAML, ignoring custom tags (``!function``)."""


_Lenient.add_multi_constructor("!", lambda loader, suffix, node: None)


def _custom_items(task: str, include_dirs: list[Path]) -> int | None:
    """Lines of the local JSON-lines file a custom task evaluates on, if it has one."""
    for folder in include_dirs:
        for file in sorted(folder.rglob("*.yaml")):
            try:
                config: Any = yaml.load(file.read_text(encoding="utf-8"), Loader=_Lenient)
            except (OSError, yaml.YAMLError):
                continue
            if not isinstance(config, dict) or config.get("task") != task:
                continue
            data_files = (config.get("dataset_kwargs") or {}).get("data_files")
            split = config.get("test_split") or config.get("validation_split") or "test"
            target = data_files.get(split) if isinstance(data_files, dict) else data_files
            if not isinstance(target, str):
                return None
            path = (file.parent / target).resolve()
            if not path.is_file():
                return None
            with path.open(encoding="utf-8") as lines:
                return sum(1 for line in lines if line.strip())
    return None
