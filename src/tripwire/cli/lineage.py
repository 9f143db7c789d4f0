"""``tripwire lineage``: a checkpoint's ancestors, compute and baseline."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tripwire.cli.app import app, console, fail, services_in_one_line, settings_for
from tripwire.errors import TripwireError


@app.command()
@services_in_one_line
def lineage(
    checkpoint: Annotated[str, typer.Argument(help="Content hash, or 8+ leading hex characters.")],
    limit: Annotated[int, typer.Option(help="Ancestors shown at most.")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Print a checkpoint's lineage: its run's earlier steps and the parents its metadata
    names (across runs), with stages, steps and compute (declared, estimated 6·N·D, and
    cumulative along the lineage), and which ancestor is its baseline and why."""
    from tripwire.lineage.chain import chain_of, flop
    from tripwire.reviews import find_checkpoint
    from tripwire.store.db import Database

    try:
        db = Database.for_settings(settings_for(), writing=False)
        with db.session() as session:
            chain = chain_of(session, find_checkpoint(session, checkpoint), limit=limit)
    except TripwireError as exc:
        raise fail(exc) from None
    if json_out:
        console.print_json(chain.model_dump_json())
        return
    table = Table(
        "hops",
        "via",
        "checkpoint",
        "run",
        "step",
        "stage",
        "tokens",
        "params (active/total)",
        "own FLOP decl./est.",
        "cumulative FLOP decl./est.",
        "deep",
        "baseline",
        title="lineage",
    )
    for link in chain.links:
        params = (
            "?"
            if link.params_total is None
            else f"{link.params_active:.3g}/{link.params_total:.3g}"
        )
        table.add_row(
            str(link.hops),
            link.via,
            link.content_hash[7:19],
            link.run,
            "-" if link.step is None else str(link.step),
            link.stage,
            "?" if link.tokens_seen is None else f"{link.tokens_seen:.3g}",
            params,
            f"{flop(link.own_declared_flop)} / {flop(link.own_estimated_flop)}",
            f"{flop(link.cumulative_declared_flop)} / {flop(link.cumulative_estimated_flop)}",
            "yes" if link.deep_evaluated else "-",
            "<- baseline" if link.content_hash == chain.baseline else "",
        )
    console.print(table)
    for ref in chain.unresolved:
        console.print(f"parent not in the store: {ref}", highlight=False, soft_wrap=True)
    console.print(f"baseline: {chain.why}", highlight=False, soft_wrap=True)
