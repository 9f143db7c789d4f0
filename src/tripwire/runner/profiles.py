"""Elicitation profiles on lm-eval's own machinery: task variants, ``repeats`` and filters.

A profile becomes an lm-eval task config: the task (or its ``variant``) as lm-eval resolved it,
with ``repeats`` for samples, sampling settings in ``generation_kwargs``, and each of the task's
filter pipelines ending in lm-eval's ``majority_vote`` (self-consistency) or in
``tripwire_best_of_n`` (best-of-n: the first sample the task's own answer check accepts, after
the task's own answer extraction). Scores, items and answers then come from lm-eval as for any
task. The best profile's row becomes the task's score; ``Elicitation`` keeps them all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tripwire.errors import EvaluationError
from tripwire.results import Elicitation, TaskResult
from tripwire.suites import PROFILE_SEPARATOR, Profile, SuiteTask

DEFAULT_SAMPLING_TEMPERATURE = 0.7


_REGISTERED = False


def register_filters() -> None:
    """Register ``tripwire_best_of_n`` with lm-eval (once; lm-eval imported only here)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from lm_eval.api.filter import Filter
    from lm_eval.api.registry import register_filter

    class BestOfNFilter(Filter):  # type: ignore[misc]
        """Keeps the first sample whose answer equals the item's target, else the first."""

        def __init__(self, target: Callable[[Any], Any] | None = None) -> None:
            self.target = target

        def apply(self, resps: Iterable[list[Any]], docs: Iterable[Any]) -> list[list[Any]]:
            chosen = []
            for samples, doc in zip(resps, docs, strict=True):
                samples = list(samples)
                want = _normal(self.target(doc)) if self.target is not None else None
                hit = next((s for s in samples if want is not None and _normal(s) == want), None)
                chosen.append([hit if hit is not None else samples[0]])
            return chosen

    register_filter("tripwire_best_of_n")(BestOfNFilter)
    _REGISTERED = True


def _normal(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip().lower()


def _pipelines(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's filter pipelines, each without its trailing ``take_first``."""
    found = config.get("filter_list") or [{"name": "none", "filter": [{"function": "take_first"}]}]
    pipelines = []
    for pipeline in found:
        steps = [dict(step) for step in pipeline["filter"]]
        while steps and steps[-1].get("function") == "take_first":
            steps.pop()
        pipelines.append({"name": pipeline["name"], "filter": steps})
    return pipelines


def profile_spec(task: Any, profile: Profile) -> dict[str, Any]:
    """The lm-eval task config of ``profile`` over the loaded task ``task``."""
    register_filters()
    config: dict[str, Any] = task.config.to_dict(keep_callable=True)
    if profile.samples > 1:
        if config.get("output_type") != "generate_until":
            raise EvaluationError(
                f"profile {profile.name}: {profile.samples} samples need a generative task; "
                f"{config.get('task')} is {config.get('output_type')} (its answers do not vary)"
            )
        config["repeats"] = profile.samples
        tail: dict[str, Any] = (
            {"function": "majority_vote"}
            if profile.select == "majority"
            else {"function": "tripwire_best_of_n", "target": task.doc_to_target}
        )
        config["filter_list"] = [
            {"name": p["name"], "filter": [*p["filter"], tail, {"function": "take_first"}]}
            for p in _pipelines(config)
        ]
    generation = dict(config.get("generation_kwargs") or {})
    temperature = profile.temperature
    if temperature is None and profile.samples > 1:
        temperature = DEFAULT_SAMPLING_TEMPERATURE
    if temperature is not None:
        generation["temperature"] = temperature
        generation["do_sample"] = temperature > 0
    generation.update(profile.generation)
    if generation and config.get("output_type") == "generate_until":
        config["generation_kwargs"] = generation
    return config


def profile_entry(entry: SuiteTask, profile: Profile) -> SuiteTask:
    """The suite entry a profile is scored as (its variant's name, its own shots)."""
    return entry.model_copy(
        update={
            "task": profile.variant or entry.task,
            "num_fewshot": profile.num_fewshot
            if profile.num_fewshot is not None
            else entry.num_fewshot,
            "profiles": None,
        }
    )


def row_name(entry: SuiteTask, profile: Profile) -> str:
    return f"{entry.task}{PROFILE_SEPARATOR}{profile.name}"


def parameter_count(checkpoint: Path) -> int | None:
    """Parameters in the checkpoint's safetensors files, from their headers (no weights read)."""
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    try:
        for file in files:
            with file.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if size <= 0 or size > 100 * 1024 * 1024:
                    return None
                header = json.loads(handle.read(size))
            for name, tensor in header.items():
                if name != "__metadata__":
                    total += math.prod(tensor["shape"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not readable here; loading the model says what is wrong with it
    return total


def inference_tokens(
    result: dict[str, Any], leaves: list[str], count: Callable[[str], int], repeats: int
) -> int:
    """Tokens the model read and wrote for these leaves: every request's context (and its
    continuation, for log-likelihoods) once per sample, and every generated answer."""
    total = 0
    for leaf in leaves:
        for sample in result.get("samples", {}).get(leaf, []):
            for argument in sample.get("arguments", []):
                parts = argument if isinstance(argument, list | tuple) else [argument]
                text = "".join(p for p in parts if isinstance(p, str))
                total += count(text) * repeats
            for responses in sample.get("resps", []):
                for response in responses if isinstance(responses, list) else [responses]:
                    if isinstance(response, str):
                        total += count(response)
    return total


def best_over(entry: SuiteTask, rows: dict[str, TaskResult]) -> TaskResult:
    """The task's own row: the best profile's scores, with every profile's score and the gap."""
    assert entry.profiles
    names = [p.name for p in entry.profiles]
    by_profile = {name: rows[f"{entry.task}{PROFILE_SEPARATOR}{name}"] for name in names}
    default = by_profile[names[0]]
    sign = 1.0 if default.higher_is_better else -1.0
    best_name = max(names, key=lambda n: (sign * by_profile[n].score, -names.index(n)))
    best = by_profile[best_name]
    elicitation = Elicitation(
        default=names[0],
        best=best_name,
        scores={n: r.score for n, r in by_profile.items()},
        gap=sign * (best.score - default.score),
        inference_flop={n: r.inference_flop for n, r in by_profile.items()},
    )
    return best.model_copy(
        update={
            "task": entry.task,
            "profile": best_name,
            "elicitation": elicitation,
            "alert_level": entry.alert_level,
            "critical_level": entry.critical_level,
        }
    )
