"""Custom task folders with their data paths made absolute.

Custom lm-eval task YAML kept under ``evals/`` names its local data relative to its own folder
(``data_files: {test: ../data/items.jsonl}``), so a suite works from any working directory.
lm-eval would resolve those paths against the working directory, so the runner hands it a copy
of each include folder in which relative ``data_files``, and a ``dataset_path`` naming a local
file or folder relative to the YAML, are rewritten as absolute paths. Every other file
(templates, ``!function`` modules) is copied as it is. The copy is keyed by every file of the
folders (templates, modules and data too), so an edit anywhere gives a new copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml


class _Tagged(str):
    """A YAML scalar with a custom tag (``!function utils.process_docs``), kept verbatim."""

    tag: str


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> _Tagged:
    value = _Tagged(loader.construct_scalar(node))  # type: ignore[arg-type]
    value.tag = "!" + suffix
    return value


def _represent_tagged(dumper: _Dumper, value: _Tagged) -> yaml.Node:
    return dumper.represent_scalar(value.tag, str(value))


_Loader.add_multi_constructor("!", _construct_tagged)
_Dumper.add_representer(_Tagged, _represent_tagged)


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
        return str((base / value).resolve())
    if isinstance(value, list):
        return [_absolute(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v, base) for k, v in value.items()}
    return value


def rewrite_yaml(source: Path) -> str | None:
    """The YAML text with relative data paths made absolute; None if nothing changes."""
    text = source.read_text(encoding="utf-8", errors="replace")
    if "data_files" not in text and "dataset_path" not in text:
        return None
    try:
        config = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return None  # lm-eval will report the syntax error against the original file
    if not isinstance(config, dict):
        return None
    changed = False
    kwargs = config.get("dataset_kwargs")
    if isinstance(kwargs, dict) and "data_files" in kwargs:
        resolved = _absolute(kwargs["data_files"], source.parent)
        if resolved != kwargs["data_files"]:
            kwargs["data_files"] = resolved
            changed = True
    path = config.get("dataset_path")
    if (
        isinstance(path, str)
        and not isinstance(path, _Tagged)
        and not Path(path).is_absolute()
        and (source.parent / path).exists()
    ):
        config["dataset_path"] = str((source.parent / path).resolve())
        changed = True
    if not changed:
        return None
    dumped: str = yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return dumped


_NOT_YAML = {".py", ".jsonl", ".json", ".parquet", ".csv", ".txt", ".md", ".arrow"}


def materialize(include_dirs: list[Path], cache_root: Path) -> list[Path]:
    """Copies of ``include_dirs`` with absolute data paths, cached by their content."""
    digest = hashlib.sha256()
    for folder in include_dirs:
        digest.update(str(folder).encode())
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file).encode())
                digest.update(file.read_bytes())
    target = cache_root / digest.hexdigest()[:20]
    if not target.is_dir():
        cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".staging-"))
        for i, folder in enumerate(include_dirs):
            copy = staging / f"{i}-{folder.name}"
            shutil.copytree(
                folder,
                copy,
                ignore=shutil.ignore_patterns(
                    "__pycache__", "*.jsonl", "*.json", "*.parquet", "*.csv"
                ),
            )
            for file in folder.rglob("*"):
                if not file.is_file() or "__pycache__" in file.parts or file.suffix in _NOT_YAML:
                    continue
                rewritten = rewrite_yaml(file)
                if rewritten is not None:
                    (copy / file.relative_to(folder)).write_text(rewritten, encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:  # another process materialised the same folders first
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for p in target.iterdir() if p.is_dir())
