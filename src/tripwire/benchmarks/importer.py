"""``tripwire data import BENCHMARK PATH``: read public files into the local data store.

Files are matched to a dataset configuration and split by their path (``specs``), read with
``datasets`` (parquet, JSON, JSONL, CSV) or converted from an original release's columns to the
hub copy's, and written as ``<config>/<split>.parquet`` in the benchmark's store folder. A new
import of a configuration and split replaces the old one; other configurations stay.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from tripwire.benchmarks.specs import BENCHMARKS, SUFFIXES, Benchmark, Reader
from tripwire.benchmarks.store import DataStore, Manifest
from tripwire.errors import DataError

_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def _benchmark(name: str) -> Benchmark:
    spec = BENCHMARKS.get(name.lower())
    if spec is None:
        raise DataError(f"unknown benchmark {name!r}; importable: {', '.join(BENCHMARKS)}")
    return spec


def _located(spec: Benchmark, source: Path) -> dict[tuple[str, str, Reader], list[Path]]:
    if source.is_file():
        files, base = [source], source.parent
    else:
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        base = source
    found: dict[tuple[str, str, Reader], list[Path]] = defaultdict(list)
    for file in files:
        where = spec.locate(PurePosixPath(file.relative_to(base).as_posix()))
        if where is not None:
            found[where].append(file)
    return found


def _read_native(files: list[Path], cache: Path, *, text: bool = False) -> Any:
    import datasets

    parts = []
    for suffix in sorted({f.suffix for f in files}):
        chosen = [str(f) for f in files if f.suffix == suffix]
        options: dict[str, Any] = {}
        if text and suffix == ".csv":
            options["features"] = _text_features(files[0])
        parts.append(
            datasets.load_dataset(
                _BUILDERS[suffix],
                data_files=chosen,
                split="train",
                cache_dir=str(cache),
                **options,
            )
        )
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _text_features(file: Path) -> Any:
    """Every column of a CSV file's header as text."""
    import csv

    import datasets

    with file.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return datasets.Features({column: datasets.Value("string") for column in header})


def _read_mmlu_csv(files: list[Path], subject: str) -> Any:
    import csv

    import datasets

    rows: dict[str, list[Any]] = {"question": [], "subject": [], "choices": [], "answer": []}
    for file in files:
        with file.open(newline="", encoding="utf-8") as fh:
            for line, record in enumerate(csv.reader(fh), start=1):
                if len(record) != 6:
                    raise DataError(
                        f"{file}:{line}: MMLU CSV rows have 6 columns (question, A, B, C, D, "
                        f"answer letter); this one has {len(record)}"
                    )
                question, a, b, c, d, answer = record
                letter = answer.strip().upper()
                if letter not in ("A", "B", "C", "D"):
                    raise DataError(f"{file}:{line}: answer {answer!r} is not one of A, B, C, D")
                rows["question"].append(question)
                rows["subject"].append(subject)
                rows["choices"].append([a, b, c, d])
                rows["answer"].append("ABCD".index(letter))
    return datasets.Dataset.from_dict(rows)


def _read_arc_jsonl(files: list[Path]) -> Any:
    import datasets

    rows: dict[str, list[Any]] = {"id": [], "question": [], "choices": [], "answerKey": []}
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            choices = item["question"]["choices"]
            rows["id"].append(item["id"])
            rows["question"].append(item["question"]["stem"])
            rows["choices"].append(
                {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]}
            )
            rows["answerKey"].append(item["answerKey"])
    return datasets.Dataset.from_dict(rows)


def import_benchmark(name: str, source: Path, store: DataStore, *, now: datetime) -> Manifest:
    """Read ``source`` (a file or a folder) into the store's folder for ``name``."""
    spec = _benchmark(name)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    found = _located(spec, source)
    if not found:
        raise DataError(
            f"no {spec.name} files found in {source}; expected {spec.layouts}, "
            f"as {', '.join(SUFFIXES)}"
        )
    folder = store.folder(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".import-"))
    try:
        written: dict[tuple[str, str], Any] = {}
        for (config, split, reader), files in sorted(found.items()):
            if reader == "mmlu_csv":
                dataset = _read_mmlu_csv(files, config)
            elif reader == "arc_jsonl":
                dataset = _read_arc_jsonl(files)
            else:
                dataset = _read_native(files, staging / ".cache", text=reader == "text_csv")
            key = (config, split)
            if key in written:
                import datasets

                dataset = datasets.concatenate_datasets([written[key], dataset])
            written[key] = dataset
        for (config, split), dataset in written.items():
            if len(dataset) == 0:
                raise DataError(f"{source}: {spec.name} {config} {split} has no items")
            (staging / config).mkdir(exist_ok=True)
            dataset.to_parquet(str(staging / config / f"{split}.parquet"))
        for config, split in written:
            (folder / config).mkdir(exist_ok=True)
            (staging / config / f"{split}.parquet").replace(folder / config / f"{split}.parquet")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot read {spec.name} from {source}: {type(exc).__name__}: {exc} "
            f"(expected {spec.layouts})"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = store.manifest(spec.name) or Manifest(
        benchmark=spec.name, dataset_paths=list(spec.dataset_paths)
    )
    manifest.sources = [*manifest.sources, str(source.resolve())]
    manifest.imported_at = now
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return store.write_index(spec.name)
