"""``tripwire token`` against the database, and ``tripwire review`` against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from tests.seed import settings_for
from tests.servers import closed_port, serving
from tests.web.reviewing import hex_of, land_and_decide, load_test_policy, make_token
from tripwire.cli import app as cli
from tripwire.store.db import Database
from tripwire.store.models import ApiToken, Review, Role
from tripwire.web.app import create_app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "TRIPWIRE_HOME": str(tmp_path / "home"),
        "TRIPWIRE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
        "TRIPWIRE_API_URL": "",
        "TRIPWIRE_TOKEN": "",
    }


def run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, args, env=env)


def test_token_create_prints_the_token_once_and_list_and_revoke_manage_it(
    env: dict[str, str],
) -> None:
    created = run(["token", "create", "--name", "alice", "--role", "reviewer"], env)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("twk_") and len(token) == 47
    assert "shown once" in created.stderr
    db = Database(env["TRIPWIRE_DATABASE_URL"])
    with db.session() as s:
        assert token not in {t.token_hash for t in s.scalars(select(ApiToken))}
    db.dispose()
    again = run(["token", "create", "--name", "alice", "--role", "admin"], env)
    assert again.exit_code == 2 and "a token named 'alice' exists" in again.output
    bad_role = run(["token", "create", "--name", "bob", "--role", "root"], env)
    assert bad_role.exit_code == 2
    listed = run(["token", "list"], env)
    assert "alice" in listed.output and "reviewer" in listed.output and token[:10] in listed.output
    assert token not in listed.output
    revoked = run(["token", "revoke", "alice"], env)
    assert revoked.exit_code == 0 and revoked.output.startswith("revoked alice")
    unknown = run(["token", "revoke", "nobody"], env)
    assert unknown.exit_code == 2 and "no token named 'nobody'; tokens: alice" in unknown.output


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A live server over a decided run (200: an open alert; 300: held by a critical rule) and
    the environment of a reviewer's shell."""
    db = Database(env["TRIPWIRE_DATABASE_URL"])
    policy = load_test_policy(tmp_path)
    for step, accuracy in ((100, 0.40), (200, 0.47), (300, 0.62)):
        land_and_decide(db, policy, step, accuracy)
    reviewer = make_token(db, "alice", Role.reviewer)
    viewer = make_token(db, "victor", Role.viewer)
    db.dispose()
    with serving(create_app(settings_for(env["TRIPWIRE_DATABASE_URL"], tmp_path))) as base:
        yield env | {"TRIPWIRE_API_URL": base, "TRIPWIRE_TOKEN": reviewer, "VIEWER": viewer}


def test_review_list_and_show_read_the_queue(server: dict[str, str]) -> None:
    listed = run(["review", "list"], server)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    held = next(line for line in lines if "held" in line and "000000000000" in line)
    assert "critical" in held and "rise-12-hold" in held
    assert any("open" in line and "alert" in line and "rise-5" in line for line in lines)
    shown = run(["review", "show", hex_of(300)[-64:]], server)
    assert shown.exit_code == 0, shown.output
    assert "review status: held" in shown.output and "held by rule 'rise-12-hold'" in shown.output
    assert "no review actions yet" in shown.output


def test_review_actions_are_recorded_as_the_tokens_holder(server: dict[str, str]) -> None:
    held = run(["review", "hold", hex_of(200), "--comment", "wait for the red team"], server)
    assert held.exit_code == 0, held.output
    assert "hold: sha256:" in held.output and "by alice (reviewer)" in held.output
    assert "status now held" in held.output
    approved = run(["review", "approve", hex_of(300), "-m", "deep evals clean"], server)
    assert approved.exit_code == 0 and "status now approved" in approved.output
    released = run(["review", "release", hex_of(200)], server)
    assert released.exit_code == 0 and "status now open" in released.output
    acknowledged = run(["review", "acknowledge", hex_of(200)], server)
    assert acknowledged.exit_code == 0 and "status now acknowledged" in acknowledged.output
    escalated = run(["review", "escalate", hex_of(200), "-m", "bio team please"], server)
    assert escalated.exit_code == 0
    shown = run(["review", "show", hex_of(200)], server)
    assert "bio team please" in shown.output and "wait for the red team" in shown.output
    db = Database(server["TRIPWIRE_DATABASE_URL"])
    with db.session() as s:
        actions = [(r.action, r.actor) for r in s.scalars(select(Review).order_by(Review.id))]
    db.dispose()
    assert actions == [
        ("hold", "alice"),
        ("approve", "alice"),
        ("release", "alice"),
        ("acknowledge", "alice"),
        ("escalate", "alice"),
    ]


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["hold", "{cp}"], "reviewer", "error: refused (422): comment: hold needs a comment"),
        (["approve", "{cp}"], "viewer", "error: forbidden (403): this needs a reviewer or admin"),
        (["list"], "twk_wrong", "refused the token (401): unknown or revoked token"),
        (["list"], "", "needs a token (401): set TRIPWIRE_TOKEN"),
        (["show", "ffffffffff"], "reviewer", "error: not found (404): no checkpoint in the store"),
        (["show", "00000000"], "reviewer", "error: refused (409): '00000000' matches several"),
        (["release", "{first}"], "reviewer", "error: refused (409): checkpoint 000000000000 is"),
    ],
    ids=["no-comment", "viewer", "bad-token", "no-token", "unknown", "ambiguous", "not-held"],
)
def test_review_errors_are_one_line_and_say_what_to_do(
    server: dict[str, str], args: list[str], token: str, message: str
) -> None:
    tokens = {"reviewer": server["TRIPWIRE_TOKEN"], "viewer": server["VIEWER"]}
    argv = [
        "review",
        *(a.replace("{cp}", hex_of(200)).replace("{first}", hex_of(100)) for a in args),
    ]
    result = run(argv, server | {"TRIPWIRE_TOKEN": tokens.get(token, token)})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


def test_an_unreachable_review_app_is_one_line_naming_the_setting(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = run(["review", "list"], env | {"TRIPWIRE_API_URL": url, "TRIPWIRE_TOKEN": "twk_x"})
    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot reach the review app at {url}")
    assert "(TRIPWIRE_API_URL)" in result.output and "Traceback" not in result.output
