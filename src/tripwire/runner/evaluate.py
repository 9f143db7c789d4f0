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
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripwire import __version__
from tripwire.errors import (
    CheckpointError,
    EvaluationError,
    SuiteError,
    TripwireError,
    UnsafeCheckpointError,
)
from tripwire.failures import is_out_of_memory, is_transient
from tripwire.offline import enforce_offline
from tripwire.proxies.file import anchored, load_anchor_file
from tripwire.results import SuiteResult, TaskResult, Versions
from tripwire.runner.extract import docs_of, select_items, task_result
from tripwire.runner.task_files import materialize
from tripwire.runner.task_index import BuiltinTaskIndex
from tripwire.sources.layout import TOKENIZER_HELP, list_dir
from tripwire.suites import LoadedSuite, ModelSettings, SuiteTask, anchor_paths

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
        self.responses = responses
        """Cached model answers keyed by the checkpoint's content (``runner.responses``); used
        when ``evaluate`` is given the checkpoint's content hash."""
        self._builtin: BuiltinTaskIndex | None = None

    # ------------------------------------------------------------------ tasks
    def _builtin_index(self) -> BuiltinTaskIndex:
        if self._builtin is None:
            lm_eval = _lm_eval()
            root = Path(lm_eval.tasks.__file__).parent
            cache = None
            if self.cache_dir is not None:
                version = lm_eval.__version__ if hasattr(lm_eval, "__version__") else "unknown"
                cache = self.cache_dir / f"lm_eval_task_index-{version}.json"
            self._builtin = BuiltinTaskIndex(root, cache)
        return self._builtin

    def _custom_dirs(self, suite: LoadedSuite) -> list[Path]:
        if not suite.include_dirs:
            return []
        cache = self.cache_dir or Path(tempfile.gettempdir()) / "tripwire-cache"
        return materialize(suite.include_dirs, cache / "tasks")

    @staticmethod
    def _custom_names(tm: Any) -> set[str]:
        return set(tm.all_tasks) | set(tm.all_groups) | set(tm.all_tags)

    def task_manager(self, suite: LoadedSuite) -> tuple[Any, set[str]]:
        """A TaskManager indexing only the folders this suite's tasks live in.

        Also returns the names the suite's own include folders define.
        """
        lm_eval = _lm_eval()
        TaskManager = lm_eval.tasks.TaskManager
        custom_dirs = self._custom_dirs(suite)
        custom = TaskManager(include_path=[str(d) for d in custom_dirs], include_defaults=False)
        known = self._custom_names(custom)
        builtin_dirs: list[Path] = []
        problems = []
        for i, entry in enumerate(suite.suite.tasks):
            if entry.task in known:
                continue
            folders = self._builtin_index().folders_for(entry.task)
            if not folders:
                hint = self._builtin_index().close_matches(entry.task)
                did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
                problems.append(
                    f"tasks.{i}.task: {entry.task!r} is neither a built-in lm-eval task nor "
                    f"defined under include {[str(p) for p in suite.suite.include]}{did_you_mean}"
                )
            builtin_dirs.extend(f for f in folders if f not in builtin_dirs)
        if problems:
            raise SuiteError(suite.path, problems)
        if not builtin_dirs:
            return custom, known
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
        tm, custom_names = self.task_manager(suite)
        answers: CheckpointAnswers | None = None
        task_ids: dict[str, str] = {}
        if self.responses is not None and content_hash is not None:
            check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
            _lm_eval()
            from tripwire.runner.responses import CachedLM, tokenizer_digest

            # answers differ by the weights, the tokenizer and how the weights are held
            held = settings.model_dump(include={"backend", "dtype", "max_length"})
            held["dtype"] = self.dtype_for(settings)
            identity = f"{content_hash}:{tokenizer_digest(checkpoint)}:{sorted(held.items())}"
            answers = self.responses.open(hashlib.sha256(identity.encode()).hexdigest())
            lm: Any = CachedLM(
                lambda: self.load_model(checkpoint, settings), answers, identity, task_ids
            )
        else:
            lm = self.load_model(checkpoint, settings)
        try:
            result = self._evaluate(checkpoint, suite, tm, custom_names, lm, task_ids)
        finally:
            if answers is not None:
                answers.close()
                assert self.responses is not None
                self.responses.evict(keep=answers.path)
        return result.model_copy(
            update={"started_at": started, "duration_s": time.perf_counter() - t0}
        )

    def _evaluate(
        self,
        checkpoint: Path,
        suite: LoadedSuite,
        tm: Any,
        custom_names: set[str],
        lm: Any,
        task_ids: dict[str, str],
    ) -> SuiteResult:
        started = datetime.now(UTC)
        by_fewshot: dict[int | None, list[SuiteTask]] = defaultdict(list)
        for entry in suite.suite.tasks:
            by_fewshot[entry.num_fewshot].append(entry)
        tasks: dict[str, TaskResult] = {}
        raw: dict[str, Any] = {}
        anchors = {task: load_anchor_file(p) for task, p in anchor_paths(suite).items()}
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
                        else " (built-in benchmarks need their data in the local Hugging Face "
                        "cache, or hub access with TRIPWIRE_ALLOW_HUB=1)"
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
                anchor = anchors.get(entry.task)
                prefixed = entry.task not in leaves[entry.task] or len(leaves[entry.task]) > 1
                for leaf, task in loaded["tasks"].items():
                    if hasattr(lm, "tasks"):
                        task_ids[leaf] = _task_identity(task)
                    chosen = select_items(
                        list(task.eval_docs),
                        entry,
                        anchor_items=None if anchor is None else {a.item for a in anchor.anchors},
                        key_of=_doc_key(leaf if prefixed else None),
                    )
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
                apply_chat_template=suite.suite.model.chat_template,
                system_instruction=suite.suite.model.system_instruction,
                fewshot_as_multiturn=suite.suite.model.fewshot_as_multiturn,
                gen_kwargs=dict(suite.suite.model.generation) or None,
                bootstrap_iters=suite.suite.bootstrap_iters,
                random_seed=suite.suite.seed,
                numpy_random_seed=suite.suite.seed,
                torch_random_seed=suite.suite.seed,
                fewshot_random_seed=suite.suite.seed,
            )
            raw = result
            for entry in entries:
                found = task_result(result, entry, leaves[entry.task], num_fewshot)
                anchor = anchors.get(entry.task)
                tasks[entry.task] = found if anchor is None else anchored(found, anchor)
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
    return int(model.batch_size) if model is not None else None


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


def _doc_key(leaf: str | None) -> Any:
    """The key an item is stored under: lm-eval's document hash, ``leaf:hash`` in a group."""
    from lm_eval.utils import handle_non_serializable, hash_string

    def key(doc: Any) -> str:
        text = json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False)
        return f"{leaf}:{hash_string(text)}" if leaf else str(hash_string(text))

    return key
