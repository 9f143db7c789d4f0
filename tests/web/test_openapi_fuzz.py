"""Schemathesis against the app's own OpenAPI schema: generated requests to every operation, as
a reviewer, never get a 5xx. Short and deterministic (few examples, derandomized)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.seed import settings_for
from tests.web.reviewing import hex_of, land_and_decide, load_test_policy, make_token
from tripwire.store.db import Database
from tripwire.store.models import Role
from tripwire.web.app import create_app

MAX_EXAMPLES = 12


@pytest.fixture
def reviewer_app(database_url: str, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The app over a decided run (an open review, a held checkpoint) and a reviewer's token."""
    db = Database(database_url)
    policy = load_test_policy(tmp_path)
    for step, accuracy in ((100, 0.40), (200, 0.47), (300, 0.62)):
        land_and_decide(db, policy, step, accuracy)
    token = make_token(db, "fuzzer", Role.reviewer)
    db.dispose()
    yield create_app(settings_for(database_url, tmp_path)), token


def test_no_operation_answers_a_server_error(reviewer_app: tuple[Any, str]) -> None:
    app, token = reviewer_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/api/reviews", "/api/gate/{checkpoint}", "/checkpoints/{checkpoint}/reviews"} <= {
        operation.path for operation in operations
    }
    for strategy in _strategies(operations):

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def no_server_error(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
            )

        no_server_error()


def _strategies(operations: list[Any]) -> Iterator[Any]:
    """Each operation as generated; those that name a checkpoint once more with the checkpoint
    set to one in the store (held 300, open 200), so generated bodies reach the review logic."""
    real = st.sampled_from([hex_of(200), hex_of(300), hex_of(300)[:8], hex_of(100)[-12:]])
    for operation in operations:
        yield operation.as_strategy()
        if "{checkpoint}" in operation.path:
            yield st.tuples(operation.as_strategy(), real).map(_at)


def _at(pair: tuple[Any, str]) -> Any:
    case, checkpoint = pair
    case.path_parameters = {**(case.path_parameters or {}), "checkpoint": checkpoint}
    return case
