"""Which folders of lm-eval's built-in tasks define the names a suite asks for.

lm-eval's ``TaskManager`` indexes every built-in task on construction (about 14,000 YAML files,
12 to 15 s and 150 MB). A suite needs a handful, so Tripwire builds the same name index once per
lm-eval version, caches it on disk, and gives ``TaskManager`` only the folders a name needs.

The index follows lm-eval's own rules (``lm_eval.tasks._index.TaskIndex``), without importing
lm-eval: every ``*.yaml`` file in sorted path order is parsed as YAML (keys quoted or not),
``include`` files are merged in, and the result is a task (``task:`` or ``class:``), a group
(``group:``) or neither; a task's ``tag`` (a name or a list) registers tags. The first definition
of a name wins, and a file lm-eval would skip (a YAML error, an include cycle, an unhashable
name) is skipped here. ``tests/runner/test_task_index.py`` compares the result with lm-eval's own
index, name by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

INDEX_SCHEMA_VERSION = 3
"""Bumped when the cached index's layout or rules change."""

_IGNORE_DIRS = {"__pycache__", ".ipynb_checkpoints"}
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """YAML as lm-eval reads it for its index: ``!function`` kept as text, other tags errors."""


def _function(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!function", _function)


class _Entry:
    __slots__ = ("data", "file", "kind", "members")

    def __init__(self, kind: str, file: str | None) -> None:
        self.kind = kind
        """``task``, ``group`` or ``tag``."""
        self.file = file
        """The YAML file that defines it (None for a tag)."""
        self.members: list[str] = []
        """A group's member names, or a tag's tasks."""
        self.data: dict[str, Any] | None = None
        """A task's ``dataset_path``, ``dataset_name`` and the splits it reads."""


class _Parser:
    """Parses each file once and merges includes the way lm-eval's ``load_yaml`` does."""

    def __init__(self) -> None:
        self._raw: dict[str, Any] = {}

    def _parse(self, path: str) -> Any:
        if path not in self._raw:
            try:
                with open(path, "rb") as fh:
                    self._raw[path] = yaml.load(fh, Loader=_Loader)
            except (OSError, yaml.YAMLError, ValueError) as exc:
                self._raw[path] = exc
        return self._raw[path]

    def load(self, path: str, seen: set[str]) -> dict[str, Any]:
        path = os.path.realpath(os.path.expanduser(path))
        if path in seen:
            raise ValueError(f"include cycle at {path}")
        seen.add(path)
        raw = self._parse(path)
        if isinstance(raw, Exception):
            raise ValueError(str(raw))
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping in {path}")
        cfg = dict(raw)
        if "include" not in cfg:
            return cfg
        includes = cfg.pop("include")
        merged: dict[str, Any] = {}
        for inc in includes if isinstance(includes, list) else [includes]:
            inc_path = inc if os.path.isabs(inc) else os.path.join(os.path.dirname(path), inc)
            inc_cfg = self.load(inc_path, seen)
            inc_cfg.pop("task_list", None)
            merged.update(inc_cfg)
        merged.update(cfg)
        return merged


def _yaml_files(root: Path) -> Iterator[Path]:
    yield from sorted(
        (p for p in root.glob("**/*.yaml") if not any(part in _IGNORE_DIRS for part in p.parts)),
        key=lambda p: p.as_posix(),
    )


def _member_names(task_field: Any) -> list[str]:
    if not isinstance(task_field, list):
        return []
    names: list[str] = []
    for item in task_field:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            name = item.get("group", item.get("task"))
            if isinstance(name, str):
                names.append(name)
    return names


def _data_of(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Where a task's items come from: the dataset, its configuration, the splits it reads
    (the evaluation split, then the few-shot one, as lm-eval picks them)."""
    path = cfg.get("dataset_path")
    if not isinstance(path, str):
        return None
    name = cfg.get("dataset_name")
    evaluation = cfg.get("test_split") or cfg.get("validation_split")
    fewshot = cfg.get("fewshot_split") or cfg.get("training_split") or cfg.get("validation_split")
    splits = [s for s in dict.fromkeys([evaluation, fewshot]) if isinstance(s, str)]
    return {"path": path, "name": name if isinstance(name, str) else None, "splits": splits}


def _register(cfg: dict[str, Any], file: str, index: dict[Any, _Entry]) -> None:
    if "class" in cfg or ("group" not in cfg and "task" in cfg):
        name = cfg["task"]
        if name in index:  # the first definition wins (a TypeError if unhashable: skipped)
            return
        entry = _Entry("task", file)
        entry.data = _data_of(cfg)
        index[name] = entry
        tags = cfg.get("tag")
        if not tags:
            return
        for tag in tags if isinstance(tags, list) else [tags]:
            index.setdefault(tag, _Entry("tag", None)).members.append(name)
    elif "group" in cfg:
        name = cfg["group"]
        if name in index:
            return
        entry = _Entry("group", file)
        entry.members = _member_names(cfg.get("task"))
        index[name] = entry
    else:
        raise ValueError("neither task nor group")


def build_index(tasks_root: Path) -> dict[str, dict[str, Any]]:
    """Every task, group and tag name under ``tasks_root``, as lm-eval's index has them.

    Each maps to ``{"kind", "folder", "members"}``: the top-level folder (relative to
    ``tasks_root``; empty for a tag) and the names it is made of (a group's members, a tag's
    tasks).
    """
    parser = _Parser()
    index: dict[Any, _Entry] = {}
    for file in _yaml_files(tasks_root):
        try:
            cfg = parser.load(str(file), set())
            _register(cfg, str(file), index)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    out: dict[str, dict[str, Any]] = {}
    for name, entry in index.items():
        if not isinstance(name, str):
            continue
        folder = ""
        if entry.file is not None:
            folder = Path(entry.file).relative_to(tasks_root).parts[0]
        out[name] = {
            "kind": entry.kind,
            "folder": folder,
            "members": entry.members,
            "data": entry.data,
        }
    return out


class BuiltinTaskIndex:
    """Name index of lm-eval's built-in tasks, cached on disk per lm-eval version."""

    def __init__(self, tasks_root: Path, cache_file: Path | None) -> None:
        self.tasks_root = tasks_root
        self.cache_file = cache_file
        self._index: dict[str, dict[str, Any]] | None = None

    def names(self) -> dict[str, dict[str, Any]]:
        """Every name lm-eval knows, with its kind, folder and members."""
        if self._index is not None:
            return self._index
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                cached = json.loads(self.cache_file.read_text())
                if cached.get("schema_version") == INDEX_SCHEMA_VERSION and cached.get(
                    "root"
                ) == str(self.tasks_root):
                    self._index = dict(cached["names"])
                    return self._index
            except (OSError, ValueError, KeyError):
                pass
        self._index = build_index(self.tasks_root)
        if self.cache_file is not None:
            try:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
                body = {
                    "schema_version": INDEX_SCHEMA_VERSION,
                    "root": str(self.tasks_root),
                    "names": self._index,
                }
                tmp.write_text(json.dumps(body))
                os.replace(tmp, self.cache_file)
            except OSError:
                pass
        return self._index

    def knows(self, name: str) -> bool:
        return name in self.names()

    def _walk(self, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``name`` and its members, recursively, depth first in the order they are listed;
        each known name once."""
        names = self.names()
        stack, seen = [name], set()
        while stack:
            current = stack.pop()
            if current in seen or current not in names:
                continue
            seen.add(current)
            entry = names[current]
            yield current, entry
            stack.extend(reversed(entry["members"]))

    def folder_names(self, name: str) -> list[str]:
        """The top-level folders ``name`` needs: its own and its members', recursively."""
        return sorted({entry["folder"] for _, entry in self._walk(name) if entry["folder"]})

    def leaves(self, name: str) -> list[str]:
        """The tasks ``name`` runs: itself, or its members' tasks, recursively."""
        return [current for current, entry in self._walk(name) if entry["kind"] == "task"]

    def data_of(self, task: str) -> dict[str, Any] | None:
        """A task's ``{"path", "name", "splits"}`` (its dataset), if its YAML names one."""
        entry = self.names().get(task)
        return None if entry is None else entry.get("data")

    def folders_for(self, name: str) -> list[Path]:
        """The built-in folders that define ``name``; empty if lm-eval has no such name."""
        return [self.tasks_root / top for top in self.folder_names(name)]

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """Known names that look like ``name``, for 'did you mean' messages."""
        import difflib

        return difflib.get_close_matches(name, list(self.names()), n=n)


def lm_eval_tasks_root() -> Path:
    """lm-eval's built-in task folder, found without importing lm-eval."""
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lm_eval is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"
