"""``tripwire status``: runs, checkpoints, their state, decisions and jobs, as tables."""

from __future__ import annotations

from collections import Counter

from rich.table import Table
from sqlalchemy import select

from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import Decision, Job, Run, SourceFailure


def status_tables(settings: Settings) -> list[Table]:
    db = Database(settings.resolved_database_url())
    tables: list[Table] = []
    with db.session() as session:
        runs = list(session.scalars(select(Run).order_by(Run.id)))
        for run in runs:
            table = Table(title=f"run {run.name}")
            for column in ("step", "checkpoint", "state", "fired rules", "deep", "error"):
                table.add_column(column)
            checkpoints = sorted(run.checkpoints, key=lambda c: (c.step is None, c.step or 0, c.id))
            for cp in checkpoints:
                fired = session.scalars(
                    select(Decision.rule_id).where(
                        Decision.checkpoint_id == cp.id, Decision.verdict == "fired"
                    )
                ).all()
                deep = session.scalars(
                    select(Job.state).where(Job.checkpoint_id == cp.id, Job.kind == "deep_eval")
                ).all()
                table.add_row(
                    "-" if cp.step is None else str(cp.step),
                    cp.content_hash.removeprefix("sha256:")[:12],
                    cp.state.value,
                    ", ".join(fired) or "-",
                    ", ".join(s.value for s in deep) or "-",
                    (cp.error or "")[:80],
                )
            tables.append(table)
        jobs = Counter(
            f"{kind.value}:{state.value}"
            for kind, state in session.execute(select(Job.kind, Job.state)).tuples()
        )
        if jobs:
            job_table = Table(title="jobs")
            job_table.add_column("kind:state")
            job_table.add_column("count", justify="right")
            for key, count in sorted(jobs.items()):
                job_table.add_row(key, str(count))
            tables.append(job_table)
        failures = list(
            session.scalars(select(SourceFailure).where(SourceFailure.resolved.is_(False)))
        )
        if failures:
            fail_table = Table(title="refused or corrupt checkpoint folders")
            fail_table.add_column("path")
            fail_table.add_column("reason")
            for failure in failures:
                fail_table.add_row(failure.path, failure.reason)
            tables.append(fail_table)
        if not runs and not failures:
            empty = Table(title="no checkpoints yet")
            empty.add_column(f"database {db.url}")
            tables.append(empty)
    db.dispose()
    return tables
