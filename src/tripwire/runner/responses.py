"""Model answers cached by what determines them, never by a model's name or path.

lm-eval's own ``use_cache`` keys a request by its text alone, so an overwritten checkpoint
would be served the old weights' answers. Here an answer's key is the checkpoint's content
hash (weights and config) with a digest of its tokenizer files, the task's identity (its name,
version and a hash of its full configuration: prompts, filters, generation settings, few-shot
settings), the request type and arguments, and the request's occurrence among identical ones
(so the k samples of a repeated, sampled request stay k answers). Each checkpoint's answers
live in one SQLite file under ``<home>/cache/responses``; the folder is bounded
(``TRIPWIRE_RESPONSE_CACHE_MAX_GB``) and the checkpoints used longest ago are evicted first.

``CachedLM`` answers what the cache holds and loads the model only for what it lacks: a
re-evaluation of the same weights never loads them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from lm_eval.api.model import LM

from tripwire.runner.response_store import CheckpointAnswers

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def _stable(value: Any) -> Any:
    """A JSON-safe, process-independent stand-in for what ``json`` cannot write: functions
    (``!function`` hooks) by their module, name and source, never by their address."""
    if callable(value):
        name = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        return f"{name}#{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return str(value)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_stable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_WHERE_DATA_LIVES = ("dataset_path", "dataset_kwargs")
"""Left out of a task's identity, with ``metadata.config_source``: where its data and YAML files
are (a suite's include folder is copied to a folder named by its content, so these change
whenever any file of the folder does). What the data says reaches the key through the requests
themselves."""


def task_identity(task: Any) -> str:
    """A hash of a loaded lm-eval task's version and configuration (prompts, few-shot settings,
    filters, generation settings, metrics), less where its data files lie."""
    config = task.config.to_dict() if hasattr(task.config, "to_dict") else dict(task.config)
    config = {k: v for k, v in config.items() if k not in _WHERE_DATA_LIVES}
    if isinstance(config.get("metadata"), dict):  # lm-eval notes the YAML file's path here
        config["metadata"] = {k: v for k, v in config["metadata"].items() if k != "config_source"}
    version = getattr(task, "VERSION", None)
    if version is None and isinstance(config.get("metadata"), dict):
        version = config["metadata"].get("version")
    return _digest({"version": version, "config": config})


class CachedLM(LM):  # type: ignore[misc]
    """An lm-eval model that answers from the cache and loads the real one only on a miss."""

    def __init__(
        self,
        load: Callable[[], Any],
        answers: CheckpointAnswers,
        identity: str,
        tasks: dict[str, str],
    ) -> None:
        super().__init__()
        self._load = load
        self._model: Any = None
        self.answers = answers
        self.identity = identity
        """The checkpoint's content hash with its tokenizer digest."""
        self.tasks = tasks
        """Task name to ``task_identity``."""
        self.hits = 0
        self.misses = 0

    @property
    def model(self) -> Any:
        """The real lm-eval model, loaded on first need."""
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _keys(self, kind: str, requests: list[Any]) -> list[str]:
        seen: Counter[str] = Counter()
        keys = []
        for request in requests:
            task = getattr(request, "task_name", None)
            base = _digest(
                [self.identity, task, self.tasks.get(str(task), ""), kind, list(request.args)]
            )
            keys.append(f"{base}:{seen[base]}")
            seen[base] += 1
        return keys

    def _answer(self, kind: str, requests: list[Any], **kwargs: Any) -> list[Any]:
        keys = self._keys(kind, requests)
        found = self.answers.get(keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            fresh = getattr(self.model, kind)([requests[i] for i in missing], **kwargs)
            new = {keys[i]: _jsonable(answer) for i, answer in zip(missing, fresh, strict=True)}
            self.answers.put(new)
            found.update(new)
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return [_answer_of(kind, found[key]) for key in keys]

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("loglikelihood", requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("loglikelihood_rolling", requests, disable_tqdm=disable_tqdm)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._answer("generate_until", requests, disable_tqdm=disable_tqdm)

    @property
    def tokenizer_name(self) -> str:
        return str(self.model.tokenizer_name)

    def apply_chat_template(self, chat_history: Any, add_generation_prompt: bool = True) -> Any:
        return self.model.apply_chat_template(chat_history, add_generation_prompt)

    def chat_template(self, chat_template: bool | str = False) -> Any:
        return self.model.chat_template(chat_template) if chat_template else None


def _jsonable(answer: Any) -> Any:
    return list(answer) if isinstance(answer, tuple) else answer


def _answer_of(kind: str, stored: Any) -> Any:
    # loglikelihood answers are (logprob, is_greedy) tuples, which JSON keeps as lists
    if kind == "loglikelihood" and isinstance(stored, list):
        return (float(stored[0]), bool(stored[1]))
    return stored
