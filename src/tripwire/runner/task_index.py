"""Find which folders of lm-eval's built-in tasks define the names a suite asks for.

lm-eval's ``TaskManager`` indexes every built-in task on construction (about 14,000 YAML files,
12 to 15 s and 150 MB). A suite needs a handful, so Tripwire scans the YAML text once for
``task:``, ``group:`` and ``tag:`` names (about 1 s), caches the name-to-folder map per lm-eval
version, and gives ``TaskManager`` only the folders it needs.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path

_NAME = re.compile(r"^(task|group|tag):[ \t]*([^\s#\[]+)?[ \t]*(?:#.*)?$", re.MULTILINE)
_LIST_ITEM = re.compile(r"^[ \t]+-[ \t]*([^\s#]+)")


def _names_in(text: str) -> set[str]:
    names: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _NAME.match(line)
        if not match:
            continue
        if match.group(2):
            names.add(match.group(2).strip("'\""))
        elif match.group(1) == "tag":
            for follow in lines[i + 1 :]:
                item = _LIST_ITEM.match(follow)
                if not item:
                    break
                names.add(item.group(1).strip("'\""))
    return names


def build_index(tasks_root: Path) -> dict[str, list[str]]:
    """Map every task, group and tag name under ``tasks_root`` to its top-level folders."""
    index: dict[str, set[str]] = defaultdict(set)
    for dirpath, dirnames, filenames in os.walk(tasks_root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for filename in filenames:
            if not filename.endswith(".yaml"):
                continue
            file = Path(dirpath) / filename
            top = file.relative_to(tasks_root).parts[0]
            if top == filename:
                continue
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for name in _names_in(text):
                index[name].add(top)
    return {name: sorted(tops) for name, tops in index.items()}


class BuiltinTaskIndex:
    """Name-to-folder map of lm-eval's built-in tasks, cached on disk per lm-eval version."""

    def __init__(self, tasks_root: Path, cache_file: Path | None) -> None:
        self.tasks_root = tasks_root
        self.cache_file = cache_file
        self._index: dict[str, list[str]] | None = None

    def _load(self) -> dict[str, list[str]]:
        if self._index is not None:
            return self._index
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                cached = json.loads(self.cache_file.read_text())
                if cached.get("root") == str(self.tasks_root):
                    self._index = dict(cached["names"])
                    return self._index
            except (OSError, ValueError, KeyError):
                pass
        self._index = build_index(self.tasks_root)
        if self.cache_file is not None:
            try:
                self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"root": str(self.tasks_root), "names": self._index}))
                os.replace(tmp, self.cache_file)
            except OSError:
                pass
        return self._index

    def folders_for(self, name: str) -> list[Path]:
        """The built-in folders that define ``name``; empty if lm-eval has no such task."""
        return [self.tasks_root / top for top in self._load().get(name, [])]

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """Known names that look like ``name``, for 'did you mean' messages."""
        import difflib

        return difflib.get_close_matches(name, list(self._load()), n=n)
