"""The ``tripwire`` command line (typer). Each module registers its commands on ``app``; they are
imported in the order ``tripwire --help`` lists them."""

# isort: off
from tripwire.cli.app import app
from tripwire.cli import run, store, decide, proxy, review, access, notify, demo

# isort: on

__all__ = ["access", "app", "decide", "demo", "notify", "proxy", "review", "run", "store"]


def main() -> None:  # pragma: no cover - console script entry
    app()
