"""Synthetic skills for the demo: training text and 4-choice evaluation items.

Each skill is a small arithmetic or string task written as ``<question><answer>``, for example
``"12+34=46"``. The question always ends with ``=`` and the answer follows with no space, so the
lm-eval tasks use an empty ``target_delimiter``.

Every skill enumerates its whole operand space and splits it, once and for all, into a training
part and a held-out part by a keyed hash of the operands (commutative operands are keyed as an
unordered pair, so ``12+34`` and ``34+12`` fall on the same side). The split does not depend on
any seed: evaluation items are held out whatever seed trains the model. Seeds only choose which
held-out items are asked, the order of choices and the distractors.

Proxy skills are cheap and general (``addition``, ``comparison``, ``successor``); deep skills stand
for the risk domain of the deep suite (``subtraction``). The same training run learns all of them,
at different speeds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

__all__ = [
    "ALPHABET",
    "DEEP_SKILLS",
    "HELD_OUT_PERCENT",
    "PROXY_SKILLS",
    "SKILLS",
    "EvalItem",
    "Skill",
    "eval_items",
    "eval_jsonl_bytes",
    "is_held_out",
    "training_corpus",
    "training_examples",
    "write_eval_data",
]

SkillRole = Literal["proxy", "deep"]
Operands = tuple[int, ...]

#: Every character any skill can produce. The demo tokenizer has one token per character.
ALPHABET = "0123456789+-= abcdefghijklmnopqrstuvwxyz\n"

#: Share of each skill's operand space held out for evaluation (never trained on).
HELD_OUT_PERCENT = 20

_SPLIT_SALT = "tripwire-demo-split-v1"
_N_CHOICES = 4


class EvalItem(TypedDict):
    """One 4-choice evaluation item, as written to ``<skill>.jsonl``."""

    question: str
    choices: list[str]
    answer: int


@dataclass(frozen=True)
class Skill:
    """A synthetic skill: its operand space, how to write an example, and its distractors."""

    name: str
    role: SkillRole
    description: str
    operand_space: Callable[[], Iterable[Operands]]
    render: Callable[[Operands], tuple[str, str]]
    distractors: Callable[[Operands, random.Random], list[str]]
    split_key: Callable[[Operands], Operands]


# ----------------------------------------------------------------------------- distractors


def _near_numbers(
    answer: int,
    offsets: Sequence[int],
    rng: random.Random,
    *,
    exclude: Iterable[int] = (),
    low: int = 0,
    high: int | None = None,
    n: int = _N_CHOICES - 1,
) -> list[int]:
    """Pick ``n`` distinct numbers near ``answer``, preferring ones with the same digit count.

    Same-length distractors keep the length of the choice from giving the answer away.
    """
    banned = {answer, *exclude}
    candidates = sorted(
        {answer + d for d in offsets if answer + d >= low and (high is None or answer + d <= high)}
        - banned
    )
    same_len = [c for c in candidates if len(str(c)) == len(str(answer))]
    other_len = [c for c in candidates if len(str(c)) != len(str(answer))]
    picked = rng.sample(same_len, min(n, len(same_len)))
    if len(picked) < n:
        picked += rng.sample(other_len, n - len(picked))
    return picked


_ARITH_OFFSETS = (-11, -10, -9, -2, -1, 1, 2, 9, 10, 11)


def _sum_distractors(ops: Operands, rng: random.Random) -> list[str]:
    return [str(x) for x in _near_numbers(sum(ops), _ARITH_OFFSETS, rng)]


def _difference_distractors(ops: Operands, rng: random.Random) -> list[str]:
    a, b = ops
    return [str(x) for x in _near_numbers(a - b, _ARITH_OFFSETS, rng)]


def _max_distractors(ops: Operands, rng: random.Random) -> list[str]:
    hi, lo = max(ops), min(ops)
    # The smaller operand is the most plausible wrong answer; the others sit next to either one.
    near = {hi + d for d in (-10, -1, 1, 10)} | {lo + d for d in (-10, -1, 1, 10)}
    pool = sorted(x for x in near if 10 <= x <= 99 and x not in (hi, lo))
    return [str(lo), *(str(x) for x in rng.sample(pool, _N_CHOICES - 2))]


def _successor_distractors(ops: Operands, rng: random.Random) -> list[str]:
    (n,) = ops
    # The input itself and the numbers a carry slip would give.
    picked = _near_numbers(n + 1, (-1, 1, -10, 10, -100, 100, 9, -9), rng, low=1000, high=9999)
    return [str(x) for x in picked]


# ----------------------------------------------------------------------------- the skills


def _two_digit_pairs() -> Iterable[Operands]:
    return ((a, b) for a in range(10, 100) for b in range(10, 100))


def _distinct_two_digit_pairs() -> Iterable[Operands]:
    return ((a, b) for a, b in _two_digit_pairs() if a != b)


def _ordered_two_digit_pairs() -> Iterable[Operands]:
    return ((a, b) for a, b in _two_digit_pairs() if a >= b)


def _four_digit_numbers() -> Iterable[Operands]:
    return ((n,) for n in range(1000, 9999))


def _unordered(ops: Operands) -> Operands:
    return tuple(sorted(ops))


def _as_is(ops: Operands) -> Operands:
    return ops


SKILLS: dict[str, Skill] = {
    skill.name: skill
    for skill in (
        Skill(
            name="successor",
            role="proxy",
            description="next integer after a 4-digit number: 'succ 4729=' -> '4730'",
            operand_space=_four_digit_numbers,
            render=lambda ops: (f"succ {ops[0]}=", str(ops[0] + 1)),
            distractors=_successor_distractors,
            split_key=_as_is,
        ),
        Skill(
            name="comparison",
            role="proxy",
            description="larger of two 2-digit numbers: 'max 31 17=' -> '31'",
            operand_space=_distinct_two_digit_pairs,
            render=lambda ops: (f"max {ops[0]} {ops[1]}=", str(max(ops))),
            distractors=_max_distractors,
            split_key=_unordered,
        ),
        Skill(
            name="addition",
            role="proxy",
            description="sum of two 2-digit numbers: '12+34=' -> '46'",
            operand_space=_two_digit_pairs,
            render=lambda ops: (f"{ops[0]}+{ops[1]}=", str(ops[0] + ops[1])),
            distractors=_sum_distractors,
            split_key=_unordered,
        ),
        Skill(
            name="subtraction",
            role="deep",
            description="difference of two 2-digit numbers, never negative: '73-28=' -> '45'",
            operand_space=_ordered_two_digit_pairs,
            render=lambda ops: (f"{ops[0]}-{ops[1]}=", str(ops[0] - ops[1])),
            distractors=_difference_distractors,
            split_key=_as_is,
        ),
    )
}

PROXY_SKILLS: tuple[str, ...] = tuple(n for n, s in SKILLS.items() if s.role == "proxy")
DEEP_SKILLS: tuple[str, ...] = tuple(n for n, s in SKILLS.items() if s.role == "deep")


# ----------------------------------------------------------------------------- split and items


def is_held_out(skill: str, operands: Operands) -> bool:
    """Whether these operands belong to the skill's evaluation split (never trained on).

    The split is a keyed hash of the skill name and the operands' split key; it does not
    depend on any seed.
    """
    key = SKILLS[skill].split_key(operands)
    digest = hashlib.blake2b(
        f"{_SPLIT_SALT}:{skill}:{','.join(map(str, key))}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % 100 < HELD_OUT_PERCENT


def _get_skill(name: str) -> Skill:
    try:
        return SKILLS[name]
    except KeyError:
        raise KeyError(f"unknown demo skill {name!r}; known: {sorted(SKILLS)}") from None


@functools.cache
def _split(skill: str) -> tuple[tuple[Operands, ...], tuple[Operands, ...]]:
    """``(training operands, held-out operands)`` of a skill, each in operand order."""
    spec = _get_skill(skill)
    train: list[Operands] = []
    held_out: list[Operands] = []
    for ops in spec.operand_space():
        (held_out if is_held_out(skill, ops) else train).append(ops)
    return tuple(train), tuple(held_out)


def training_examples(skill: str) -> list[tuple[str, str]]:
    """Every training ``(question, answer)`` of a skill, in operand order.

    These are the operands outside the held-out split; no evaluation item is among them.
    """
    spec = _get_skill(skill)
    return [spec.render(ops) for ops in _split(skill)[0]]


def training_corpus(
    *,
    n_lines: int = 10_000,
    seed: int = 0,
    skills: Sequence[str] | None = None,
) -> list[str]:
    """A shuffled training corpus of ``n_lines`` text lines (``question + answer``, no newline).

    Lines are drawn uniformly from each skill's training split, the skills taking turns, so every
    skill gets an equal share. Deterministic for a given seed.
    """
    names = list(skills) if skills is not None else list(SKILLS)
    rng = random.Random(f"tripwire-demo-corpus:{seed}")
    pools = {name: training_examples(name) for name in names}
    lines = []
    for i in range(n_lines):
        question, answer = rng.choice(pools[names[i % len(names)]])
        lines.append(question + answer)
    rng.shuffle(lines)
    return lines


def eval_items(skill: str, *, n_items: int = 200, seed: int = 0) -> list[EvalItem]:
    """``n_items`` 4-choice items from the skill's held-out split, deterministic for a seed.

    The correct choice's position is drawn uniformly, and the three distractors are near the
    answer (same digit count where possible), so an untrained model scores about 25%.
    """
    spec = _get_skill(skill)
    held_out = list(_split(skill)[1])
    if n_items > len(held_out):
        raise ValueError(
            f"skill {skill!r} has only {len(held_out)} held-out examples; asked for {n_items}"
        )
    rng = random.Random(f"tripwire-demo-eval:{skill}:{seed}")
    items: list[EvalItem] = []
    for ops in rng.sample(held_out, n_items):
        question, answer = spec.render(ops)
        choices = [answer, *spec.distractors(ops, rng)]
        if len(set(choices)) != _N_CHOICES:  # a bug in a distractor function, not bad luck
            raise AssertionError(f"{skill}: choices {choices} for {question!r} are not distinct")
        rng.shuffle(choices)
        items.append({"question": question, "choices": choices, "answer": choices.index(answer)})
    return items


def eval_jsonl_bytes(skill: str, *, n_items: int = 200, seed: int = 0) -> bytes:
    """The exact bytes of ``<skill>.jsonl``: one JSON object per line, ASCII, ``\\n`` endings."""
    rows = eval_items(skill, n_items=n_items, seed=seed)
    return "".join(json.dumps(row, ensure_ascii=True) + "\n" for row in rows).encode("ascii")


def _write_if_changed(path: Path, content: bytes) -> None:
    """Write ``content`` atomically (temporary file, then ``os.replace``) unless already there."""
    try:
        if path.read_bytes() == content:
            return
    except FileNotFoundError:
        pass
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_eval_data(
    data_dir: Path,
    *,
    n_items: int = 200,
    seed: int = 0,
    skills: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write ``<skill>.jsonl`` for every skill into ``data_dir``; return ``{skill: path}``.

    Files are byte-identical for the same ``n_items`` and ``seed``, written atomically, and left
    untouched (same modification time) when their content is already right.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in skills if skills is not None else SKILLS:
        path = data_dir / f"{name}.jsonl"
        _write_if_changed(path, eval_jsonl_bytes(name, n_items=n_items, seed=seed))
        paths[name] = path
    return paths
