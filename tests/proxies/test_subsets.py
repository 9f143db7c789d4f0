"""Stratified seeded subsets: the same items for every checkpoint, in proportion per stratum."""

from __future__ import annotations

from collections import Counter

import pytest

from tripwire.errors import EvaluationError
from tripwire.runner.extract import select_items, stratified
from tripwire.suites import SuiteTask

DOCS = [{"subject": s, "q": i} for i, s in enumerate(["bio"] * 60 + ["chem"] * 30 + ["law"] * 10)]


def entry(**subset: object) -> SuiteTask:
    return SuiteTask.model_validate({"task": "t", "subset": subset})


def test_stratified_subset_keeps_each_subjects_share_and_is_identical_each_time() -> None:
    chosen = select_items(DOCS, entry(size=20, seed=3, stratify_by="subject"))
    assert chosen is not None and len(chosen) == 20 == len(set(chosen))
    shares = Counter(DOCS[i]["subject"] for i in chosen)
    assert shares == {"bio": 12, "chem": 6, "law": 2}
    assert select_items(DOCS, entry(size=20, seed=3, stratify_by="subject")) == chosen
    assert select_items(DOCS, entry(size=20, seed=4, stratify_by="subject")) != chosen


def test_every_stratum_gets_an_item_while_the_size_allows() -> None:
    labels = ["a"] * 97 + ["b", "c", "d"]
    chosen = stratified(labels, 5, 0)
    assert len(chosen) == 5
    assert {labels[i] for i in chosen} == {"a", "b", "c", "d"}


def test_an_unknown_stratification_field_names_the_fields_there_are() -> None:
    with pytest.raises(EvaluationError, match="q, subject"):
        select_items(DOCS, entry(size=5, stratify_by="topic"))
