"""Score a checkpoint on a suite with lm-eval.

Out of memory during scoring (CUDA or CPU) is retried here, on the already loaded model, with
lm-eval's batch size halved each time down to 1; the batch size the scores were computed at is
recorded in ``SuiteResult.versions.batch_size``. A transient I/O or connection error is raised
as it is, for the job to retry later; any other lm-eval failure becomes an ``EvaluationError``.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripwire import __version__
from tripwire.benchmarks import DataStore
from tripwire.errors import (
    CheckpointError,
    EvaluationError,
    SuiteError,
    TripwireError,
    UnsafeCheckpointError,
)
from tripwire.failures import is_out_of_memory, is_transient
from tripwire.offline import enforce_offline, hub_allowed
from tripwire.proxies.file import anchored, load_anchor_file
from tripwire.results import SuiteResult, TaskResult, Versions
from tripwire.runner.builtin import materialize_builtin
from tripwire.runner.extract import docs_of, select_items, task_result
from tripwire.runner.names import builtin_names, check_data, check_names, custom_index
from tripwire.runner.profiles import (
    best_over,
    inference_tokens,
    parameter_count,
    profile_entry,
    profile_spec,
    row_name,
)
from tripwire.runner.task_files import materialize
from tripwire.runner.task_index import BuiltinTaskIndex, lm_eval_tasks_root
from tripwire.sources.layout import TOKENIZER_HELP, list_dir
from tripwire.suites import LoadedSuite, ModelSettings, SuiteTask, anchor_paths
from tripwire.systems import API_KEY_ENV, SystemSpec

if TYPE_CHECKING:
    from tripwire.runner.response_store import CheckpointAnswers, ResponseCache

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def check_checkpoint_files(path: Path, *, allow_pickle: bool) -> None:
    """Refuse a directory that is not a loadable Hugging Face checkpoint, before loading it."""
    if not path.is_dir():
        raise CheckpointError(path, "not a directory")
    if not (path / "config.json").is_file():
        raise CheckpointError(path, "no config.json: not a Hugging Face checkpoint")
    names = [p.name for p in path.iterdir() if p.is_file()]
    if not any(n.endswith(".safetensors") for n in names):
        if not any(n.endswith(PICKLE_SUFFIXES) for n in names):
            raise CheckpointError(path, "no weights (*.safetensors) found")
        if not allow_pickle:
            raise UnsafeCheckpointError(
                path,
                "weights are pickle files, which can run code when loaded; convert them to "
                "safetensors, or set TRIPWIRE_ALLOW_PICKLE=1 if you trust their source",
            )
    if not list_dir(path).has_tokenizer():
        raise CheckpointError(
            path,
            f"no tokenizer: AutoTokenizer needs {TOKENIZER_HELP} in the checkpoint folder; "
            "save it there with tokenizer.save_pretrained(<folder>)",
        )


def _lm_eval() -> Any:
    enforce_offline()
    import lm_eval
    import lm_eval.tasks

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    return lm_eval


def _hflm_class(base: Any, *, quiet: bool) -> Any:
    """``base`` (default lm-eval's ``HFLM``), or a subclass that never draws progress bars."""
    if base is None:
        from lm_eval.models.huggingface import HFLM

        base = HFLM
    if not quiet:
        return base

    class QuietHFLM(base):  # type: ignore[misc]
        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests: Any, disable_tqdm: bool = False) -> Any:
            return super().generate_until(requests, disable_tqdm=True)

    return QuietHFLM


