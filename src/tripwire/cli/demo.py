"""``tripwire demo``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tripwire.cli.app import (
    app,
    console,
    fail,
)
from tripwire.errors import TripwireError

if TYPE_CHECKING:
    pass


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for checkpoints, database and reports.")] = Path(
        "demo-output"
    ),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 0,
    fresh: Annotated[bool, typer.Option(help="Delete OUT first.")] = True,
) -> None:
    """Train a tiny model on CPU and watch Tripwire trigger deep evaluations on it."""
    from tripwire.demo.run import run_demo

    logging.basicConfig(level=logging.WARNING)
    try:
        run_demo(out, steps=steps or None, fresh=fresh, console=console)
    except TripwireError as exc:
        raise fail(exc) from None
