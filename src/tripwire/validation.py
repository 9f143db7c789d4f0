"""Load YAML config files into pydantic models with errors a person can act on.

A bad file gives one line per problem: the file, the line, the field path, the bad value and
what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tripwire.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

Problem = tuple[tuple[int | str, ...], str]
"""A problem found after validation: the field path and what is wrong."""


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _value in node.value:
        lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
    mapping_with_lines = _LinedDict(mapping)
    mapping_with_lines.lines = lines
    mapping_with_lines.start_line = node.start_mark.line + 1
    return mapping_with_lines


class _LinedDict(dict[Any, Any]):
    lines: dict[Any, int]
    start_line: int


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _locate(data: Any, loc: tuple[int | str, ...]) -> tuple[str, int | None]:
    """The field path as the user wrote it, and the line of the deepest key found.

    Pydantic puts a discriminated union's tag into the location (``rules.0.delta.mode``); a
    part that is not a key of the mapping at that point is such a tag and is left out, except
    for the last part (a missing field).
    """
    line: int | None = None
    node = data
    shown: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(node, _LinedDict):
            if node.get("type") == part and (i < len(loc) - 1 or part not in node):
                continue  # a discriminated union's tag (also when it ends the path: an error
                # of the whole tagged model), unless it is also a field name (level)
            if part in node:
                line = node.lines.get(part, line)
                node = node[part]
                shown.append(str(part))
            elif i == len(loc) - 1:
                shown.append(str(part))
            continue
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, _LinedDict):
                line = node.start_line
            shown.append(str(part))
            continue
        shown.append(str(part))
        node = None
    return ".".join(shown) or "(top level)", line


def _describe(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if error.get("type") == "union_tag_not_found":
        return f"{error['msg']}: give the {ctx.get('discriminator', 'type')} field"
    expected = ctx.get("expected")
    if expected and str(expected) not in error["msg"]:
        return f"{error['msg']}; allowed: {expected}"
    return str(error["msg"])


MAX_BYTES = 1_000_000
"""Policies and suites are small; a larger file is refused before it is parsed."""
MAX_NODES = 100_000
"""Nodes the document may expand to once every alias is followed (a "billion laughs" of nested
aliases is a few hundred bytes that expand to billions of nodes)."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """How many nodes ``node`` stands for with every alias expanded (each shared node counted
    each time it is used), stopping as soon as ``limit`` is passed."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a node that contains itself expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, memo, limit)
        if total > limit:
            break
    memo[key] = total
    return total


def read_yaml(path: Path, error_cls: type[ConfigError] = ConfigError) -> Any:
    """Parse a YAML file, raising ``error_cls`` naming the file and line on a syntax error.

    Files over ``MAX_BYTES``, and documents whose aliases expand to more than ``MAX_NODES``
    nodes, are refused before anything is built from them.
    """
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error_cls(
                path, [f"{size:,} bytes: larger than any policy or suite ({MAX_BYTES:,} at most)"]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error_cls(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}, MAX_NODES) > MAX_NODES:
                raise error_cls(
                    path,
                    [
                        f"its aliases expand to more than {MAX_NODES:,} values (nested YAML "
                        "aliases, a 'billion laughs'); write the values out or use fewer aliases"
                    ],
                )
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise error_cls(path, [f"{where}not valid YAML: {exc}"]) from exc


def load_model(path: Path, model: type[ModelT], error_cls: type[ConfigError]) -> ModelT:
    """Read ``path`` and validate it as ``model``; every problem is reported at once."""
    return read_and_validate(path, model, error_cls)[0]


def problem_at(data: Any, loc: tuple[int | str, ...], message: str) -> str:
    """A problem found after validation, as one line: line, field path, message, bad value."""
    field, line = _locate(data, loc)
    where = f"line {line}: " if line else ""
    value = _value_at(data, loc)
    shown = "" if value is None or isinstance(value, Mapping | list) else f" (got {value!r})"
    return f"{where}{field}: {message}{shown}"


def _value_at(data: Any, loc: tuple[int | str, ...]) -> Any:
    node = data
    for part in loc:
        if not isinstance(node, dict | list):
            return None
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def read_and_validate(
    path: Path,
    model: type[ModelT],
    error_cls: type[ConfigError],
    context: dict[str, Any] | None = None,
) -> tuple[ModelT, Any]:
    """Read ``path`` and validate it as ``model``; return the model and the parsed YAML.

    The YAML remembers the line of every key, for :func:`problem_at`.
    """
    data = read_yaml(path, error_cls)
    if not isinstance(data, dict):
        raise error_cls(path, [f"expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return model.model_validate(data, context={"path": path, **(context or {})}), data
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field, line = _locate(data, tuple(err["loc"]))
            where = f"line {line}: " if line else ""
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            problems.append(f"{where}{field}: {_describe(err)}{shown}")
        raise error_cls(path, problems) from None
