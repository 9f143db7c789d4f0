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
    stratify_by: str | None = Field(default=None, min_length=1)
    """A document field (``subject``): the items are drawn from each of its values in
    proportion to its share of the task (largest remainders, at least one each while ``size``
    allows). A group's subset is drawn per leaf task already, so its leaves are its strata."""


PROFILE_SEPARATOR = "@"
"""A profile's scores are stored as the task ``<task>@<profile>``; the task's own row holds the
best over its profiles."""


class Profile(BaseModel):
    """One way of asking a task's items: an elicitation profile.

    ``zero_shot`` is ``{name: zero_shot, num_fewshot: 0}``; ``few_shot`` a ``num_fewshot``;
    chain of thought an lm-eval ``variant`` that asks the same items with reasoning and extracts
    the answer (``gsm8k_cot``); self-consistency ``samples: k, select: majority`` (lm-eval's
    ``repeats`` and its ``majority_vote`` filter); best-of-n ``samples: n, select: best`` (the
    first sample that the task's own answer check accepts).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    variant: str | None = None
    """Another lm-eval task over the same items (same documents) that asks them differently."""
    num_fewshot: int | None = Field(default=None, ge=0)
    samples: int = Field(default=1, ge=1, le=256)
    """Generations per item (lm-eval's ``repeats``); generative tasks only."""
    select: Literal["first", "majority", "best"] = "first"
    """How one answer is taken from the samples: the first, the most frequent (self-consistency)
    or the first one the task's answer check accepts (best-of-n, an oracle upper bound)."""
    temperature: float | None = Field(default=None, ge=0)
    """Sampling temperature; default 0.7 when ``samples`` > 1, else the task's own."""
    generation: dict[str, GenerationValue] = Field(default_factory=dict)
    """Further generation settings over the task's own."""

    @model_validator(mode="after")
    def _samples_and_selection(self) -> Profile:
        if self.samples > 1 and self.select == "first":
            raise ValueError(
                f"profile {self.name}: {self.samples} samples need select: majority or best"
            )
        if self.samples == 1 and self.select != "first":
            raise ValueError(f"profile {self.name}: select: {self.select} needs samples > 1")
        return self


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
    anchor: Path | None = None
    """An anchor file (``tripwire proxy fit``), relative to the suite file: score only its
    anchor items, and report the 2PL estimate of the full benchmark's score with its standard
    error (``docs/proxies.md``)."""
    metric: str | None = None
    """Primary metric; default the first metric the task lists (``acc`` for multiple choice)."""
    filter: str | None = None
    """lm-eval filter for the metric (``strict-match`` for GSM8K); default the first one."""
    alert_level: float | None = Field(default=None, gt=0, lt=100)
    """Deep suites: the task's alert level in points (score x 100); the report says whether the
    score reached it (the one-sided 95% bound established it), stayed below, or is unresolved."""
    critical_level: float | None = Field(default=None, gt=0, le=100)
    """Deep suites: the critical level the alert level warns of, in points."""
    profiles: list[Profile] | None = Field(default=None, min_length=1)
    """Elicitation profiles; the first is the default one. The task's score is the best over
    them; each profile's score is kept as ``<task>@<profile>``."""

    @model_validator(mode="after")
    def _limit_or_subset(self) -> SuiteTask:
        if sum(x is not None for x in (self.limit, self.subset, self.anchor)) > 1:
            raise ValueError("give either limit or subset or anchor, not two of them")
        if (
            self.alert_level is not None
            and self.critical_level is not None
            and self.critical_level <= self.alert_level
        ):
            raise ValueError(
                f"critical_level {self.critical_level:g} must be above alert_level "
                f"{self.alert_level:g}"
            )
        if self.profiles is not None:
            names = [p.name for p in self.profiles]
            if len(set(names)) != len(names):
                raise ValueError(f"profile names repeat: {', '.join(names)}")
        return self

    def result_names(self) -> list[str]:
        """The task rows a result of this entry holds: the task, then one per profile."""
        return [
            self.task,
            *(f"{self.task}{PROFILE_SEPARATOR}{p.name}" for p in self.profiles or []),
        ]


GenerationValue = str | int | float | bool | list[str]


class ModelSettings(BaseModel):
    """How a suite's checkpoints are loaded and prompted. Part of the suite file, so part of the
    suite's content hash and of every result's identity."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["hf", "vllm"] = "hf"
    """lm-eval's model type: ``hf`` (transformers) or ``vllm`` (GPU workers with vLLM
    installed, ``pip install 'lm-eval[vllm]'``)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype in memory. ``auto``: float32 on a CPU (bfloat16 matrix products are several
    times slower there), the checkpoint config's ``torch_dtype`` on a GPU."""
    device_map: Literal["none", "auto"] = "none"
    """``auto``: shard the model over every GPU the worker sees (accelerate's device map); for
    checkpoints that do not fit one GPU. ``none``: the worker's one device."""
    max_memory_per_gpu: str | None = None
    """With ``device_map: auto``: the memory each GPU may hold (``70GiB``)."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vLLM backend: GPUs the model is split over."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """vLLM backend: share of each GPU's memory vLLM may take."""
    max_length: int | None = Field(default=None, gt=0)
    """Longest context; default the model's own."""
    chat_template: bool = False
    """Wrap prompts in the tokenizer's chat template (chat-tuned models); the tokenizer must
    have one."""
    system_instruction: str | None = None
    """A system message put before every prompt (with ``chat_template``, as the system turn)."""
    fewshot_as_multiturn: bool = False
    """With ``chat_template``: few-shot examples as alternating user and assistant turns."""
    generation: dict[str, GenerationValue] = Field(default_factory=dict)
    """Generation settings for generative tasks, over each task's own (``temperature``,
    ``do_sample``, ``max_gen_toks``, ``until``, ``top_p``)."""

    @model_validator(mode="after")
    def _coherent(self) -> ModelSettings:
        if self.fewshot_as_multiturn and not self.chat_template:
            raise ValueError("fewshot_as_multiturn needs chat_template: true")
        if self.backend == "vllm" and self.device_map != "none":
            raise ValueError("device_map is for the hf backend; vLLM uses tensor_parallel_size")
        return self


