"""lm-eval's built-in tasks, reading their data from Tripwire's local data store.

For the built-in folders a suite needs, the runner gives lm-eval a cached copy in which every
``dataset_path`` naming an imported hub dataset (``cais/mmlu``) names the store's folder
instead. ``datasets`` reads that folder as it would the hub repository (same configurations,
splits and columns), so the tasks run with their own prompts, filters and metrics, offline.
The copy is keyed by the folders' files and the imported data's content hashes.

Which benchmarks a suite needs is read from the task index (each leaf task's ``dataset_path``,
``dataset_name`` and splits), so absent data is reported before any model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from tripwire.benchmarks import DataStore, benchmark_for_dataset
from tripwire.runner.task_index import BuiltinTaskIndex

_DATASET_PATH = re.compile(
    r"""^(?P<key>["']?dataset_path["']?[ \t]*:[ \t]*)(?P<q>["']?)(?P<value>[^"'#\n]+?)(?P=q)"""
    r"""[ \t]*(?P<comment>\#.*)?$""",
    re.MULTILINE,
)


def redirect(text: str, folders: dict[str, Path]) -> str:
    """YAML text with each ``dataset_path`` found in ``folders`` replaced by that folder."""

    def swap(match: re.Match[str]) -> str:
        target = folders.get(match.group("value").strip())
        if target is None:
            return match.group(0)
        return f"{match.group('key')}{json.dumps(str(target))}"

    return _DATASET_PATH.sub(swap, text)


def _stored_folders(store: DataStore) -> tuple[dict[str, Path], str]:
    folders: dict[str, Path] = {}
    digest = hashlib.sha256()
    for manifest in store.manifests():
        digest.update(f"{manifest.benchmark}:{manifest.content_hash}".encode())
        for dataset_path in manifest.dataset_paths:
            folders[dataset_path] = store.dataset_folder(manifest).resolve()
    return folders, digest.hexdigest()


def materialize_builtin(folders: list[Path], store: DataStore, cache_root: Path) -> list[Path]:
    """Copies of built-in task ``folders`` reading imported data from ``store``.

    Returns the folders as they are when nothing was imported that they read.
    """
    stored, data_hash = _stored_folders(store)
    if not stored or not folders:
        return folders
    digest = hashlib.sha256(data_hash.encode())
    for folder in folders:
        digest.update(str(folder).encode())
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(folder)).encode())
                digest.update(str(file.stat().st_mtime_ns).encode())
    target = cache_root / digest.hexdigest()[:20]
    if not target.is_dir():
        cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".staging-"))
        for folder in folders:
            copy = staging / folder.name
            shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__"))
            for file in copy.rglob("*"):
                if (
                    not file.is_file()
                    or file.suffix == ".py"
                    or "dataset_path"
                    not in (text := file.read_text(encoding="utf-8", errors="replace"))
                ):
                    continue
                changed = redirect(text, stored)
                if changed != text:
                    file.write_text(changed, encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:  # another process materialised the same folders first
            shutil.rmtree(staging, ignore_errors=True)
    return [target / folder.name for folder in folders]


def missing_benchmarks(
    names: list[str], index: BuiltinTaskIndex, store: DataStore
) -> dict[str, list[str]]:
    """Importable benchmarks that ``names`` (suite task names) need and the store lacks:
    benchmark -> the names that need it."""
    missing: dict[str, list[str]] = {}
    for name in names:
        for leaf in index.leaves(name):
            data = index.data_of(leaf)
            if data is None:
                continue
            benchmark = benchmark_for_dataset(data["path"])
            if benchmark is None or store.has(data["path"], data["name"], data["splits"]):
                continue
            needed = missing.setdefault(benchmark.name, [])
            if name not in needed:
                needed.append(name)
    return missing


def data_hashes(names: list[str], index: BuiltinTaskIndex, store: DataStore) -> dict[str, str]:
    """Content hash of each imported benchmark that ``names`` read: part of a suite's identity."""
    hashes: dict[str, str] = {}
    for name in names:
        for leaf in index.leaves(name):
            data = index.data_of(leaf)
            benchmark = benchmark_for_dataset(data["path"]) if data else None
            if benchmark is None or benchmark.name in hashes:
                continue
            manifest = store.manifest(benchmark.name)
            if manifest is not None:
                hashes[benchmark.name] = manifest.content_hash
    return hashes


_INDEXES: dict[Path, BuiltinTaskIndex] = {}


def imported_data_hashes(names: list[str], home: Path) -> dict[str, str]:
    """``data_hashes`` with the index cached under ``home`` and the store ``home/data``."""
    from importlib.metadata import PackageNotFoundError, version

    from tripwire.runner.task_index import lm_eval_tasks_root

    store = DataStore(home / "data")
    if not store.manifests():
        return {}
    try:
        cache = (home / "cache" / f"lm_eval_task_index-{version('lm_eval')}.json").resolve()
        root = lm_eval_tasks_root()
    except (PackageNotFoundError, ModuleNotFoundError):
        return {}
    index = _INDEXES.setdefault(cache, BuiltinTaskIndex(root, cache))
    return data_hashes(names, index, store)
