"""Score a checkpoint on a suite with lm-eval.

Out of memory during scoring (CUDA or CPU) is retried here, on the already loaded model, with
lm-eval's batch size halved each time down to 1; the batch size the scores were computed at is
recorded in ``SuiteResult.versions.batch_size``. A transient I/O or connection error is raised
as it is, for the job to retry later; any other lm-eval failure becomes an ``EvaluationError``.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tripwire import __version__
from tripwire.benchmarks import DataStore
from tripwire.errors import CheckpointError, EvaluationError, UnsafeCheckpointError
from tripwire.failures import is_out_of_memory, is_transient
from tripwire.offline import enforce_offline, hub_allowed
from tripwire.results import SuiteResult, TaskResult, Versions
from tripwire.runner.builtin import materialize_builtin
from tripwire.runner.extract import docs_of, select_items, task_result
from tripwire.runner.names import builtin_names, check_data, check_names, custom_index
from tripwire.runner.task_files import materialize
from tripwire.runner.task_index import BuiltinTaskIndex, lm_eval_tasks_root
from tripwire.sources.layout import TOKENIZER_HELP, list_dir
from tripwire.suites import LoadedSuite, SuiteTask

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
    def load_model(self, checkpoint: Path) -> Any:
        """Load a checkpoint into an lm-eval ``HFLM``, safetensors only unless pickle is allowed."""
        check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
        _lm_eval()
        model_class = _hflm_class(self.model_class, quiet=not self.progress)
        try:
            return model_class(
                pretrained=str(checkpoint),
                device=self.device,
                batch_size=self.batch_size,
                trust_remote_code=False,
                use_safetensors=not self.allow_pickle,
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

    def evaluate(self, checkpoint: Path | str, suite: LoadedSuite) -> SuiteResult:
        """Score ``checkpoint`` on every task of ``suite``."""
        checkpoint = Path(checkpoint).resolve()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        self.check_data(suite)  # before the model loads: name every missing benchmark
        tm, custom_names = self.task_manager(suite)
        lm = self.load_model(checkpoint)
        by_fewshot: dict[int | None, list[SuiteTask]] = defaultdict(list)
        for entry in suite.suite.tasks:
            by_fewshot[entry.num_fewshot].append(entry)
        tasks: dict[str, TaskResult] = {}
        raw: dict[str, Any] = {}
        for num_fewshot, entries in by_fewshot.items():
            objects: list[Any] = []
            leaves: dict[str, list[str]] = {}
            samples: dict[str, list[int]] = {}
            for entry in entries:
                spec = entry.task
                try:
                    loaded = tm.load([spec])
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    hint = (
                        ""
                        if entry.task in custom_names
                        else " (built-in benchmarks read their data from the local store: "
                        "`tripwire data import`, docs/benchmarks.md)"
                    )
                    raise EvaluationError(
                        f"lm-eval could not load task {entry.task!r}: "
                        f"{type(exc).__name__}: {exc}{hint}"
                    ) from exc
                if entry.task in loaded["groups"]:
                    objects.append(loaded["groups"][entry.task])
                else:
                    objects.extend(loaded["tasks"].values())
                leaves[entry.task] = list(loaded["tasks"])
                for leaf, task in loaded["tasks"].items():
                    chosen = select_items(len(task.eval_docs), entry)
                    if chosen is not None:
                        samples[leaf] = chosen
            if samples:
                for entry in entries:
                    for leaf in leaves[entry.task]:
                        samples.setdefault(leaf, list(range(len(docs_of(objects, leaf)))))
            result = self._score(
                lm,
                f"{checkpoint} for suite {suite.name}",
                tasks=objects,
                num_fewshot=num_fewshot,
                samples=samples or None,
                task_manager=tm,
                log_samples=True,
                bootstrap_iters=suite.suite.bootstrap_iters,
                random_seed=suite.suite.seed,
                numpy_random_seed=suite.suite.seed,
                torch_random_seed=suite.suite.seed,
                fewshot_random_seed=suite.suite.seed,
            )
            raw = result
            for entry in entries:
                tasks[entry.task] = task_result(result, entry, leaves[entry.task], num_fewshot)
        return SuiteResult(
            suite_name=suite.name,
            suite_hash=suite.content_hash,
            model_path=str(checkpoint),
            tasks=tasks,
            versions=_versions(raw, batch_size=_batch_size(lm)),
            started_at=started,
            duration_s=time.perf_counter() - t0,
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
            size = _batch_size(lm)
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
        if not is_out_of_memory(exc):
            raise EvaluationError(f"lm-eval failed on {what}: {type(exc).__name__}: {exc}") from exc
        if _batch_size(lm) <= 1:
            raise EvaluationError(
                f"out of memory on {what} at batch size 1 on {self.device} "
                f"({type(exc).__name__}: {exc}); the batch was halved down from "
                f"{self.batch_size} and still does not fit: evaluate it on a device with more "
                "memory"
            ) from exc
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _batch_size(lm: Any) -> int:
    return int(lm.batch_size)


def _set_batch_size(lm: Any, size: int) -> None:
    # HFLM keeps its (fixed) batch size here and reads it at every loglikelihood and
    # generate_until call (lm-eval 0.4); the loaded weights stay where they are.
    lm.batch_size_per_gpu = size


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _versions(result: dict[str, Any], *, batch_size: int) -> Versions:
    import torch
    import transformers

    return Versions(
        lm_eval=str(result.get("lm_eval_version") or "unknown"),
        transformers=str(transformers.__version__),
        torch=str(torch.__version__),
        tripwire=__version__,
        batch_size=batch_size,
    )