class Runner:
    """Evaluates checkpoints on suites. Holds no model between calls."""

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        allow_pickle: bool = False,
        cache_dir: Path | None = None,
        progress: bool = True,
        model_class: type[Any] | None = None,
        responses: ResponseCache | None = None,
        logs_dir: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        """lm-eval's batch size to start with; halved on out-of-memory, down to 1."""
        self.allow_pickle = allow_pickle
        self.cache_dir = cache_dir
        self.progress = progress
        """lm-eval's per-request progress bars; off in workers, whose logs they would flood."""
        self.model_class = model_class
        """lm-eval's ``HFLM`` or a subclass of it (default ``HFLM``), constructed with the same
        arguments; a subclass can change how the model is called (tests inject failures)."""
        self.logs_dir = logs_dir
        """Where harnesses that keep logs (Inspect) write them; default a temporary folder."""
        self.responses = responses
        """Cached model answers keyed by the checkpoint's content (``runner.responses``); used
        when ``evaluate`` is given the checkpoint's content hash."""
        self.data_dir = data_dir
        """The benchmark data store (``tripwire data import``); default ``$TRIPWIRE_HOME/data``."""
        self._builtin: BuiltinTaskIndex | None = None

    # ------------------------------------------------------------------ tasks
    def _builtin_index(self) -> BuiltinTaskIndex:
        if self._builtin is None:
            from importlib.metadata import version

            cache = None
            if self.cache_dir is not None:
                cache = self.cache_dir / f"lm_eval_task_index-{version('lm_eval')}.json"
            self._builtin = BuiltinTaskIndex(lm_eval_tasks_root(), cache)
        return self._builtin

    def data_store(self) -> DataStore:
        if self.data_dir is not None:
            return DataStore(self.data_dir)
        from tripwire.settings import Settings

        return DataStore(Settings().home / "data")

    def _cache_root(self) -> Path:
        return self.cache_dir or Path(tempfile.gettempdir()) / "tripwire-cache"

    def _custom_dirs(self, suite: LoadedSuite) -> list[Path]:
        if not suite.include_dirs:
            return []
        return materialize(suite.include_dirs, self._cache_root() / "tasks")

    def custom_names(self, suite: LoadedSuite) -> set[str]:
        """The task, group and tag names a suite's include folders define."""
        return set(custom_index(suite))

    def builtin_names(self, suite: LoadedSuite) -> list[str]:
        """The built-in names a suite runs (``tripwire.runner.names.builtin_names``)."""
        return builtin_names(suite)

    def check_names(self, suite: LoadedSuite) -> None:
        """Every task name is lm-eval's or the include folders', or a ``SuiteError`` names
        each one that is not, with close matches. Imports no lm-eval."""
        check_names(suite, self._builtin_index())

    def check_data(self, suite: LoadedSuite) -> None:
        """Raise ``MissingDataError`` naming every importable benchmark the suite reads and
        the data store lacks, with its import command (not when hub access is allowed)."""
        check_names(suite, self._builtin_index())
        if not hub_allowed():
            check_data(suite, self._builtin_index(), self.data_store())

    def task_manager(self, suite: LoadedSuite) -> tuple[Any, set[str]]:
        """A TaskManager indexing only the folders this suite's tasks live in.

        Also returns the names the suite's own include folders define.
        """
        self.check_names(suite)
        lm_eval = _lm_eval()
        TaskManager = lm_eval.tasks.TaskManager
        custom_dirs = self._custom_dirs(suite)
        known = self.custom_names(suite)
        builtin: set[Path] = set()
        for name in self.builtin_names(suite):
            builtin.update(self._builtin_index().folders_for(name))
        # lm-eval keeps the first definition of a name in sorted path order within one folder
        # tree, but the last over several include paths: reversed order keeps its choice.
        builtin_dirs = sorted(builtin, reverse=True)
        builtin_dirs = materialize_builtin(
            builtin_dirs, self.data_store(), self._cache_root() / "builtin"
        )
        paths = [str(d) for d in builtin_dirs] + [str(d) for d in custom_dirs]
        return TaskManager(include_path=paths, include_defaults=False), known

    def fetch_data(self, suite: LoadedSuite) -> list[str]:
        """Load every task of ``suite`` once, so that lm-eval downloads its data into the
        Hugging Face cache (``HF_HOME``); returns the tasks loaded. Run it where the hub is
        reachable, with ``TRIPWIRE_ALLOW_HUB=1``, to fill the cache that offline workers read.
        """
        if suite.suite.command is not None:
            return []  # a command suite's harness brings its own data
        tm, _ = self.task_manager(suite)
        loaded: list[str] = []
        for entry in suite.suite.tasks:
            try:
                tasks = tm.load([entry.task])["tasks"]
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise EvaluationError(
                    f"lm-eval could not load task {entry.task!r}: {type(exc).__name__}: {exc} "
                    "(is the hub reachable, TRIPWIRE_ALLOW_HUB=1 set, and for gated datasets "
                    "such as GPQA, HF_TOKEN set and the terms accepted?)"
                ) from exc
            loaded.extend(tasks)
        return loaded

    # ------------------------------------------------------------------ evaluate
    def dtype_for(self, settings: ModelSettings) -> str:
        """The dtype a suite's ``model.dtype`` means on this runner's device."""
        if settings.dtype != "auto":
            return settings.dtype
        return "float32" if self.device.startswith("cpu") else "auto"

    def check_model_settings(self, settings: ModelSettings, suite_path: Path) -> None:
        """Refuse settings this worker cannot honour, before any model loads."""
        if settings.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise SuiteError(
                suite_path,
                [
                    "model.backend: vllm is not installed on this worker; install it on a GPU "
                    "worker (pip install 'lm-eval[vllm]') or use backend: hf"
                ],
            )
        if settings.device_map == "auto" and not self.device.startswith("cuda"):
            raise SuiteError(
                suite_path,
                [
                    f"model.device_map: auto shards a model over GPUs, and this worker "
                    f"evaluates on {self.device!r}; run the suite on a GPU worker "
                    "(tripwire worker --gpus ...) or set device_map: none"
                ],
            )

    def load_model(self, checkpoint: Path, settings: ModelSettings | None = None) -> Any:
        """Load a checkpoint into an lm-eval model (``HFLM``, or vLLM's where the suite asks),
        safetensors only unless pickle is allowed, remote code never."""
        settings = settings or ModelSettings()
        check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
        _lm_eval()
        try:
            if settings.backend == "vllm":
                from lm_eval.models.vllm_causallms import VLLM

                return VLLM(
                    pretrained=str(checkpoint),
                    dtype=self.dtype_for(settings),
                    batch_size="auto",
                    max_length=settings.max_length,
                    tensor_parallel_size=settings.tensor_parallel_size,
                    gpu_memory_utilization=settings.gpu_memory_utilization,
                    trust_remote_code=False,
                )
            model_class = _hflm_class(self.model_class, quiet=not self.progress)
            extra: dict[str, Any] = {}
            if settings.device_map == "auto":
                extra["parallelize"] = True
                if settings.max_memory_per_gpu is not None:
                    extra["max_memory_per_gpu"] = settings.max_memory_per_gpu
            if settings.max_length is not None:
                extra["max_length"] = settings.max_length
            return model_class(
                pretrained=str(checkpoint),
                device=self.device,
                batch_size=self.batch_size,
                dtype=self.dtype_for(settings),
                trust_remote_code=False,
                use_safetensors=not self.allow_pickle,
                **extra,
            )
        except Exception as exc:  # transformers raises many types for a bad checkpoint
            if is_out_of_memory(exc):
                raise EvaluationError(
                    f"out of memory loading {checkpoint} on {self.device} "
                    f"({type(exc).__name__}: {exc}); the model itself does not fit: evaluate "
                    "it on a device with more memory"
                ) from exc
            if is_transient(exc):
                raise  # an I/O or connection error: the job retries later
            raise CheckpointError(checkpoint, f"cannot load: {type(exc).__name__}: {exc}") from exc

    def evaluate(
        self, checkpoint: Path | str, suite: LoadedSuite, *, content_hash: str | None = None
    ) -> SuiteResult:
        """Score ``checkpoint`` on every task of ``suite``.

        With a response cache and the checkpoint's ``content_hash``, answers already computed
        for these weights are reused and the model is loaded only if some are missing.
        """
        checkpoint = Path(checkpoint).resolve()
        if suite.suite.command is not None:
            from tripwire.runner.command import run_command

            check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
            return run_command(checkpoint, suite)
        if suite.suite.inspect is not None:
            return self._inspect(checkpoint, suite)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        settings = suite.suite.model
        self.check_model_settings(settings, suite.path)
        if settings.chat_template and not _has_chat_template(checkpoint):
            raise CheckpointError(
                checkpoint,
                f"suite {suite.name} asks for a chat template (model.chat_template: true) and "
                "the tokenizer has none: save one with the tokenizer (tokenizer.chat_template, "
                "then save_pretrained) or set chat_template: false",
            )
        answers: CheckpointAnswers | None = None
        result_key = ""
        identity = ""
        if self.responses is not None and content_hash is not None:
            from tripwire.runner.response_store import tokenizer_digest

            check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
            # answers differ by the weights, the tokenizer and how the weights are held
            held = settings.model_dump(include={"backend", "dtype", "max_length"})
            held["dtype"] = self.dtype_for(settings)
            identity = f"{content_hash}:{tokenizer_digest(checkpoint)}:{sorted(held.items())}"
            answers = self.responses.open(hashlib.sha256(identity.encode()).hexdigest())
            # the same weights on the same suite (its files, data and settings) with the same
            # lm-eval and Tripwire: the stored result, without building a single request
            result_key = f"{suite.content_hash}:{_version('lm_eval')}:{__version__}"
            stored = answers.result(result_key)
            if stored is not None:
                answers.close()
                return _replayed(SuiteResult.model_validate_json(stored), checkpoint, started, t0)
        self.check_data(suite)  # before the model loads: name every missing benchmark
        tm, custom_names = self.task_manager(suite)
        task_ids: dict[str, str] = {}
        if answers is not None:
            _lm_eval()
            from tripwire.runner.responses import CachedLM

            lm: Any = CachedLM(
                lambda: self.load_model(checkpoint, settings), answers, identity, task_ids
            )
        else:
            lm = self.load_model(checkpoint, settings)
        try:
            result = self._evaluate(checkpoint, suite, tm, custom_names, lm, task_ids)
            if answers is not None:
                answers.put_result(result_key, result.model_dump_json())
        finally:
            if answers is not None:
                answers.close()
                assert self.responses is not None
                self.responses.evict(keep=answers.path)
        return result.model_copy(
            update={"started_at": started, "duration_s": time.perf_counter() - t0}
        )

    def evaluate_system(self, system: SystemSpec, suite: LoadedSuite) -> SuiteResult:
        """Score a served system (``tripwire.systems``) on ``suite`` through lm-eval's API
        models. No response cache: what a name serves can change behind it."""
        if suite.suite.command is not None or suite.suite.inspect is not None:
            raise SuiteError(
                suite.path,
                [
                    "a served system is scored through lm-eval tasks; command and inspect "
                    "suites need a checkpoint folder"
                ],
            )
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        self.check_data(suite)
        tm, custom_names = self.task_manager(suite)
        _lm_eval()
        needs_logprobs = [
            entry.task
            for entry in suite.suite.tasks
            for task in tm.load([entry.task])["tasks"].values()
            if task.OUTPUT_TYPE != "generate_until"
        ]
        if needs_logprobs and (system.api == "chat" or system.tokenizer is None):
            raise EvaluationError(
                f"{', '.join(sorted(set(needs_logprobs)))} score log-likelihoods, which a served "
                f"system gives only through the completions API with prompt log-probabilities "
                f"and a local tokenizer (tripwire system add --api completions --tokenizer "
                f"PATH); this one is {system.api}"
                + ("" if system.tokenizer else " without a tokenizer")
            )
        lm = self._api_model(system)
        if system.api == "chat":  # lm-eval's chat API model takes messages, not text
            model = suite.suite.model.model_copy(update={"chat_template": True})
            suite = suite.model_copy(
                update={"suite": suite.suite.model_copy(update={"model": model})}
            )
        result = self._evaluate(system.uri(), suite, tm, custom_names, lm, {})
        return result.model_copy(
            update={
                "model_path": system.uri(),
                "versions": result.versions.model_copy(
                    update={"backend": f"openai-{system.api}", "dtype": None}
                ),
                "started_at": started,
                "duration_s": time.perf_counter() - t0,
            }
        )

    def _api_model(self, system: SystemSpec) -> Any:
        from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

        key = os.environ.get(API_KEY_ENV)
        common: dict[str, Any] = {
            "model": system.model,
            "num_concurrent": 1,
            "max_retries": 3,
            "batch_size": 1,
            "header": {"Authorization": f"Bearer {key}"} if key else None,
        }
        if system.api == "chat":
            return LocalChatCompletion(
                base_url=f"{system.base_url}/chat/completions",
                tokenizer_backend=None,
                tokenized_requests=False,
                **common,
            )
        return LocalCompletionsAPI(
            base_url=f"{system.base_url}/completions",
            tokenizer=system.tokenizer,
            tokenizer_backend="huggingface" if system.tokenizer else None,
            tokenized_requests=system.tokenizer is not None,
            **common,
        )

    def _inspect(self, checkpoint: Path, suite: LoadedSuite) -> SuiteResult:
        """Inspect tasks, run by the command contract in a process of their own."""
        from tripwire.runner.command import run_command
        from tripwire.suites import CommandSpec

        spec = suite.suite.inspect
        assert spec is not None
        check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
        if importlib.util.find_spec("inspect_ai") is None:
            raise SuiteError(
                suite.path, ["inspect: inspect_ai is not installed here (pip install inspect_ai)"]
            )
        logs = self.logs_dir or Path(tempfile.gettempdir()) / "tripwire-inspect-logs"
        command = CommandSpec(
            argv=[
                sys.executable,
                "-m",
                "tripwire.runner.inspect_tasks",
                "{checkpoint}",
                "{result}",
                "--suite",
                str(suite.path),
                "--log-dir",
                str(logs / suite.name),
                "--device",
                self.device,
            ],
            timeout_s=spec.time_limit_s,
        )
        return run_command(checkpoint, suite, command)

    def _evaluate(
        self,
        checkpoint: Path | str,
        suite: LoadedSuite,
        tm: Any,
        custom_names: set[str],
        lm: Any,
        task_ids: dict[str, str],
    ) -> SuiteResult:
        """Score every task of ``suite`` with ``lm``: a checkpoint folder's model, or a served
        system's API model (``checkpoint`` is then its URI)."""
        started = datetime.now(UTC)
        by_fewshot: dict[int | None, list[SuiteTask]] = defaultdict(list)
        for entry in suite.suite.tasks:
            if entry.profiles is None:
                by_fewshot[entry.num_fewshot].append(entry)
        tasks: dict[str, TaskResult] = {}
        raw: dict[str, Any] = {}
        folder = Path(checkpoint) if isinstance(checkpoint, Path) else None
        count = _TokenCounter(folder, lm)
        params = parameter_count(folder) if folder is not None else None
        anchors = {task: load_anchor_file(p) for task, p in anchor_paths(suite).items()}
        batch = _Batch(self, checkpoint, suite, tm, custom_names, lm, task_ids, anchors)
        for num_fewshot, entries in by_fewshot.items():
            raw, leaves = batch.score([(e, e.task) for e in entries], num_fewshot)
            for entry in entries:
                row = task_result(raw, entry, leaves[entry.task], num_fewshot)
                anchor = anchors.get(entry.task)
                row = row if anchor is None else anchored(row, anchor)
                tasks[entry.task] = _with_compute(row, raw, leaves[entry.task], count, params, 1)
        for entry in suite.suite.tasks:
            if entry.profiles is None:
                continue
            for profile in entry.profiles:
                scored = profile_entry(entry, profile)
                spec: str | dict[str, Any] = scored.task
                if profile.samples > 1:
                    loaded = batch.load(scored)
                    if scored.task in loaded["groups"] or len(loaded["tasks"]) != 1:
                        raise SuiteError(
                            suite.path,
                            [
                                f"{entry.task} profile {profile.name}: samples work on one "
                                f"task, and {scored.task} is a group; list its tasks instead"
                            ],
                        )
                    spec = profile_spec(next(iter(loaded["tasks"].values())), profile)
                raw, leaves = batch.score([(scored, spec)], scored.num_fewshot)
                row = task_result(raw, scored, leaves[scored.task], scored.num_fewshot)
                row = row.model_copy(
                    update={"task": row_name(entry, profile), "profile": profile.name}
                )
                tasks[row.task] = _with_compute(
                    row, raw, leaves[scored.task], count, params, profile.samples
                )
            tasks[entry.task] = best_over(entry, tasks)
        versions = _versions(raw, batch_size=_batch_size(lm)).model_copy(
            update={
                "backend": suite.suite.model.backend,
                "dtype": _dtype_of(lm) or self.dtype_for(suite.suite.model),
            }
        )
        if hasattr(lm, "hits"):
            versions = versions.model_copy(
                update={"cached_answers": lm.hits, "computed_answers": lm.misses}
            )
        return SuiteResult(
            suite_name=suite.name,
            suite_hash=suite.content_hash,
            model_path=str(checkpoint),
            tasks=tasks,
            versions=versions,
            started_at=started,
            duration_s=0.0,
            seed=suite.suite.seed,
        )

    def _score(self, lm: Any, what: str, **kwargs: Any) -> dict[str, Any]:
        """``simple_evaluate`` on the loaded model, halving its batch size on out-of-memory."""
        lm_eval = _lm_eval()
        while True:
            try:
                result: dict[str, Any] = lm_eval.simple_evaluate(model=lm, **kwargs)
                return result
            except Exception as exc:
                reason = self._out_of_memory(exc, lm, what)
            # Out of the except block, so the traceback's frames (and their tensors) are freed.
            size = _batch_size(lm) or 1
            smaller = max(size // 2, 1)
            log.warning(
                "out of memory on %s at batch size %d (%s); retrying at batch size %d",
                what,
                size,
                reason,
                smaller,
            )
            _free_memory()
            _set_batch_size(lm, smaller)

    def _out_of_memory(self, exc: Exception, lm: Any, what: str) -> str:
        """The first line of an out-of-memory error that a smaller batch may avoid; raises
        anything else (and out-of-memory at batch size 1) as the job should see it."""
        if is_transient(exc):
            raise exc  # an I/O or connection error: the job retries later
        if isinstance(exc, TripwireError):
            raise exc  # the model, loaded on the cache's first miss, could not be loaded
        if not is_out_of_memory(exc):
            raise EvaluationError(f"lm-eval failed on {what}: {type(exc).__name__}: {exc}") from exc
        if (_batch_size(lm) or 1) <= 1:
            raise EvaluationError(
                f"out of memory on {what} at batch size 1 on {self.device} "
                f"({type(exc).__name__}: {exc}); the batch was halved down from "
                f"{self.batch_size} and still does not fit: evaluate it on a device with more "
                "memory"
            ) from exc
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


class _Batch:
    """One ``simple_evaluate`` call over several suite entries, on the loaded model."""

    def __init__(
        self,
        runner: Runner,
        checkpoint: Path | str,
        suite: LoadedSuite,
        tm: Any,
        custom_names: set[str],
        lm: Any,
        task_ids: dict[str, str],
        anchors: dict[str, Any] | None = None,
    ) -> None:
        self.anchors = anchors or {}
        """Task name to its anchor file (``tripwire.proxies.file``): only anchors are scored."""
        self.runner = runner
        self.checkpoint = checkpoint
        self.suite = suite
        self.tm = tm
        self.custom_names = custom_names
        self.lm = lm
        self.task_ids = task_ids

    def load(self, entry: SuiteTask, spec: str | dict[str, Any] | None = None) -> Any:
        try:
            return self.tm.load([spec if spec is not None else entry.task])
        except Exception as exc:
            if is_transient(exc):
                raise
            hint = (
                ""
                if entry.task in self.custom_names
                else " (built-in benchmarks read their data from the local store: "
                "`tripwire data import`, docs/benchmarks.md)"
            )
            raise EvaluationError(
                f"lm-eval could not load task {entry.task!r}: {type(exc).__name__}: {exc}{hint}"
            ) from exc

    def score(
        self, entries: list[tuple[SuiteTask, str | dict[str, Any]]], num_fewshot: int | None
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """lm-eval's result for these entries (each loaded from its spec) and their leaves."""
        objects: list[Any] = []
        leaves: dict[str, list[str]] = {}
        samples: dict[str, list[int]] = {}
        for entry, spec in entries:
            loaded = self.load(entry, spec)
            if entry.task in loaded["groups"]:
                objects.append(loaded["groups"][entry.task])
            else:
                objects.extend(loaded["tasks"].values())
            leaves[entry.task] = list(loaded["tasks"])
            anchor = self.anchors.get(entry.task)
            prefixed = entry.task not in leaves[entry.task] or len(leaves[entry.task]) > 1
            for leaf, task in loaded["tasks"].items():
                if hasattr(self.lm, "tasks"):
                    self.task_ids[leaf] = _task_identity(task)
                chosen = select_items(
                    list(task.eval_docs),
                    entry,
                    anchor_items=None if anchor is None else {a.item for a in anchor.anchors},
                    key_of=_doc_key(leaf if prefixed else None),
                )
                if chosen is not None:
                    samples[leaf] = chosen
        if samples:
            for entry, _ in entries:
                for leaf in leaves[entry.task]:
                    samples.setdefault(leaf, list(range(len(docs_of(objects, leaf)))))
        model = self.suite.suite.model
        result = self.runner._score(
            self.lm,
            f"{self.checkpoint} for suite {self.suite.name}",
            tasks=objects,
            num_fewshot=num_fewshot,
            samples=samples or None,
            task_manager=self.tm,
            log_samples=True,
            apply_chat_template=model.chat_template,
            system_instruction=model.system_instruction,
            fewshot_as_multiturn=model.fewshot_as_multiturn,
            gen_kwargs=dict(model.generation) or None,
            bootstrap_iters=self.suite.suite.bootstrap_iters,
            random_seed=self.suite.suite.seed,
            numpy_random_seed=self.suite.suite.seed,
            torch_random_seed=self.suite.suite.seed,
            fewshot_random_seed=self.suite.suite.seed,
        )
        return result, leaves


class _TokenCounter:
    """Counts tokens with the checkpoint's tokenizer (the loaded model's, or loaded alone)."""

    def __init__(self, checkpoint: Path | None, lm: Any) -> None:
        self.checkpoint = checkpoint
        self.lm = lm
        self._tokenizer: Any = None

    available = True
    """False when no tokenizer is at hand (a served system registered without one)."""

    def __call__(self, text: str) -> int:
        if self._tokenizer is None and self.available:
            model = _model_of(self.lm)
            self._tokenizer = getattr(model, "tokenizer", None)
            if self._tokenizer is None or not callable(self._tokenizer):
                self._tokenizer = None
                if self.checkpoint is None:
                    self.available = False
                    return 0
                try:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(
                        str(self.checkpoint), trust_remote_code=False
                    )
                except (OSError, ValueError):
                    self.available = False
        if self._tokenizer is None:
            return 0
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


def _with_compute(
    row: TaskResult,
    raw: dict[str, Any],
    leaves: list[str],
    count: _TokenCounter,
    params: int | None,
    repeats: int,
) -> TaskResult:
    counted = inference_tokens(raw, leaves, count, repeats)
    tokens = counted if count.available else None
    flop = 2.0 * params * tokens if params is not None and tokens is not None else None
    return row.model_copy(update={"inference_tokens": tokens, "inference_flop": flop})


def _has_chat_template(checkpoint: Path) -> bool:
    """Whether the checkpoint's tokenizer files carry a chat template."""
    if (checkpoint / "chat_template.jinja").is_file() or (
        checkpoint / "chat_template.json"
    ).is_file():
        return True
    config = checkpoint / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def _dtype_of(lm: Any) -> str | None:
    """The dtype the loaded model's weights are held in (None when no model was loaded)."""
    model = _model_of(lm)
    inner = getattr(model, "_model", None) if model is not None else None
    dtype = getattr(inner, "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def _task_identity(task: Any) -> str:
    from tripwire.runner.responses import task_identity

    return task_identity(task)


def _model_of(lm: Any) -> Any:
    """The lm-eval model behind a ``CachedLM`` (None while not loaded), or ``lm`` itself."""
    if hasattr(lm, "loaded"):
        return lm.model if lm.loaded else None
    return lm


def _batch_size(lm: Any) -> int | None:
    model = _model_of(lm)
    size = getattr(model, "batch_size", None) if model is not None else None
    return int(size) if isinstance(size, int) else None


def _set_batch_size(lm: Any, size: int) -> None:
    # HFLM keeps its (fixed) batch size here and reads it at every loglikelihood and
    # generate_until call (lm-eval 0.4); the loaded weights stay where they are.
    _model_of(lm).batch_size_per_gpu = size


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _versions(result: dict[str, Any], *, batch_size: int | None) -> Versions:
    import torch
    import transformers

    return Versions(
        lm_eval=str(result.get("lm_eval_version") or "unknown"),
        transformers=str(transformers.__version__),
        torch=str(torch.__version__),
        tripwire=__version__,
        batch_size=batch_size,
    )


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _replayed(stored: SuiteResult, checkpoint: Path, started: datetime, t0: float) -> SuiteResult:
    """A stored result served again: every answer counted as cached, this run's time."""
    answered = (stored.versions.cached_answers or 0) + (stored.versions.computed_answers or 0)
    return stored.model_copy(
        update={
            "model_path": str(checkpoint),
            "started_at": started,
            "duration_s": time.perf_counter() - t0,
            "versions": stored.versions.model_copy(
                update={"cached_answers": answered, "computed_answers": 0}
            ),
        }
    )


def _doc_key(leaf: str | None) -> Any:
    """The key an item is stored under: lm-eval's document hash, ``leaf:hash`` in a group."""
    from lm_eval.utils import handle_non_serializable, hash_string

    def key(doc: Any) -> str:
        text = json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False)
        return f"{leaf}:{hash_string(text)}" if leaf else str(hash_string(text))

    return key
