"""``POST /v1/checkpoints``: each refusal gives its status, an accepted event is in the database
before the 202, and generated requests (signed or not) never get a 5xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.seed import settings_for
from tripwire.intake.event import signature
from tripwire.store.db import Database
from tripwire.store.models import IntakeEvent
from tripwire.web.app import create_app

SECRET = "s3cret-for-tests"


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "checkpoints"
    (root / "run-a" / "step-100").mkdir(parents=True)
    return root


@pytest.fixture
def client(database_url: str, tmp_path: Path, roots: Path) -> Iterator[TestClient]:
    config = settings_for(database_url, tmp_path)
    config.webhook_secret = SecretStr(SECRET)
    config.intake_roots = [str(roots), "s3://bucket/ckpts"]
    config.webhook_max_bytes = 4096
    with TestClient(create_app(config)) as c:
        yield c


def post(
    client: TestClient,
    body: bytes | dict[str, Any],
    *,
    at: float | None = None,
    secret: str = SECRET,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time() if at is None else at))
    headers = {
        "X-Tripwire-Timestamp": stamp,
        "X-Tripwire-Signature": signature(secret.encode(), stamp, raw),
        "Content-Type": "application/json",
    }
    return client.post("/v1/checkpoints", content=raw, headers=headers)


def test_a_valid_event_is_committed_before_the_202(
    client: TestClient, roots: Path, database_url: str
) -> None:
    folder = roots / "run-a" / "step-100"
    answer = post(client, {"uri": str(folder), "stage": "sft", "step": 100, "tokens_seen": 5})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["state"] == "accepted" and body["uri"] == str(folder.resolve())
    db = Database(database_url)  # another connection sees it: committed
    with db.session() as s:
        row = s.scalars(select(IntakeEvent)).one()
        assert (row.id, row.state, row.body["stage"]) == (body["event_id"], "accepted", "sft")
    db.dispose()


def test_an_object_store_uri_under_a_root_is_accepted(client: TestClient) -> None:
    assert post(client, {"uri": "s3://bucket/ckpts/run-a/step-1"}).status_code == 202


def test_a_bad_or_missing_signature_is_401(client: TestClient, roots: Path) -> None:
    event = {"uri": str(roots / "run-a" / "step-100")}
    assert post(client, event, secret="wrong").status_code == 401
    unsigned = client.post("/v1/checkpoints", json=event)
    assert unsigned.status_code == 401
    assert "X-Tripwire-Signature" in unsigned.json()["detail"]


def test_a_replayed_request_is_refused(client: TestClient, roots: Path) -> None:
    raw = json.dumps({"uri": str(roots / "run-a" / "step-100")}).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-Tripwire-Timestamp": stamp,
        "X-Tripwire-Signature": signature(SECRET.encode(), stamp, raw),
    }
    assert client.post("/v1/checkpoints", content=raw, headers=headers).status_code == 202
    again = client.post("/v1/checkpoints", content=raw, headers=headers)
    assert again.status_code == 409 and "replay" in again.json()["detail"]


def test_a_stale_timestamp_is_refused(client: TestClient, roots: Path) -> None:
    event = {"uri": str(roots / "run-a" / "step-100")}
    old = post(client, event, at=time.time() - 301)
    assert old.status_code == 401 and "stale" in old.json()["detail"]
    assert post(client, event, at=time.time() + 301).status_code == 401


@pytest.mark.parametrize(
    "uri",
    [
        "/etc",
        "{root}/../outside",
        "{root}/run-a/../../outside",
        "file://{root}/../x",
        "s3://bucket/ckpts/../other",
        "s3://bucket/elsewhere/x",
        "s3://bucket/ckptsX/x",
        "relative/path",
        "{root}/link-out",
    ],
)
def test_a_uri_outside_the_roots_is_403(
    client: TestClient, roots: Path, tmp_path: Path, uri: str
) -> None:
    (tmp_path / "outside").mkdir(exist_ok=True)
    link = roots / "link-out"
    if not link.exists():
        link.symlink_to(tmp_path / "outside")
    answer = post(client, {"uri": uri.format(root=roots)})
    assert answer.status_code == 403, answer.text


def test_an_oversize_body_is_413(client: TestClient, roots: Path) -> None:
    event = {"uri": str(roots / "run-a" / "step-100"), "notes": {"pad": "x" * 4000}}
    assert post(client, event).status_code == 413


def test_malformed_bodies_are_422_naming_the_field(client: TestClient, roots: Path) -> None:
    assert post(client, b"{not json").status_code == 422
    bad = post(client, {"uri": str(roots), "step": -1})
    assert bad.status_code == 422
    assert [p["field"] for p in bad.json()["problems"]] == ["step"]
    assert "step" in bad.json()["detail"]
    unknown = post(client, {"uri": str(roots), "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    missing = post(client, {"step": 3})
    assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "uri"
    assert post(client, b"[1, 2]").status_code == 422


def test_the_webhook_is_off_without_a_secret(database_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(database_url, tmp_path))) as c:
        assert post(c, {"uri": "/x"}).status_code == 404


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "uri": st.sampled_from(["/etc", "s3://bucket/ckpts/a", "s3://bucket/ckpts/../b", ""])
        | st.text(max_size=30),
        "run": JSON,
        "step": JSON,
        "stage": JSON,
        "parents": JSON,
        "tokens_seen": JSON,
        "training_flop": JSON,
        "notes": JSON,
        "content_hash": JSON,
    },
)


def test_signed_generated_bodies_never_get_a_server_error(client: TestClient) -> None:
    """Signed, so generated bodies get past the signature to validation, roots and storage."""

    @settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=FIELDS | JSON, raw=st.binary(max_size=64))
    def no_server_error(body: Any, raw: bytes) -> None:
        for payload in (json.dumps(body).encode(), raw):
            answer = post(client, payload)
            assert answer.status_code in (202, 403, 409, 413, 422), answer.text

    no_server_error()


def test_schemathesis_finds_no_server_error(client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().path == "/v1/checkpoints"]

    @settings(
        max_examples=30,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def no_server_error(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()
