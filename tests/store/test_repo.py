"""The store on SQLite and PostgreSQL: identity, idempotent jobs, leases, packed outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, JobKind, JobState
from tripwire.store.outcomes import unpack

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _checkpoint(db: Database, content_hash: str = "sha256:aa", path: str = "/ck/a") -> int:
    with db.session() as s:
        cp, _ = repo.record_checkpoint(s, content_hash=content_hash, path=path, run="r", step=1)
        return cp.id


def test_same_content_under_two_paths_is_one_checkpoint(database_url: str) -> None:
    db = Database(database_url)
    with db.session() as s:
        a, new_a = repo.record_checkpoint(s, content_hash="sha256:x", path="/a", run="r", step=1)
        b, new_b = repo.record_checkpoint(s, content_hash="sha256:x", path="/b", run="r", step=1)
        assert (new_a, new_b) == (True, False)
        assert a.id == b.id
        assert sorted(loc.path for loc in a.locations) == ["/a", "/b"]
    db.dispose()


def test_inserting_an_existing_job_is_a_no_op(database_url: str) -> None:
    db = Database(database_url)
    cp = _checkpoint(db)
    with db.session() as s:
        first, created = repo.ensure_job(s, key="k", kind=JobKind.proxy_eval, checkpoint_id=cp)
        again, created_again = repo.ensure_job(
            s, key="k", kind=JobKind.proxy_eval, checkpoint_id=cp
        )
        assert created and not created_again
        assert first.id == again.id
    db.dispose()


def test_a_claimed_job_cannot_be_claimed_again_until_its_lease_expires(database_url: str) -> None:
    db = Database(database_url)
    cp = _checkpoint(db)
    with db.session() as s:
        job, _ = repo.ensure_job(s, key="k", kind=JobKind.proxy_eval, checkpoint_id=cp)
        job_id = job.id
    with db.session() as s:
        assert repo.claim_job(s, job_id, "w1", 60, NOW)
    with db.session() as s:
        assert not repo.claim_job(s, job_id, "w2", 60, NOW + timedelta(seconds=30))
    with db.session() as s:
        assert not repo.finish_job(s, job_id, "w2", NOW)
        assert repo.claim_job(s, job_id, "w2", 60, NOW + timedelta(seconds=61))
    with db.session() as s:
        assert not repo.finish_job(s, job_id, "w1", NOW), "the old owner lost its lease"
        assert repo.finish_job(s, job_id, "w2", NOW)
    with db.session() as s:
        assert not repo.claim_job(s, job_id, "w3", 60, NOW + timedelta(hours=1)), "done is done"
    db.dispose()


def test_a_job_fails_after_its_last_attempt(database_url: str) -> None:
    db = Database(database_url)
    cp = _checkpoint(db)
    with db.session() as s:
        job, _ = repo.ensure_job(
            s, key="k", kind=JobKind.proxy_eval, checkpoint_id=cp, max_attempts=2
        )
        job_id = job.id
    states = []
    for attempt in range(3):
        with db.session() as s:
            claimed = repo.claim_job(s, job_id, "w", 60, NOW)
            if claimed:
                states.append(repo.release_job(s, job_id, "w", f"boom {attempt}"))
    assert states == [JobState.pending, JobState.failed]
    db.dispose()


def test_expired_leases_are_resent_and_exhausted_ones_fail(database_url: str) -> None:
    db = Database(database_url)
    cp = _checkpoint(db)
    with db.session() as s:
        a, _ = repo.ensure_job(s, key="a", kind=JobKind.proxy_eval, checkpoint_id=cp)
        b, _ = repo.ensure_job(
            s, key="b", kind=JobKind.proxy_eval, checkpoint_id=cp, max_attempts=1
        )
        a_id, b_id = a.id, b.id
    with db.session() as s:
        repo.claim_job(s, a_id, "w", 10, NOW)
        repo.claim_job(s, b_id, "w", 10, NOW)
    later = NOW + timedelta(seconds=11)
    with db.session() as s:
        assert repo.expire_exhausted_jobs(s, later) == [b_id]
        assert [j.id for j in repo.jobs_to_enqueue(s, later, 60)] == [a_id]
    db.dispose()


def test_outcomes_round_trip_packed_and_item_sets_are_shared(database_url: str) -> None:
    db = Database(database_url)
    items = ItemOutcomes(
        doc_hashes=[f"h{i}" for i in range(300)], values=[i % 2 for i in range(300)]
    )
    result = SuiteResult(
        suite_name="s",
        suite_hash="abc",
        model_path="/m",
        tasks={
            "t": TaskResult(
                task="t",
                metric="acc",
                score=0.5,
                stderr=0.03,
                n_items=300,
                num_fewshot=0,
                items=items,
            )
        },
        versions=Versions(lm_eval="x", transformers="y", torch="z", tripwire="w"),
        started_at=NOW,
        duration_s=1.0,
    )
    cp1 = _checkpoint(db, "sha256:1", "/1")
    cp2 = _checkpoint(db, "sha256:2", "/2")
    with db.session() as s:
        for cp in (cp1, cp2):
            checkpoint = s.get(repo.Checkpoint, cp)
            assert checkpoint is not None
            repo.save_evaluation(s, checkpoint, result, "proxy")
    with db.session() as s:
        e1 = repo.evaluation_for(s, cp1, "abc")
        e2 = repo.evaluation_for(s, cp2, "abc")
        assert e1 is not None and e2 is not None
        score1, score2 = e1.scores[0], e2.scores[0]
        assert score1.item_set_id == score2.item_set_id
        assert len(score1.outcomes) == 300 * 4
        assert unpack(score1.item_set, score1.outcomes) == items
    db.dispose()


def test_decisions_are_chained_by_hash(database_url: str) -> None:
    db = Database(database_url)
    cp = _checkpoint(db)
    with db.session() as s:
        repo.lock_decision_log(s)
        for rule in ("a", "b"):
            repo.append_decision(
                s,
                Decision(
                    checkpoint_id=cp,
                    policy_name="p",
                    policy_hash="h",
                    rule_id=rule,
                    rule_type="delta",
                    severity="alert",
                    verdict="fired",
                    explanation="x",
                    inputs={"score": 0.5},
                    actions={},
                    decided_at=NOW,
                ),
            )
    with db.session() as s:
        first, second = s.scalars(select(Decision).order_by(Decision.id)).all()
        assert first.prev_hash == repo.GENESIS_HASH
        assert second.prev_hash == first.record_hash
        assert (
            repo.record_hash_of(first.prev_hash, repo.decision_fields(first)) == first.record_hash
        )
    db.dispose()


def test_a_frontier_run_counts_trillions_of_tokens(database_url: str) -> None:
    """``tokens_seen`` is 64-bit: 2.4e9 (the sidecar example) overflowed a 32-bit column on
    PostgreSQL and stalled every scan at that checkpoint."""
    db = Database(database_url)
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash="sha256:big", path="/big", run="r", step=1, tokens_seen=15 * 10**12
        )
        checkpoint_id = cp.id
    with db.session() as s:
        assert s.get(Checkpoint, checkpoint_id).tokens_seen == 15 * 10**12  # type: ignore[union-attr]
    db.dispose()
