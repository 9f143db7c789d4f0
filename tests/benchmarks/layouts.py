"""Small benchmark files written on the spot in each public layout (no items are shipped).

Every item is made up here: questions about small numbers, so the tiny test models can read
them with their character tokenizer.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

SUBJECTS = ("abstract_algebra", "anatomy")


def _mc(rng: random.Random, k: int) -> tuple[str, list[str], int]:
    a, b = rng.randint(10, 49), rng.randint(10, 49)
    answer = str(a + b)
    wrong = rng.sample([str(x) for x in range(20, 99) if str(x) != answer], 3)
    choices = [answer, *wrong]
    rng.shuffle(choices)
    return f"{a}+{b}? ({k})", choices, choices.index(answer)


def mmlu_rows(subject: str, split: str, n: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{subject}-{split}")
    rows = []
    for k in range(n):
        question, choices, answer = _mc(rng, k)
        rows.append(
            {"question": question, "subject": subject, "choices": choices, "answer": answer}
        )
    return rows


def write_mmlu_csv(root: Path, subjects: tuple[str, ...] = SUBJECTS, n: int = 8) -> Path:
    """The original release: data/{dev,val,test}/<subject>_<split>.csv, no header."""
    for folder, split, count in (("dev", "dev", 5), ("val", "validation", 3), ("test", "test", n)):
        (root / "data" / folder).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            with (root / "data" / folder / f"{subject}_{folder}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                for row in mmlu_rows(subject, split, count):
                    writer.writerow([row["question"], *row["choices"], "ABCD"[row["answer"]]])
    return root


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_mmlu_hub(root: Path, subjects: tuple[str, ...] = SUBJECTS, n: int = 8) -> Path:
    """The hub copy cais/mmlu: <subject>/<split>-00000-of-00001.parquet."""
    for subject in subjects:
        for split, count in (("dev", 5), ("validation", 3), ("test", n)):
            rows = mmlu_rows(subject, split, count)
            write_parquet(root / subject / f"{split}-00000-of-00001.parquet", rows)
    return root


def wmdp_rows(domain: str, n: int = 10) -> list[dict[str, Any]]:
    rng = random.Random(domain)
    rows = []
    for k in range(n):
        question, choices, answer = _mc(rng, k)
        rows.append({"answer": answer, "question": question, "choices": choices})
    return rows


def write_wmdp_hub(root: Path, domains: tuple[str, ...] = ("bio", "chem", "cyber")) -> Path:
    """The hub copy cais/wmdp: wmdp-<domain>/test-00000-of-00001.parquet."""
    for domain in domains:
        write_parquet(root / f"wmdp-{domain}" / "test-00000-of-00001.parquet", wmdp_rows(domain))
    return root


GPQA_COLUMNS = (
    "Pre-Revision Question",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Record ID",
    "Subdomain",
    "High-level domain",
)


def write_gpqa_csv(root: Path, n: int = 6) -> Path:
    """The release's gpqa_diamond.csv (a header row, one question per row)."""
    rng = random.Random("gpqa")
    root.mkdir(parents=True, exist_ok=True)
    with (root / "gpqa_diamond.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(GPQA_COLUMNS)
        for k in range(n):
            question, choices, answer = _mc(rng, k)
            wrong = [c for i, c in enumerate(choices) if i != answer]
            writer.writerow(
                [question, question, choices[answer], *wrong, f"rec{k}", "Arithmetic", "Math"]
            )
    return root


def arc_rows(split: str, n: int) -> list[dict[str, Any]]:
    rng = random.Random(f"arc-{split}")
    rows = []
    for k in range(n):
        question, choices, answer = _mc(rng, k)
        rows.append(
            {
                "id": f"{split}-{k}",
                "question": question,
                "choices": {"text": choices, "label": ["A", "B", "C", "D"]},
                "answerKey": "ABCD"[answer],
            }
        )
    return rows


def write_arc_hub(root: Path) -> Path:
    """The hub copy allenai/ai2_arc: ARC-Challenge/<split>-00000-of-00001.parquet."""
    for split, count in (("train", 6), ("validation", 3), ("test", 8)):
        write_parquet(
            root / "ARC-Challenge" / f"{split}-00000-of-00001.parquet", arc_rows(split, count)
        )
    return root


def write_arc_original(root: Path) -> Path:
    """AI2's release: ARC-Challenge/ARC-Challenge-{Train,Dev,Test}.jsonl with question.stem."""
    for split, name, count in (
        ("train", "Train", 6),
        ("validation", "Dev", 3),
        ("test", "Test", 8),
    ):
        rows = [
            {
                "id": r["id"],
                "question": {
                    "stem": r["question"],
                    "choices": [
                        {"text": t, "label": lab}
                        for t, lab in zip(r["choices"]["text"], r["choices"]["label"], strict=True)
                    ],
                },
                "answerKey": r["answerKey"],
            }
            for r in arc_rows(split, count)
        ]
        write_jsonl(root / "ARC-Challenge" / f"ARC-Challenge-{name}.jsonl", rows)
    return root


def write_hellaswag_jsonl(root: Path) -> Path:
    """The release: hellaswag_{train,val}.jsonl."""
    for split, count in (("train", 4), ("val", 6)):
        rng = random.Random(f"hs-{split}")
        rows = []
        for k in range(count):
            question, choices, answer = _mc(rng, k)
            rows.append(
                {
                    "ind": k,
                    "activity_label": "Adding",
                    "ctx_a": question,
                    "ctx_b": "the sum is",
                    "ctx": f"{question} the sum is",
                    "endings": choices,
                    "source_id": f"s{k}",
                    "split": split,
                    "split_type": "indomain",
                    "label": answer,
                }
            )
        write_jsonl(root / f"hellaswag_{split}.jsonl", rows)
    return root


def write_gsm8k_jsonl(root: Path) -> Path:
    """The release: grade_school_math/data/{train,test}.jsonl."""
    for split, count in (("train", 5), ("test", 4)):
        rng = random.Random(f"gsm-{split}")
        rows = []
        for _ in range(count):
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            rows.append({"question": f"{a}+{b}?", "answer": f"{a}+{b}={a + b}\n#### {a + b}"})
        write_jsonl(root / "grade_school_math" / "data" / f"{split}.jsonl", rows)
    return root