class CommandSpec(BaseModel):
    """A deep evaluation run by a harness of the lab's own instead of lm-eval.

    The contract: Tripwire runs ``argv`` (placeholders ``{checkpoint}``, ``{result}``,
    ``{suite_dir}``, ``{seed}``; also in ``TRIPWIRE_CHECKPOINT`` and ``TRIPWIRE_RESULT``) in the
    suite file's folder; the command writes JSON scores to the result path and exits 0
    (``docs/suites.md``). Past ``timeout_s`` its process group is killed and the job fails.
    """

    model_config = ConfigDict(extra="forbid")
    argv: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=3600.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the command (the worker's own are passed too)."""


class InspectSpec(BaseModel):
    """A deep suite of Inspect tasks (``inspect_ai``), run on the checkpoint through Inspect's
    Hugging Face provider; each suite task names an Inspect task (``tasks/agentic.py@ctf``,
    relative to the suite file, or a registered name)."""

    model_config = ConfigDict(extra="forbid")
    time_limit_s: float = Field(default=3600.0, gt=0)
    """The whole suite's time limit; past it the run is killed and the job fails."""
    limit: int | None = Field(default=None, gt=0)
    """Samples per task; default all."""
    max_tokens: int | None = Field(default=None, gt=0)
    model_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Further arguments of Inspect's ``hf`` provider (``chat_template``, ``batch_size``...)."""


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
    model: ModelSettings = Field(default_factory=ModelSettings)
    """How checkpoints are loaded and prompted for this suite (``ModelSettings``)."""
    inspect: InspectSpec | None = None
    """Deep suites: run these Inspect tasks instead of lm-eval (``InspectSpec``)."""
    command: CommandSpec | None = None
    """Deep suites: run this harness instead of lm-eval; ``tasks`` names the scores it reports.
    Put the harness's code under ``include`` so that it is part of the suite's identity."""

    def result_names(self) -> list[str]:
        """Every task row a result of this suite holds (profiles included)."""
        return [name for t in self.tasks for name in t.result_names()]

    @model_validator(mode="after")
    def _unique_tasks(self) -> Suite:
        if self.kind == "proxy" and any(
            t.alert_level is not None or t.critical_level is not None for t in self.tasks
        ):
            raise ValueError(
                "alert_level and critical_level belong to deep suites; in a proxy suite, "
                "levels are a policy's level rules"
            )
        if self.command is not None and self.inspect is not None:
            raise ValueError("give either command or inspect, not both")
        if self.command is not None or self.inspect is not None:
            how = "command" if self.command is not None else "inspect"
            if self.kind != "deep":
                raise ValueError(f"{how}: runs deep evaluations; a proxy suite uses lm-eval tasks")
            for i, t in enumerate(self.tasks):
                if (
                    t.num_fewshot is not None
                    or t.limit is not None
                    or t.subset is not None
                    or t.profiles is not None
                    or t.anchor is not None
                ):
                    raise ValueError(
                        f"tasks.{i}: num_fewshot, limit, subset and profiles are lm-eval's; "
                        f"a {how} suite's tasks name the scores it reports"
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
    read = [
        n
        for t in suite.tasks
        for n in [t.task, *(p.variant for p in t.profiles or [] if p.variant)]
    ]
    for benchmark, data_hash in _imported_data(read).items():
        digest.update(f"data:{benchmark}".encode())
        digest.update(bytes.fromhex(data_hash))
        file_hashes[f"data:{benchmark}"] = data_hash
    for i, entry in enumerate(suite.tasks):
        if entry.anchor is None:
            continue
        file = (path.parent / entry.anchor).resolve()
        if not file.is_file():
            raise SuiteError(
                path,
                [
                    f"tasks.{i}.anchor: {entry.anchor} does not exist (relative to "
                    f"{path.parent}); write it with `tripwire proxy fit`"
                ],
            )
        file_sha = hashlib.sha256(file.read_bytes())
        digest.update(f"anchor:{entry.task}".encode())
        digest.update(file_sha.digest())
        file_hashes[_shown(file, path.parent)] = file_sha.hexdigest()
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
    """Every file the suite's content hash covers: the suite file, its include folders, then
    its anchor files."""
    return [
        suite.path,
        *(f for folder in suite.include_dirs for f in _files_under(folder)),
        *anchor_paths(suite).values(),
    ]


def anchor_paths(suite: LoadedSuite) -> dict[str, Path]:
    """The anchor file of each anchored task, resolved."""
    return {
        t.task: (suite.path.parent / t.anchor).resolve()
        for t in suite.suite.tasks
        if t.anchor is not None
    }


def _shown(file: Path, base: Path) -> str:
    return str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
