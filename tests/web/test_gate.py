"""The deployment gate: held, allowed and unknown answers over the API and from ``tripwire gate``;
a held checkpoint never becomes a baseline, and approving it lets it become one."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.seed import settings_for
from tests.servers import serving
from tests.web.reviewing import (
    bearer,
    content_hash,
    hex_of,
    land,
    land_and_decide,
    load_test_policy,
    make_token,
)
from tripwire.cli import app as cli
from tripwire.store.db import Database
from tripwire.store.models import Decision, Role
from tripwire.web.app import create_app


def _baselines(db: Database, checkpoint_id: int) -> set[int | None]:
    with db.session() as s:
        return set(
            s.scalars(
                select(Decision.baseline_checkpoint_id).where(
                    Decision.checkpoint_id == checkpoint_id
                )
            )
        )


def test_a_held_checkpoint_never_becomes_a_baseline_and_approving_it_releases_it(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    policy = load_test_policy(tmp_path)
    first = land_and_decide(db, policy, 100, 0.40)
    rise = land_and_decide(db, policy, 200, 0.47)  # +7: deep evaluations, the next baseline
    token = make_token(db, "alice", Role.reviewer)
    with TestClient(create_app(settings_for(database_url, tmp_path))) as client:
        held = client.post(
            f"/api/checkpoints/{hex_of(200)}/reviews",
            json={"action": "hold", "comment": "suspicious jump"},
            headers=bearer(token),
        )
        assert held.status_code == 201
        after_hold = land_and_decide(db, policy, 300, 0.42)
        assert _baselines(db, after_hold) == {first}  # not the held 200
        approved = client.post(
            f"/api/checkpoints/{hex_of(200)}/reviews",
            json={"action": "approve", "comment": "cleared"},
            headers=bearer(token),
        )
        assert approved.json()["held"] is False
        after_release = land_and_decide(db, policy, 400, 0.43)
        assert _baselines(db, after_release) == {rise}  # released: the baseline again
    db.dispose()


def test_the_gate_answers_held_allowed_and_unknown(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    policy = load_test_policy(tmp_path)
    land_and_decide(db, policy, 100, 0.40)
    land_and_decide(db, policy, 200, 0.62)  # +22: held by rise-12-hold
    land(db, 300, 0.62)  # proxy results stored, not decided yet
    token = make_token(db, "release-pipeline", Role.viewer)
    with TestClient(create_app(settings_for(database_url, tmp_path))) as client:

        def ask(checkpoint: str) -> tuple[int, dict[str, str]]:
            response = client.get(f"/api/gate/{checkpoint}", headers=bearer(token))
            return response.status_code, response.json()

        assert ask(hex_of(100)) == (
            200,
            {
                "checkpoint": content_hash(100),
                "answer": "allowed",
                "reason": "decided and not held",
            },
        )
        status, held = ask(hex_of(200)[-64:])
        assert (status, held["answer"]) == (200, "held")
        assert held["reason"].startswith("held by rule 'rise-12-hold' (critical)")
        status, undecided = ask(hex_of(300))
        assert (status, undecided["answer"]) == (200, "unknown")
        assert undecided["reason"].startswith("not decided yet (state: discovered)")
        status, missing = ask("f" * 64)
        assert (status, missing["answer"]) == (404, "unknown")
        assert missing["reason"].startswith("no checkpoint in the store matches")
        status, ambiguous = ask("00000000")
        assert (status, ambiguous["answer"]) == (409, "unknown")
    db.dispose()


def test_tripwire_gate_exits_0_allowed_1_held_2_unknown(database_url: str, tmp_path: Path) -> None:
    """From the database (no TRIPWIRE_API_URL) and over the API of a live server."""
    db = Database(database_url)
    policy = load_test_policy(tmp_path)
    land_and_decide(db, policy, 100, 0.40)
    land_and_decide(db, policy, 200, 0.62)
    land(db, 300, 0.62)
    token = make_token(db, "release-pipeline", Role.viewer)
    base_env = {
        "TRIPWIRE_HOME": str(tmp_path / "home"),
        "TRIPWIRE_DATABASE_URL": database_url,
        "TRIPWIRE_API_URL": "",
        "TRIPWIRE_TOKEN": "",
    }
    cases = {
        hex_of(100)[:62]: (0, f"allowed {content_hash(100)}: decided and not held"),
        f"sha256:{hex_of(200)}": (1, f"held {content_hash(200)}: held by rule 'rise-12-hold'"),
        hex_of(300): (2, f"unknown {content_hash(300)}: not decided yet"),
        "f" * 12: (2, "unknown ffffffffffff: no checkpoint in the store matches"),
    }
    runner = CliRunner()
    for checkpoint, (code, start) in cases.items():
        result = runner.invoke(cli, ["gate", checkpoint], env=base_env)
        assert (result.exit_code, result.output.startswith(start)) == (code, True), result.output
        assert len(result.output.strip().splitlines()) == 1
    with serving(create_app(settings_for(database_url, tmp_path))) as base:
        api_env = base_env | {"TRIPWIRE_API_URL": base, "TRIPWIRE_TOKEN": token}
        for checkpoint, (code, start) in cases.items():
            result = runner.invoke(cli, ["gate", checkpoint], env=api_env)
            assert (result.exit_code, result.output.startswith(start)) == (code, True), (
                result.output
            )
        refused = runner.invoke(
            cli, ["gate", hex_of(100)], env=api_env | {"TRIPWIRE_TOKEN": "twk_revoked"}
        )
        assert refused.exit_code == 2
        assert refused.output.startswith("error: the review app at ")
        assert "refused the token (401)" in refused.output
    db.dispose()
