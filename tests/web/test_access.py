"""Access control: bearer tokens with roles, browser sessions with CSRF-protected forms."""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient

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
from tripwire import tokens
from tripwire.store.db import Database
from tripwire.store.models import ApiToken, Review, Role, utcnow
from tripwire.web.app import create_app
from tripwire.web.auth import RANK, exposure_warning, required_role, session_secret


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, Database]]:
    """The app on SQLite with one decided checkpoint (step 100, the run's first)."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    db = Database(url)
    land_and_decide(db, load_test_policy(tmp_path), 100, 0.40)
    with TestClient(create_app(settings_for(url, tmp_path))) as client:
        yield client, db
    db.dispose()


def test_no_token_is_401_for_the_api_and_a_redirect_to_login_for_pages(
    world: tuple[TestClient, Database],
) -> None:
    client, _ = world
    api = client.get("/api/reviews")
    assert api.status_code == 401
    assert api.headers["www-authenticate"].startswith("Bearer")
    assert "tripwire token create" in api.json()["detail"]
    post = client.post(f"/api/checkpoints/{hex_of(100)}/reviews", json={"action": "approve"})
    assert post.status_code == 401
    assert client.get(f"/api/gate/{hex_of(100)}").status_code == 401
    page = client.get("/reviews?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/reviews%3Fx%3D1"


def test_malformed_unknown_and_revoked_bearer_tokens_are_401(
    world: tuple[TestClient, Database],
) -> None:
    client, db = world
    token = make_token(db, "ci", Role.reviewer)
    assert client.get("/api/reviews", headers=bearer(token)).status_code == 200
    for header in (f"Basic {token}", "Bearer", "Bearer twk_not-a-token", token):
        response = client.get("/api/reviews", headers={"Authorization": header})
        assert response.status_code == 401, header
    with db.session() as s:
        tokens.revoke_token(s, "ci", utcnow())
    refused = client.get("/api/reviews", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "unknown or revoked token"
    # a page asked with a bad bearer token says so instead of redirecting
    assert client.get("/reviews", headers=bearer(token), follow_redirects=False).status_code == 401


def test_a_viewer_may_read_but_reviewing_is_403(world: tuple[TestClient, Database]) -> None:
    client, db = world
    token = make_token(db, "auditor", Role.viewer)
    assert client.get("/api/reviews", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/gate/{hex_of(100)}", headers=bearer(token)).status_code == 200
    response = client.post(
        f"/api/checkpoints/{hex_of(100)}/reviews",
        json={"action": "approve"},
        headers=bearer(token),
    )
    assert response.status_code == 403
    assert (
        response.json()["detail"] == "this needs a reviewer or admin token; 'auditor' is a viewer"
    )
    # and through the browser: the queue page has no forms, a posted form is refused
    sign_in(client, token)
    page = client.get("/reviews")
    assert "reading only" in page.text and 'name="action"' not in page.text
    form = client.post(
        f"/checkpoints/{hex_of(100)}/reviews",
        data={"action": "approve", "csrf_token": form_csrf(page.text)},
        follow_redirects=False,
    )
    assert form.status_code == 403
    with db.session() as s:
        assert s.scalars(select(Review)).all() == []


def test_tokens_are_stored_hashed_and_record_their_last_use(
    world: tuple[TestClient, Database],
) -> None:
    client, db = world
    token = make_token(db, "alice", Role.reviewer)
    assert token.startswith("twk_") and len(token) == 4 + 43
    with db.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "alice")).one()
        assert row.token_hash == tokens.token_hash(token) and token not in row.token_hash
        assert row.prefix == token[:10] and row.last_used_at is None
    client.get("/api/reviews", headers=bearer(token))
    with db.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.name == "alice")).one()
        assert row.last_used_at is not None


def test_a_token_name_is_taken_once(world: tuple[TestClient, Database]) -> None:
    _, db = world
    make_token(db, "alice", Role.reviewer)
    with pytest.raises(Exception, match="exists"):
        make_token(db, "alice", Role.admin)
    with pytest.raises(Exception, match="printable"):
        make_token(db, "bad\nname", Role.admin)


def test_signing_in_sets_a_signed_httponly_samesite_strict_session(
    world: tuple[TestClient, Database],
) -> None:
    client, db = world
    token = make_token(db, "alice", Role.reviewer)
    page = client.get("/login?next=/reviews")
    assert 'name="next" value="/reviews"' in page.text
    wrong = client.post(
        "/login", data={"token": "twk_wrong", "csrf_token": form_csrf(page.text), "next": "/"}
    )
    assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
    response = client.post(
        "/login",
        data={"token": token, "csrf_token": form_csrf(page.text), "next": "/reviews"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/reviews"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("tripwire_session=")
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert token.lower() not in cookie
    queue = client.get("/reviews")
    assert queue.status_code == 200 and "alice · reviewer" in queue.text


def test_login_refuses_a_form_without_its_csrf_token_and_an_outside_next(
    world: tuple[TestClient, Database],
) -> None:
    client, db = world
    token = make_token(db, "alice", Role.reviewer)
    assert client.post("/login", data={"token": token}).status_code == 403
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"token": token, "csrf_token": form_csrf(page.text), "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_a_form_without_its_csrf_token_is_refused_and_with_it_accepted(
    world: tuple[TestClient, Database],
) -> None:
    client, db = world
    sign_in(client, make_token(db, "alice", Role.reviewer))
    url = f"/checkpoints/{hex_of(100)}/reviews"
    missing = client.post(url, data={"action": "acknowledge"}, follow_redirects=False)
    wrong = client.post(
        url, data={"action": "acknowledge", "csrf_token": "x" * 43}, follow_redirects=False
    )
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "CSRF token is missing" in missing.text and "CSRF token is wrong" in wrong.text
    with db.session() as s:
        assert s.scalars(select(Review)).all() == []
    page = client.get("/reviews")
    ok = client.post(
        url,
        data={"action": "acknowledge", "csrf_token": form_csrf(page.text), "next": "/reviews"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/reviews"
    with db.session() as s:
        (review,) = s.scalars(select(Review)).all()
        assert (review.actor, review.role, review.action) == ("alice", "reviewer", "acknowledge")


def test_a_json_call_with_a_session_cookie_needs_the_csrf_header(
    world: tuple[TestClient, Database],
) -> None:
    """Bearer calls need no CSRF token (no cookie rides along); cookie calls do."""
    client, db = world
    sign_in(client, make_token(db, "alice", Role.reviewer))
    url = f"/api/checkpoints/{hex_of(100)}/reviews"
    assert client.post(url, json={"action": "acknowledge"}).status_code == 403
    csrf = form_csrf(client.get("/reviews").text)
    response = client.post(url, json={"action": "acknowledge"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201


def test_revoking_a_token_ends_its_browser_session(world: tuple[TestClient, Database]) -> None:
    client, db = world
    sign_in(client, make_token(db, "alice", Role.reviewer))
    assert client.get("/reviews").status_code == 200
    with db.session() as s:
        tokens.revoke_token(s, "alice", utcnow())
    page = client.get("/reviews", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_signing_out_ends_the_session(world: tuple[TestClient, Database]) -> None:
    client, db = world
    sign_in(client, make_token(db, "alice", Role.reviewer))
    page = client.get("/reviews")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    out = client.post("/logout", data={"csrf_token": form_csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/reviews", follow_redirects=False).status_code == 303


def test_every_mutating_route_needs_a_reviewer(tmp_path: Path) -> None:
    """Every POST/PUT/PATCH/DELETE route depends on ``require`` of reviewer or more, except
    signing in and out, and the upload webhook, which a trainer signs with HMAC instead
    (``tests/intake/test_webhook.py``)."""
    app = create_app(settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path))
    checked = []
    for route in _flat(app.routes):
        if not isinstance(route, APIRoute) or not route.methods & {
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
        }:
            continue
        if route.path in ("/login", "/logout", "/v1/checkpoints"):
            continue
        roles = [required_role(d.call) for d in route.dependant.dependencies]
        assert any(r is not None and RANK[r] >= RANK[Role.reviewer] for r in roles), route.path
        checked.append(route.path)
    assert "/api/checkpoints/{checkpoint}/reviews" in checked
    assert "/checkpoints/{checkpoint}/reviews" in checked


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """Routes, with included routers opened (FastAPI keeps them as one entry each)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


def test_the_session_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path)
    first = session_secret(settings)
    path = settings.home / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == first and len(first) >= 32
    assert session_secret(settings.model_copy(update={"secret_key": SecretStr("k" * 40)})) == (
        "k" * 40
    )


def test_serving_beyond_loopback_without_tls_warns() -> None:
    assert exposure_warning("127.0.0.1", False) is None
    assert exposure_warning("::1", False) is None
    assert exposure_warning("localhost", False) is None
    assert exposure_warning("0.0.0.0", True) is None
    warning = exposure_warning("0.0.0.0", False)
    assert warning is not None and "without TLS" in warning and "\n" not in warning
