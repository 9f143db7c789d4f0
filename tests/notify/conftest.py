"""Fixtures for the outbox tests: a database, a clock the tests move, local receivers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.notify.receivers import HttpReceiver
from tripwire.store.db import Database
from tripwire.store.models import utcnow


class Clock:
    """ "Now" for a sender, moved by the test (rows are stamped with the real time, a little
    before this clock starts, so they are due at once)."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=5)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """An HTTP receiver on a reserved port, down until the test starts it."""
    found = HttpReceiver()
    try:
        yield found
    finally:
        found.stop()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return path
