"""The benchmarks ``tripwire data import`` reads, the public file layouts it recognises, and the
hub datasets (as lm-eval's task YAML names them in ``dataset_path``) each one stands in for."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

Reader = Literal["native", "text_csv", "mmlu_csv", "arc_jsonl"]
"""How a file is read: ``native`` already has the hub copy's columns (parquet, JSON, JSONL, or
a CSV with a header); ``text_csv`` a CSV with a header whose every column is text (GPQA: an
answer column of numbers only would otherwise be read as integers, which lm-eval's GPQA
processing cannot strip); ``mmlu_csv`` is the original MMLU release (no header: question, four
choices, answer letter); ``arc_jsonl`` is AI2's original ARC release (``question.stem``)."""

Located = tuple[str, str, Reader]
"""(dataset configuration, split, reader) of one file."""

SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
_SPLIT_WORDS = {
    "test": "test",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "dev": "dev",
    "train": "train",
}


def _split_of(stem: str) -> str | None:
    for word in re.split(r"[-_.\s]+", stem.lower()):
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return None


def _words(rel: PurePosixPath) -> list[str]:
    return [p.lower() for p in rel.parts]


def _mmlu(rel: PurePosixPath) -> Located | None:
    stem = rel.name.split(".", 1)[0]
    if rel.suffix == ".csv":  # data/test/abstract_algebra_test.csv
        match = re.fullmatch(r"(.+)_(dev|val|test)", stem)
        if match is None:
            return None
        return match.group(1), _SPLIT_WORDS[match.group(2)], "mmlu_csv"
    # hub copy: abstract_algebra/test-00000-of-00001.parquet (or .json/.jsonl)
    split = _split_of(stem)
    if split is None or len(rel.parts) < 2:
        return None
    config = rel.parts[-2]
    if config in ("all", "auxiliary_train") or split not in ("test", "validation", "dev"):
        return None
    return config, split, "native"


def _gpqa(rel: PurePosixPath) -> Located | None:
    match = re.fullmatch(r"gpqa_(diamond|main|extended|experts)", rel.name.split(".", 1)[0])
    if match is None:
        return None
    return f"gpqa_{match.group(1)}", "train", "text_csv"


def _arc(rel: PurePosixPath) -> Located | None:
    words = "/".join(_words(rel))
    config = "ARC-Challenge" if "challenge" in words else "ARC-Easy" if "easy" in words else None
    split = _split_of(rel.name.split(".", 1)[0])
    split = "validation" if split == "dev" else split  # AI2's release calls it Dev
    if config is None or split not in ("train", "validation", "test"):
        return None
    # AI2's release: ARC-Challenge-Test.jsonl with question.stem; the hub copy: parquet
    reader: Reader = (
        "arc_jsonl" if re.match(r"arc-(challenge|easy)-", rel.name.lower()) else "native"
    )
    return config, split, reader


def _hellaswag(rel: PurePosixPath) -> Located | None:
    split = _split_of(rel.name.split(".", 1)[0])
    if split not in ("train", "validation", "test"):
        return None
    return "default", split, "native"


def _gsm8k(rel: PurePosixPath) -> Located | None:
    split = _split_of(rel.name.split(".", 1)[0])
    if split not in ("train", "test"):
        return None
    config = "socratic" if "socratic" in "/".join(_words(rel)) else "main"
    return config, split, "native"


def _wmdp(rel: PurePosixPath) -> Located | None:
    words = "/".join(_words(rel))
    for domain in ("bio", "chem", "cyber"):
        if re.search(rf"(^|[^a-z]){domain}([^a-z]|$)", words):
            return f"wmdp-{domain}", "test", "native"
    return None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark ``tripwire data import`` can read."""

    name: str
    dataset_paths: tuple[str, ...]
    """The hub datasets lm-eval's tasks name for it (``dataset_path``)."""
    tasks: str
    """Some lm-eval task names that read it."""
    layouts: str
    """The public layouts read, for help texts and docs."""
    locate: Callable[[PurePosixPath], Located | None]


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "mmlu",
            ("cais/mmlu", "hails/mmlu_no_train"),
            "mmlu, mmlu_<subject>",
            "the original CSV folders data/{dev,val,test}/<subject>_{dev,val,test}.csv, or "
            "the hub copy cais/mmlu: <subject>/{test,validation,dev}-*.parquet (or .json/.jsonl)",
            _mmlu,
        ),
        Benchmark(
            "gpqa",
            ("Idavidrein/gpqa",),
            "gpqa_diamond_zeroshot, gpqa_main_n_shot, ...",
            "the release's CSV files gpqa_{diamond,main,extended,experts}.csv",
            _gpqa,
        ),
        Benchmark(
            "arc",
            ("allenai/ai2_arc", "ai2_arc"),
            "arc_challenge, arc_easy",
            "the hub copy allenai/ai2_arc: ARC-{Challenge,Easy}/{train,validation,test}-*.parquet "
            "(or .jsonl), or AI2's ARC-{Challenge,Easy}-{Train,Dev,Test}.jsonl",
            _arc,
        ),
        Benchmark(
            "hellaswag",
            ("Rowan/hellaswag", "hellaswag"),
            "hellaswag",
            "the hub copy Rowan/hellaswag or the release: files whose name says train, "
            "validation/val or test (hellaswag_val.jsonl, validation-*.parquet)",
            _hellaswag,
        ),
        Benchmark(
            "gsm8k",
            ("openai/gsm8k", "gsm8k"),
            "gsm8k, gsm8k_cot, ...",
            "the hub copy openai/gsm8k: main/{train,test}-*.parquet, or the release's "
            "{train,test}.jsonl (socratic when the path says so)",
            _gsm8k,
        ),
        Benchmark(
            "wmdp",
            ("cais/wmdp",),
            "wmdp_bio, wmdp_chem, wmdp_cyber",
            "the hub copy cais/wmdp: wmdp-{bio,chem,cyber}/test-*.parquet (or .json/.jsonl)",
            _wmdp,
        ),
    )
}


def benchmark_for_dataset(dataset_path: str) -> Benchmark | None:
    """The importable benchmark a task's ``dataset_path`` names, if any."""
    for benchmark in BENCHMARKS.values():
        if dataset_path in benchmark.dataset_paths:
            return benchmark
    return None
