"""Read lm-eval's result dictionary into typed task results, item by item.

Pure functions over the dictionary ``simple_evaluate`` returns (and the task objects it ran);
they never import lm-eval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tripwire.errors import EvaluationError
from tripwire.results import ItemOutcomes, TaskResult
from tripwire.suites import SuiteTask


def docs_of(objects: list[Any], leaf: str) -> list[Any]:
    for obj in objects:
        found = _find_task(obj, leaf)
        if found is not None:
            return list(found.eval_docs)
    return []


def _find_task(obj: Any, leaf: str) -> Any:
    if getattr(obj, "task_name", None) == leaf:
        return obj
    get_all = getattr(obj, "get_all_tasks", None)
    if get_all is not None:
        for task in get_all():
            if task.task_name == leaf:
                return task
    return None


def select_items(
    docs: list[Any],
    entry: SuiteTask,
    *,
    anchor_items: set[str] | None = None,
    key_of: Callable[[Any], str] | None = None,
) -> list[int] | None:
    """Item indices for a limit, a seeded (optionally stratified) subset or an anchor file's
    items (``anchor_items``, matched through ``key_of``: the key the item is stored under);
    None for all items. Depends on the documents and the seed only, so every checkpoint is
    asked the same items and comparisons stay paired."""
    n_docs = len(docs)
    if entry.limit is not None:
        return list(range(min(entry.limit, n_docs)))
    if anchor_items is not None and key_of is not None:
        return [i for i, doc in enumerate(docs) if key_of(doc) in anchor_items]
    if entry.subset is not None:
        size = min(entry.subset.size, n_docs)
        if entry.subset.stratify_by is not None:
            labels = [_field(doc, entry.subset.stratify_by, entry.task) for doc in docs]
            return stratified(labels, size, entry.subset.seed)
        rng = np.random.default_rng(entry.subset.seed)
        return sorted(int(i) for i in rng.choice(n_docs, size=size, replace=False))
    return None


def _field(doc: Any, field: str, task: str) -> str:
    if not isinstance(doc, dict) or field not in doc:
        shown = ", ".join(sorted(doc)) if isinstance(doc, dict) else type(doc).__name__
        raise EvaluationError(
            f"task {task!r}: subset.stratify_by names {field!r}, but its documents have {shown}"
        )
    return str(doc[field])


def stratified(labels: list[str], size: int, seed: int) -> list[int]:
    """``size`` indices drawn from each label's items in proportion to its share (largest
    remainders; at least one per label while ``size`` allows), seeded per label by its name,
    so adding a label elsewhere does not redraw the others."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    n = len(labels)
    names = sorted(groups)
    exact = {g: size * len(groups[g]) / n for g in names}
    take = {g: min(len(groups[g]), int(exact[g])) for g in names}
    if size >= len(names):
        for g in names:
            take[g] = max(take[g], 1)
    left = size - sum(take.values())
    for g in sorted(names, key=lambda g: (-(exact[g] - int(exact[g])), g)):
        if left <= 0:
            break
        if take[g] < len(groups[g]):
            take[g] += 1
            left -= 1
    while left < 0:  # the minimum of one each overshot: trim the largest strata
        g = max((g for g in names if take[g] > 1), key=lambda g: (take[g] - exact[g], g))
        take[g] -= 1
        left += 1
    chosen: list[int] = []
    for g in names:
        label_seed = int.from_bytes(hashlib.sha256(f"{seed}:{g}".encode()).digest()[:8], "big")
        rng = np.random.default_rng(label_seed)
        members = groups[g]
        chosen += [members[int(i)] for i in rng.choice(len(members), take[g], replace=False)]
    return sorted(chosen)


def _pick_metric(result: dict[str, Any], entry: SuiteTask, leaves: list[str]) -> tuple[str, bool]:
    hib: dict[str, dict[str, bool]] = result.get("higher_is_better", {})
    first_leaf = hib.get(leaves[0], {}) if leaves else {}
    if entry.metric is not None:
        if first_leaf and entry.metric not in first_leaf:
            raise EvaluationError(
                f"task {entry.task!r} has no metric {entry.metric!r}; it reports "
                f"{', '.join(first_leaf)}"
            )
        return entry.metric, bool(first_leaf.get(entry.metric, True))
    if not first_leaf:
        raise EvaluationError(f"lm-eval reported no metrics for task {entry.task!r}")
    metric = next(iter(first_leaf))
    return metric, bool(first_leaf[metric])


