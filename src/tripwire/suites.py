"""Suites: named, versioned sets of lm-eval tasks (``evals/*.yaml``).

A suite names lm-eval tasks (built-in names such as ``mmlu`` or custom task YAML kept beside the
suite), the few-shot count, and which items to score: all, the first ``limit``, or a fixed
seeded ``subset``. Its identity is a content hash over the suite file, every custom task file
and data file it can read, and the content hash of each imported benchmark its built-in tasks
read (``tripwire data import``), so a result always says exactly what was asked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripwire.errors import SuiteError
from tripwire.validation import load_model

SUITE_SCHEMA_VERSION: Literal[1] = 1


class Subset(BaseModel):
    """A fixed, seeded random subset of a task's items (per leaf task of a group)."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(gt=0)
    """Number of items drawn (all items if the task has fewer)."""
    seed: int = 0


class SuiteTask(BaseModel):
    """One lm-eval task (or group) in a suite."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1)
    """lm-eval task or group name: built-in (``mmlu``) or defined under ``include``."""
    num_fewshot: int | None = Field(default=None, ge=0)
    """Few-shot examples; None keeps the task's own default."""
    limit: int | None = Field(default=None, gt=0)
    """Score only the first ``limit`` items of each leaf task."""
    subset: Subset | None = None
    metric: str | None = None
    """Primary metric; default the first metric the task lists (``acc`` for multiple choice)."""
    filter: str | None = None
    """lm-eval filter for the metric (``strict-match`` for GSM8K); default the first one."""
    alert_level: float | None = Field(default=None, gt=0, lt=100)
    """Deep suites: the task's alert level in points (score x 100); the report says whether the
    score reached it (the one-sided 95% bound established it), stayed below, or is unresolved."""
    critical_level: float | None = Field(default=None, gt=0, le=100)
    """Deep suites: the critical level the alert level warns of, in points."""

    @model_validator(mode="after")
    def _limit_or_subset(self) -> SuiteTask:
        if self.limit is not None and self.subset is not None:
            raise ValueError("give either limit or subset, not both")
        if (
            self.alert_level is not None
            and self.critical_level is not None
            and self.critical_level <= self.alert_level
        ):
            raise ValueError(
                f"critical_level {self.critical_level:g} must be above alert_level "
                f"{self.alert_level:g}"
            )
        return self


class Suite(BaseModel):
    """A suite file."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = SUITE_SCHEMA_VERSION
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Literal["proxy", "deep"]
    """Proxy suites run on every checkpoint; deep suites when a rule fires."""
    description: str = ""
    include: list[Path] = Field(default_factory=list)
    """Folders of custom lm-eval task YAML, relative to the suite file."""
    tasks: list[SuiteTask] = Field(min_length=1)
    batch_size: int | None = Field(default=None, gt=0)
    """lm-eval batch size; default the ``TRIPWIRE_BATCH_SIZE`` setting."""
    bootstrap_iters: int = Field(default=1000, ge=0)
    """lm-eval bootstrap iterations for metrics without a closed-form standard error."""
    seed: int = 0
    """lm-eval's random, numpy, torch and few-shot seeds."""

    @model_validator(mode="after")
    def _unique_tasks(self) -> Suite:
        if self.kind == "proxy" and any(
            t.alert_level is not None or t.critical_level is not None for t in self.tasks
        ):
            raise ValueError(
                "alert_level and critical_level belong to deep suites; in a proxy suite, "
                "levels are a policy's level rules"
            )
        names = [t.task for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task listed twice: {', '.join(dupes)}")
        return self


class LoadedSuite(BaseModel):
    """A validated suite with its resolved folders and content hash."""

    suite: Suite
    path: Path
    include_dirs: list[Path]
    content_hash: str
    file_hashes: dict[str, str] = Field(default_factory=dict)
    """sha256 of each file the content hash covers, keyed by its path relative to the suite
    file's folder: tells which file changed when a suite's hash does."""

    @property
    def name(self) -> str:
        return self.suite.name


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def load_suite(path: Path | str) -> LoadedSuite:
    """Read and validate a suite file, resolve its include folders and hash its content."""
    path = Path(path).resolve()
    suite = load_model(path, Suite, SuiteError)
    include_dirs = []
    for i, rel in enumerate(suite.include):
        folder = (path.parent / rel).resolve()
        if not folder.is_dir():
            raise SuiteError(
                path, [f"include.{i}: folder {rel} does not exist (relative to {path.parent})"]
            )
        include_dirs.append(folder)
    digest = hashlib.sha256()
    body = path.read_bytes()
    digest.update(body)
    file_hashes = {path.name: hashlib.sha256(body).hexdigest()}
    for folder in include_dirs:
        for file in _files_under(folder):
            file_sha = hashlib.sha256(file.read_bytes())
            digest.update(str(file.relative_to(folder)).encode())
            digest.update(file_sha.digest())
            file_hashes[_shown(file, path.parent)] = file_sha.hexdigest()
    for benchmark, data_hash in _imported_data([t.task for t in suite.tasks]).items():
        digest.update(f"data:{benchmark}".encode())
        digest.update(bytes.fromhex(data_hash))
        file_hashes[f"data:{benchmark}"] = data_hash
    return LoadedSuite(
        suite=suite,
        path=path,
        include_dirs=include_dirs,
        content_hash=digest.hexdigest(),
        file_hashes=file_hashes,
    )


def _imported_data(names: list[str]) -> dict[str, str]:
    """Content hashes of the imported benchmarks (``tripwire data import``) the tasks read."""
    from tripwire.runner.builtin import imported_data_hashes
    from tripwire.settings import Settings

    return imported_data_hashes(names, Settings().home)


def suite_files(suite: LoadedSuite) -> list[Path]:
    """Every file the suite's content hash covers: the suite file, then its include folders."""
    return [suite.path, *(f for folder in suite.include_dirs for f in _files_under(folder))]


def _shown(file: Path, base: Path) -> str:
    return str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
