"""Where a deep evaluation's score stands against the alert and critical levels its suite
declares: judged once, when the result is stored, and shown as recorded."""

from __future__ import annotations

import numpy as np

from tripwire.policy.compare import measure_score
from tripwire.policy.inputs import Score
from tripwire.results import LevelVerdict, SuiteResult, TaskResult

ALPHA = 0.05
"""One-sided error level of the bounds a level verdict reads."""


def judge(task: TaskResult) -> LevelVerdict | None:
    """``critical`` or ``alert`` when the score's one-sided 95% lower bound reached that level,
    ``below`` when its upper bound stayed under the alert level, ``unresolved`` otherwise; None
    without levels. Lower-is-better metrics reach a level by falling to it."""
    levels = [v for v in (task.alert_level, task.critical_level) if v is not None]
    if not levels:
        return None
    values = np.asarray(task.items.values, dtype=np.float64)
    est = measure_score(
        Score(
            task.task,
            task.score,
            task.stderr,
            task.n_items,
            task.higher_is_better,
            tuple(task.items.doc_hashes),
            values if values.size else None,
        )
    )
    if est is None:
        return "unresolved"
    sign = 1.0 if task.higher_is_better else -1.0
    low = est.lower(ALPHA) if sign > 0 else -est.upper(ALPHA)
    high = est.upper(ALPHA) if sign > 0 else -est.lower(ALPHA)
    for level, name in ((task.critical_level, "critical"), (task.alert_level, "alert")):
        if level is not None and low >= sign * level / 100:
            return name  # type: ignore[return-value]
    lowest = min(levels)
    return "below" if high < sign * lowest / 100 else "unresolved"


def with_level_verdicts(result: SuiteResult) -> SuiteResult:
    """``result`` with each task's level verdict set (tasks without levels unchanged)."""
    tasks = {
        name: task.model_copy(update={"level_verdict": judge(task)})
        for name, task in result.tasks.items()
    }
    return result.model_copy(update={"tasks": tasks})