def _pick_filter(scores: dict[str, Any], metric: str, entry: SuiteTask) -> str:
    filters = [
        k.split(",", 1)[1]
        for k in scores
        if k.startswith(f"{metric},") and not k.startswith(f"{metric}_stderr")
    ]
    if entry.filter is not None:
        if entry.filter not in filters:
            raise EvaluationError(
                f"task {entry.task!r} has no filter {entry.filter!r} for {metric}; "
                f"it has {', '.join(filters)}"
            )
        return entry.filter
    if not filters:
        raise EvaluationError(f"lm-eval reported no {metric!r} score for {entry.task!r}")
    return filters[0]


def task_result(
    result: dict[str, Any], entry: SuiteTask, leaves: list[str], num_fewshot: int | None
) -> TaskResult:
    metric, higher_is_better = _pick_metric(result, entry, leaves)
    doc_hashes: list[str] = []
    values: list[float] = []
    texts: list[tuple[str, str]] = []
    answers: list[str] = []
    prefix = entry.task not in leaves or len(leaves) > 1
    scores = result["results"].get(entry.task)
    if scores is None and len(leaves) == 1:
        scores = result["results"].get(leaves[0])
    if scores is not None:
        filter_key = _pick_filter(scores, metric, entry)
    else:  # a tag: lm-eval reports no aggregate
        filter_key = entry.filter or "none"
    for leaf in leaves:
        for sample in result["samples"].get(leaf, []):
            if metric not in sample:
                continue
            if sample.get("filter", filter_key) != filter_key:
                continue  # lm-eval logs each item once per filter (GSM8K: strict and flexible)
            key = f"{leaf}:{sample['doc_hash']}" if prefix else sample["doc_hash"]
            doc_hashes.append(key)
            values.append(float(sample[metric]))
            prompt, target, answer = item_text(sample, metric)
            texts.append((prompt, target))
            answers.append(answer)
    if scores is not None:
        score = float(scores[f"{metric},{filter_key}"])
        stderr_raw = scores.get(f"{metric}_stderr,{filter_key}")
        # lm-eval's standard error, or none: it reports "N/A" for bootstrap_iters 0 and for
        # metrics without one, and Tripwire does not make one up (docs/suites.md).
        stderr = float(stderr_raw) if isinstance(stderr_raw, int | float) else None
    else:  # a tag: the mean over all its items
        arr = np.asarray(values, dtype=float)
        score = float(arr.mean()) if arr.size else float("nan")
        stderr = None  # lm-eval gives none for a tag's items taken together
    n_shot = result.get("n-shot", {}).get(leaves[0], num_fewshot or 0) if leaves else 0
    version = result.get("versions", {}).get(entry.task)
    return TaskResult(
        task=entry.task,
        metric=metric,
        filter=filter_key,
        score=score,
        stderr=stderr,
        n_items=len(values),
        num_fewshot=int(n_shot or 0),
        higher_is_better=higher_is_better,
        task_version=None if version is None else str(version),
        alert_level=entry.alert_level,
        critical_level=entry.critical_level,
        items=ItemOutcomes(doc_hashes=doc_hashes, values=values, texts=texts, answers=answers),
    )


PROMPT_CHARS = 1500
"""The end of a prompt that is kept (few-shot examples come first; the question last)."""
ANSWER_CHARS = 300


def item_text(sample: dict[str, Any], metric: str) -> tuple[str, str, str]:
    """(prompt, target, answer) of one logged lm-eval sample, for reviewers: the context the
    model saw, the right answer, and the choice it ranked first (by the metric's normalisation)
    or its filtered generation. Best effort: an unexpected layout gives empty strings."""
    try:
        arguments = list(sample.get("arguments") or [])
        first = arguments[0] if arguments else ("",)
        prompt = str(first[0])[-PROMPT_CHARS:]
        target = sample.get("target")
        responses = sample.get("filtered_resps")
        choices = [a[1] for a in arguments if isinstance(a, tuple | list) and len(a) > 1]
        scored = (
            isinstance(responses, list)
            and len(responses) == len(arguments) > 1
            and all(isinstance(r, tuple | list) and r for r in responses)
            and all(isinstance(c, str) for c in choices)
        )
        if scored:
            lls = [float(r[0]) for r in responses]  # type: ignore[union-attr]
            if metric.endswith("_norm"):
                lls = [ll / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]
            answer = choices[max(range(len(lls)), key=lls.__getitem__)]
            if isinstance(target, int) and 0 <= target < len(choices):
                target = choices[target]
        else:
            answer = responses[0] if isinstance(responses, list) and responses else responses
        return prompt, str(target)[:ANSWER_CHARS], str(answer)[:ANSWER_CHARS]
    except (IndexError, TypeError, ValueError):
        return "", "", ""
