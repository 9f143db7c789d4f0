"""Review actions: attributed, in the hash-chained log, holds that block and releases that
unblock, the queue, and checkpoint identifiers in URLs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.helpers import as_table_owner
from tests.seed import settings_for
from tests.web.reviewing import (
    bearer,
    form_csrf,
    hex_of,
    land_and_decide,
    load_test_policy,
    make_token,
    sign_in,
)
from tripwire.audit import verify_chain
from tripwire.reviews import find_checkpoint, review_state
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, LedgerEntry, Notification, Review, Role
from tripwire.web.app import create_app
from tripwire.web.auth import Principal
from tripwire.web.reviews import review_context
from tripwire.web.templating import web_environment


@dataclass
class World:
    client: TestClient
    db: Database
    ids: dict[int, int]
    """Checkpoint id by step."""
    reviewer: str
    viewer: str

    def post(self, step: int | str, body: dict[str, object], token: str | None = None) -> Any:
        where = hex_of(step) if isinstance(step, int) else step
        return self.client.post(
            f"/api/checkpoints/{where}/reviews", json=body, headers=bearer(token or self.reviewer)
        )

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=bearer(self.reviewer))


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """Run ``r``: 100 the first baseline; 200 a +7 rise (``rise-5``, alert, the next baseline);
    300 a +15 rise over 200 (``rise-5`` and ``rise-12-hold``: critical, held, notifies)."""
    db = Database(database_url)
    policy = load_test_policy(tmp_path)
    ids = {step: land_and_decide(db, policy, step, acc) for step, acc in ((100, 0.40), (200, 0.47))}
    ids[300] = land_and_decide(db, policy, 300, 0.62)
    reviewer = make_token(db, "alice", Role.reviewer)
    viewer = make_token(db, "victor", Role.viewer)
    with TestClient(create_app(settings_for(database_url, tmp_path))) as client:
        yield World(client, db, ids, reviewer, viewer)
    db.dispose()


def test_the_queue_lists_holds_and_open_reviews_not_the_routine_first_baseline(
    world: World,
) -> None:
    queue = world.get("/api/reviews").json()
    assert [h["step"] for h in queue["holds"]] == [300]
    held = queue["holds"][0]
    assert held["status"] == "held" and held["severity"] == "critical"
    assert held["hold_reason"].startswith("held by rule 'rise-12-hold' (critical)")
    assert {d["rule_id"] for d in held["decisions"]} == {"rise-5", "rise-12-hold"}
    assert [o["step"] for o in queue["open"]] == [200]
    assert queue["open"][0]["status"] == "open" and queue["open"][0]["severity"] == "alert"
    acknowledged = world.post(200, {"action": "acknowledge"})
    assert acknowledged.status_code == 201
    assert acknowledged.json()["status"] == "acknowledged"
    assert world.get("/api/reviews").json()["open"] == []


def test_a_reviewer_action_is_attributed_and_chained_in_the_log(world: World) -> None:
    response = world.post(200, {"action": "approve", "comment": "looked at the items"})
    assert response.status_code == 201
    body = response.json()
    assert body["review"]["actor"] == "alice" and body["review"]["role"] == "reviewer"
    assert body["status"] == "approved"
    with world.db.session() as s:
        review = s.scalars(select(Review)).one()
        assert (review.actor, review.role, review.comment) == (
            "alice",
            "reviewer",
            "looked at the items",
        )
        entry = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc()).limit(1)).one()
        assert (entry.kind, entry.ref_id) == ("review", review.id)
        report = verify_chain(s)
        assert report.ok, report.broken
    with as_table_owner(world.db.engine) as conn:  # an edited comment no longer verifies
        conn.execute(update(Review).values(comment="rubber stamp"))
    with world.db.session() as s:
        broken = verify_chain(s).broken
        assert broken is not None and broken.kind == "altered" and broken.record == "review"


@pytest.mark.parametrize("action", ["escalate", "hold"])
def test_escalate_and_hold_need_a_comment(world: World, action: str) -> None:
    for body in ({"action": action}, {"action": action, "comment": "   "}):
        response = world.post(200, body)
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "comment"]
        assert error["msg"] == f"{action} needs a comment saying why"
    assert world.post(200, {"action": action, "comment": "why"}).status_code == 201


def test_a_hold_blocks_and_a_release_unblocks(world: World) -> None:
    held = world.post(200, {"action": "hold", "comment": "wait for the red team"})
    assert held.json()["held"] is True
    gate = world.get(f"/api/gate/{hex_of(200)}").json()
    assert gate["answer"] == "held"
    assert gate["reason"].startswith("held by alice (reviewer) at ")
    assert gate["reason"].endswith(": wait for the red team")
    with world.db.session() as s:
        meta = s.get(Checkpoint, world.ids[200]).meta
        assert meta["review_hold"] is True and "review_released" not in meta
    released = world.post(200, {"action": "release"})
    assert released.json()["held"] is False
    assert world.get(f"/api/gate/{hex_of(200)}").json()["answer"] == "allowed"
    again = world.post(200, {"action": "release"})
    assert again.status_code == 409
    assert "is not held: nothing to release" in again.json()["detail"]


def test_approving_a_held_checkpoint_releases_it(world: World) -> None:
    assert world.get(f"/api/gate/{hex_of(300)}").json()["answer"] == "held"
    approved = world.post(300, {"action": "approve", "comment": "deep evals clean"})
    assert approved.json()["status"] == "approved"
    gate = world.get(f"/api/gate/{hex_of(300)}").json()
    assert gate["answer"] == "allowed"
    assert "approved by alice (reviewer)" in gate["reason"]
    assert world.get("/api/reviews").json()["holds"] == []


def test_a_reviewers_hold_notifies_the_channels_of_the_rules_it_answers(world: World) -> None:
    with world.db.session() as s:
        rise_5 = s.scalars(
            select(Decision.id).where(
                Decision.checkpoint_id == world.ids[200], Decision.rule_id == "rise-5"
            )
        ).one()
    world.post(200, {"action": "hold", "comment": "no channel", "decision_id": rise_5})
    world.post(300, {"action": "hold", "comment": "tell the safety team"})
    with world.db.session() as s:
        (note,) = s.scalars(select(Notification).where(Notification.event == "review_hold"))
        assert (note.channel, note.checkpoint_id) == ("safety-team", world.ids[300])
        assert note.payload["review_hold"] is True
        assert note.payload["explanation"] == "tell the safety team"
        assert note.payload["details"]["actor"] == "alice"
        assert note.payload["details"]["rules"] == ["rise-12-hold", "rise-5"]


def test_a_decision_of_another_checkpoint_is_refused(world: World) -> None:
    with world.db.session() as s:
        other = s.scalars(
            select(Decision.id).where(Decision.checkpoint_id == world.ids[300])
        ).first()
    response = world.post(200, {"action": "acknowledge", "decision_id": other})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "decision_id"]


def test_checkpoints_are_named_by_hash_or_a_unique_prefix(world: World) -> None:
    full = hex_of(200)
    assert world.get(f"/api/checkpoints/{full}/reviews").status_code == 200
    assert world.get(f"/api/checkpoints/sha256:{full}/reviews").status_code == 200
    assert world.get(f"/api/checkpoints/{full[-60:]}/reviews").status_code == 404
    # every step's hash starts with 60 zeros: a short prefix is ambiguous
    ambiguous = world.get("/api/checkpoints/00000000/reviews")
    assert ambiguous.status_code == 409
    assert "give more characters" in ambiguous.json()["detail"]
    short = world.get("/api/checkpoints/0000/reviews")
    assert short.status_code == 404
    assert "at least 8" in short.json()["detail"]
    missing = world.get("/api/checkpoints/ffffffffff/reviews")
    assert missing.status_code == 404
    assert "no checkpoint in the store matches 'ffffffffff'" in missing.json()["detail"]


def test_the_queue_page_acts_through_forms_and_says_what_happened(world: World) -> None:
    sign_in(world.client, world.reviewer)
    page = world.client.get("/reviews")
    assert page.status_code == 200
    assert "Active holds" in page.text and "rise-12-hold" in page.text
    assert page.text.count('name="action" value="approve"') == 2
    url = f"/checkpoints/{hex_of(200)}/reviews"
    refused = world.client.post(
        url, data={"action": "hold", "csrf_token": form_csrf(page.text), "next": "/reviews"}
    )
    assert "Not recorded: comment: hold needs a comment saying why" in refused.text
    done = world.client.post(
        url,
        data={
            "action": "escalate",
            "comment": "<b>needs</b> the bio team",
            "csrf_token": form_csrf(page.text),
            "next": "/reviews",
        },
    )
    assert "Escalated checkpoint 000000000000 (step 200) as alice." in done.text
    assert "&lt;b&gt;needs&lt;/b&gt; the bio team" in done.text  # escaped, in the history
    assert "escalated" in done.text


def test_the_review_history_partial_renders_for_other_pages(world: World) -> None:
    """``{% include "_review_history.html.j2" %}`` with the context ``review_context`` builds:
    the history, and the form only for a reviewer."""
    world.post(200, {"action": "escalate", "comment": "ask the <bio> team"})
    template = web_environment().from_string(
        '<div>{% include "_review_history.html.j2" %}</div>', globals={}
    )
    # a request with an empty session, as the session middleware hands one to a page
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "session": {}})
    with world.db.session() as s:
        state = review_state(s, find_checkpoint(s, hex_of(200)))
        as_reviewer = template.render(
            **review_context(request, Principal(name="alice", role=Role.reviewer), state, "/x")
        )
        as_viewer = template.render(
            **review_context(request, Principal(name="v", role=Role.viewer), state, "/x")
        )
        bare = template.render(reviews=state.reviews, actions_form=None)
    assert "ask the &lt;bio&gt; team" in as_reviewer and "escalate" in as_reviewer
    assert f'action="/checkpoints/{hex_of(200)}/reviews"' in as_reviewer
    assert 'name="next" value="/x"' in as_reviewer and 'value="release"' not in as_reviewer
    assert request.session["csrf"] in as_reviewer
    assert "ask the &lt;bio&gt; team" in as_viewer and "<form" not in as_viewer
    assert "<form" not in bare and "escalate" in bare
