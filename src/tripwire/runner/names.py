"""Which names a suite asks for, whether lm-eval knows them, and whether their data is here.

Pure functions over the suite, lm-eval's built-in task index and the data store; they never
import lm-eval, so ``tripwire policy check`` validates suites without it.
"""

from __future__ import annotations

from typing import Any

from tripwire.benchmarks import BENCHMARKS, DataStore
from tripwire.errors import MissingDataError, SuiteError
from tripwire.runner.builtin import missing_benchmarks
from tripwire.runner.task_index import BuiltinTaskIndex, build_index
from tripwire.suites import LoadedSuite


def custom_index(suite: LoadedSuite) -> dict[str, dict[str, Any]]:
    """The names the suite's include folders define, indexed by lm-eval's rules."""
    index: dict[str, dict[str, Any]] = {}
    for folder in suite.include_dirs:
        index.update(build_index(folder))
    return index


def lm_eval_names(suite: LoadedSuite) -> list[tuple[str, str]]:
    """The lm-eval names a suite runs, each with its field: every task and every profile's
    variant. A command or Inspect suite runs none (its tasks name the scores it reports)."""
    if suite.suite.command is not None or suite.suite.inspect is not None:
        return []
    found: list[tuple[str, str]] = []
    for i, entry in enumerate(suite.suite.tasks):
        found.append((f"tasks.{i}.task", entry.task))
        for j, profile in enumerate(entry.profiles or []):
            if profile.variant is not None:
                found.append((f"tasks.{i}.profiles.{j}.variant", profile.variant))
    return found


def builtin_names(suite: LoadedSuite) -> list[str]:
    """The built-in names a suite runs: its own task names (and profile variants) that the
    include folders do not define, and the built-in members of custom groups (a group over
    MMLU subjects)."""
    custom = custom_index(suite)
    stack = [name for _, name in reversed(lm_eval_names(suite))]
    seen: set[str] = set()
    found: list[str] = []
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in custom:
            stack.extend(reversed(custom[name]["members"]))
        else:
            found.append(name)
    return found


def check_names(suite: LoadedSuite, index: BuiltinTaskIndex) -> None:
    """Every task name is lm-eval's or the include folders', or a ``SuiteError`` names each
    one that is not (the suite field, close matches)."""
    custom = custom_index(suite)
    problems = []
    for field, name in lm_eval_names(suite):
        if name in custom or index.knows(name):
            continue
        hint = index.close_matches(name)
        did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
        problems.append(
            f"{field}: {name!r} is neither a built-in lm-eval task nor "
            f"defined under include {[str(p) for p in suite.suite.include]}{did_you_mean}"
        )
    if problems:
        raise SuiteError(suite.path, problems)


def check_data(suite: LoadedSuite, index: BuiltinTaskIndex, store: DataStore) -> None:
    """Raise ``MissingDataError`` naming every importable benchmark the suite's built-in tasks
    read and ``store`` lacks, with the command that imports it."""
    missing = missing_benchmarks(builtin_names(suite), index, store)
    if missing:
        commands = [
            f"tripwire data import {name} PATH   # {BENCHMARKS[name].layouts}" for name in missing
        ]
        raise MissingDataError(suite.path, missing, commands)
