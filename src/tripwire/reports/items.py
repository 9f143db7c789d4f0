"""Evidence down to the item: which items changed between two stored evaluations.

For a checkpoint against the baseline its live decision read (the items page), or for any two
checkpoints (the compare page): per benchmark, the paired test (``reports.build.change_row``)
and the items newly right and newly wrong, with the prompt, the target and both answers when
the runner kept them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import score_of
from tripwire.decisions.read import decision_sets
from tripwire.reports.build import change_row
from tripwire.reports.evaluations import evaluation_of, latest_proxy
from tripwire.reports.model import ChangeRow, CheckpointRef, _Model
from tripwire.store.models import Checkpoint, Evaluation, TaskScore
from tripwire.store.outcomes import unpack_answers, unpack_texts

MAX_ROWS = 200
"""Items listed per direction and benchmark (the counts are always complete)."""


class ItemRow(_Model):
    """One item whose outcome differs between the two evaluations."""

    key: str
    """lm-eval's document hash (``leaf:hash`` inside a group)."""
    before: float
    """The reference's outcome (1 right, 0 wrong, or the metric's value)."""
    after: float
    prompt: str = ""
    """The end of the prompt the model saw (empty when not kept)."""
    target: str = ""
    before_answer: str = ""
    after_answer: str = ""


class TaskItems(_Model):
    """One benchmark's items that changed."""

    task: str
    paired: int
    """Items scored in both evaluations."""
    unshared: tuple[int, int] = (0, 0)
    """Items only in this evaluation, only in the reference."""
    up: int = 0
    """Items that improved (newly right)."""
    down: int = 0
    """Items that got worse (newly wrong)."""
    newly_right: list[ItemRow] = Field(default_factory=list)
    newly_wrong: list[ItemRow] = Field(default_factory=list)
    change: ChangeRow | None = None
    texts_kept: bool = False
    """Whether prompts and answers were kept for these evaluations."""


class ItemsReport(_Model):
    """The items that changed between a checkpoint and a reference checkpoint."""

    generated_at: datetime
    kind: Literal["baseline", "compare"]
    checkpoint: CheckpointRef
    reference: CheckpointRef
    checkpoint_suite: str | None = None
    reference_suite: str | None = None
    tasks: list[TaskItems] = Field(default_factory=list)
    note: str = ""


def _ref(checkpoint: Checkpoint) -> CheckpointRef:
    return CheckpointRef(
        content_hash=checkpoint.content_hash, step=checkpoint.step, run=checkpoint.run.name
    )


def _task_items(current: TaskScore, reference: TaskScore) -> TaskItems:
    cur, ref = score_of(current), score_of(reference)
    index = {h: i for i, h in enumerate(ref.item_hashes or ())}
    pairs = [(i, index[h]) for i, h in enumerate(cur.item_hashes or ()) if h in index]
    cur_texts = unpack_texts(current.texts) if current.texts is not None else None
    cur_answers = unpack_answers(current.answers) if current.answers is not None else None
    ref_answers = unpack_answers(reference.answers) if reference.answers is not None else None
    sign = 1.0 if current.higher_is_better else -1.0
    up_rows: list[ItemRow] = []
    down_rows: list[ItemRow] = []
    up = down = 0
    assert cur.item_values is not None and ref.item_values is not None
    for i, j in pairs:
        after, before = float(cur.item_values[i]), float(ref.item_values[j])
        if after == before:
            continue
        better = sign * (after - before) > 0
        up += better
        down += not better
        rows = up_rows if better else down_rows
        if len(rows) >= MAX_ROWS:
            continue
        prompt, target = cur_texts[i] if cur_texts else ("", "")
        rows.append(
            ItemRow(
                key=(cur.item_hashes or ())[i],
                before=before,
                after=after,
                prompt=prompt,
                target=target,
                before_answer=ref_answers[j] if ref_answers else "",
                after_answer=cur_answers[i] if cur_answers else "",
            )
        )
    return TaskItems(
        task=current.task,
        paired=len(pairs),
        unshared=(len(cur.item_hashes or ()) - len(pairs), len(ref.item_hashes or ()) - len(pairs)),
        up=up,
        down=down,
        newly_right=up_rows,
        newly_wrong=down_rows,
        change=change_row(current, reference),
        texts_kept=cur_texts is not None and cur_answers is not None and ref_answers is not None,
    )


def items_between(
    checkpoint: Checkpoint,
    evaluation: Evaluation,
    reference: Checkpoint,
    reference_evaluation: Evaluation,
    kind: Literal["baseline", "compare"],
    now: datetime | None = None,
) -> ItemsReport:
    """Every benchmark the two evaluations share, item by item."""
    theirs = {s.task: s for s in reference_evaluation.scores}
    tasks = [_task_items(s, theirs[s.task]) for s in evaluation.scores if s.task in theirs]
    return ItemsReport(
        generated_at=now or datetime.now(UTC),
        kind=kind,
        checkpoint=_ref(checkpoint),
        reference=_ref(reference),
        checkpoint_suite=evaluation.suite_name,
        reference_suite=reference_evaluation.suite_name,
        tasks=tasks,
        note="" if tasks else "the two evaluations share no benchmark (different proxy suites)",
    )


def baseline_items(session: Session, checkpoint_id: int) -> ItemsReport | None:
    """The items that changed between a checkpoint and the baseline its live decision read,
    from the evaluations the decision record names; None without a baseline."""
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise LookupError(f"no checkpoint with id {checkpoint_id}")
    sets = decision_sets(session, checkpoint_id)
    if not sets or not sets[0].decisions:
        return None
    stored = sets[0].decisions[0]
    base = stored.record.baseline
    if base is None or stored.row.baseline_checkpoint_id is None:
        return None
    reference = session.get(Checkpoint, stored.row.baseline_checkpoint_id)
    evaluation = evaluation_of(session, stored.record.checkpoint, checkpoint.id)
    reference_evaluation = evaluation_of(session, base, stored.row.baseline_checkpoint_id)
    if reference is None or evaluation is None or reference_evaluation is None:
        return None
    return items_between(checkpoint, evaluation, reference, reference_evaluation, "baseline")


def compare_checkpoints(session: Session, a: Checkpoint, b: Checkpoint) -> ItemsReport:
    """``a`` against ``b`` on their latest proxy evaluations (the compare page)."""
    evaluation, reference_evaluation = latest_proxy(session, a.id), latest_proxy(session, b.id)
    if evaluation is None or reference_evaluation is None:
        missing = a if evaluation is None else b
        raise LookupError(
            f"checkpoint {missing.content_hash[:19]} (step {missing.step}) has no proxy "
            "evaluation yet"
        )
    return items_between(a, evaluation, b, reference_evaluation, "compare")
