"""The ``tripwire`` command line (typer). Each module registers its commands on ``app``; they are
imported in the order ``tripwire --help`` lists them."""

# isort: off
from tripwire.cli.app import app
from tripwire.cli import (
    run,
    data,
    store,
    decide,
    lineage,
    proxy,
    system,
    review,
    access,
    notify,
    demo,
)

# isort: on

__all__ = [
    "access",
    "app",
    "data",
    "decide",
    "demo",
    "lineage",
    "notify",
    "proxy",
    "review",
    "run",
    "store",
    "system",
]


def main() -> None:  # pragma: no cover - console script entry
    app()
