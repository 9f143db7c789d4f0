"""Score a checkpoint on a suite with lm-eval."""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tripwire import __version__
from tripwire.errors import CheckpointError, EvaluationError, SuiteError, UnsafeCheckpointError
from tripwire.offline import enforce_offline
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.runner.task_files import materialize
from tripwire.runner.task_index import BuiltinTaskIndex
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
    if any(n.endswith(".safetensors") for n in names):
        return
    if any(n.endswith(PICKLE_SUFFIXES) for n in names):
        if allow_pickle:
            return
        raise UnsafeCheckpointError(
            path,
            "weights are pickle files, which can run code when loaded; convert them to "
            "safetensors, or set TRIPWIRE_ALLOW_PICKLE=1 if you trust their source",
        )
    raise CheckpointError(path, "no weights (*.safetensors) found")


def _lm_eval() -> Any:
    enforce_offline()
    import lm_eval
    import lm_eval.tasks

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    return lm_eval


def _hflm_class(*, quiet: bool) -> Any:
    """lm-eval's ``HFLM``, or a subclass that never draws progress bars (same scores)."""
    from lm_eval.models.huggingface import HFLM

    if not quiet:
        return HFLM

    class QuietHFLM(HFLM):  # type: ignore[misc]
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
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        self.allow_pickle = allow_pickle
        self.cache_dir = cache_dir
        self.progress = progress
        """lm-eval's per-request progress bars; off in workers, whose logs they would flood."""
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

    # ------------------------------------------------------------------ evaluate
    def load_model(self, checkpoint: Path) -> Any:
        """Load a checkpoint into an lm-eval ``HFLM``, safetensors only unless pickle is allowed."""
        check_checkpoint_files(checkpoint, allow_pickle=self.allow_pickle)
        _lm_eval()
        model_class = _hflm_class(quiet=not self.progress)
        try:
            return model_class(
                pretrained=str(checkpoint),
                device=self.device,
                batch_size=self.batch_size,
                trust_remote_code=False,
                use_safetensors=not self.allow_pickle,
            )
        except Exception as exc:  # transformers raises many types for a bad checkpoint
            raise CheckpointError(checkpoint, f"cannot load: {type(exc).__name__}: {exc}") from exc

    def evaluate(self, checkpoint: Path | str, suite: LoadedSuite) -> SuiteResult:
        """Score ``checkpoint`` on every task of ``suite``."""
        checkpoint = Path(checkpoint).resolve()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        tm, custom_names = self.task_manager(suite)
        lm = self.load_model(checkpoint)
        lm_eval = _lm_eval()
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
                for leaf, task in loaded["tasks"].items():
                    chosen = _select(len(task.eval_docs), entry)
                    if chosen is not None:
                        samples[leaf] = chosen
            if samples:
                for entry in entries:
                    for leaf in leaves[entry.task]:
                        samples.setdefault(leaf, list(range(len(_docs(objects, leaf)))))
            try:
                result = lm_eval.simple_evaluate(
                    model=lm,
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
            except Exception as exc:
                raise EvaluationError(
                    f"lm-eval failed on {checkpoint} for suite {suite.name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raw = result
            for entry in entries:
                tasks[entry.task] = _task_result(result, entry, leaves[entry.task], num_fewshot)
        return SuiteResult(
            suite_name=suite.name,
            suite_hash=suite.content_hash,
            model_path=str(checkpoint),
            tasks=tasks,
            versions=_versions(raw),
            started_at=started,
            duration_s=time.perf_counter() - t0,
            seed=suite.suite.seed,
        )


def _docs(objects: list[Any], leaf: str) -> list[Any]:
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


def _select(n_docs: int, entry: SuiteTask) -> list[int] | None:
    """Item indices for a limit or a seeded subset; None for all items."""
    if entry.limit is not None:
        return list(range(min(entry.limit, n_docs)))
    if entry.subset is not None:
        size = min(entry.subset.size, n_docs)
        rng = np.random.default_rng(entry.subset.seed)
        return sorted(int(i) for i in rng.choice(n_docs, size=size, replace=False))
    return None


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


def _task_result(
    result: dict[str, Any], entry: SuiteTask, leaves: list[str], num_fewshot: int | None
) -> TaskResult:
    metric, higher_is_better = _pick_metric(result, entry, leaves)
    doc_hashes: list[str] = []
    values: list[float] = []
    prefix = entry.task not in leaves or len(leaves) > 1
    for leaf in leaves:
        for sample in result["samples"].get(leaf, []):
            if metric not in sample:
                continue
            key = f"{leaf}:{sample['doc_hash']}" if prefix else sample["doc_hash"]
            doc_hashes.append(key)
            values.append(float(sample[metric]))
    scores = result["results"].get(entry.task)
    if scores is None and len(leaves) == 1:
        scores = result["results"].get(leaves[0])
    if scores is not None:
        filter_key = _pick_filter(scores, metric, entry)
        score = float(scores[f"{metric},{filter_key}"])
        stderr_raw = scores.get(f"{metric}_stderr,{filter_key}")
        stderr = float(stderr_raw) if isinstance(stderr_raw, int | float) else None
        arr = np.asarray(values, dtype=float)
        if stderr is None and arr.size > 1 and abs(float(arr.mean()) - score) < 1e-9:
            # lm-eval skips every standard error when bootstrap_iters is 0, even a mean's
            # closed form; this is that closed form (its ``mean_stderr``) over the same items.
            stderr = float(arr.std(ddof=1) / np.sqrt(arr.size))
    else:  # a tag: lm-eval reports no aggregate, so take the mean over all its items
        filter_key = entry.filter or "none"
        arr = np.asarray(values, dtype=float)
        score = float(arr.mean()) if arr.size else float("nan")
        stderr = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else None
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
        items=ItemOutcomes(doc_hashes=doc_hashes, values=values),
    )


def _versions(result: dict[str, Any]) -> Versions:
    import torch
    import transformers

    return Versions(
        lm_eval=str(result.get("lm_eval_version") or "unknown"),
        transformers=str(transformers.__version__),
        torch=str(torch.__version__),
        tripwire=__version__,
    )
