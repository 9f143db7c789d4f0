"""``tripwire proxy``: fit anchor subsets from stored full-item results, and show them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tripwire.cli.app import app, console, fail, services_in_one_line, settings_for
from tripwire.errors import TripwireError

proxy_app = typer.Typer(
    help="Anchor subsets fitted with an item-response model.", no_args_is_help=True
)
app.add_typer(proxy_app, name="proxy")


@proxy_app.command("fit")
@services_in_one_line
def proxy_fit(
    suite: Annotated[
        Path, typer.Argument(help="The suite the full-item results were scored with.")
    ],
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Tasks to fit (repeat); default all.")
    ] = None,
    anchors: Annotated[int, typer.Option(help="Anchor items per task.")] = 100,
    folds: Annotated[int, typer.Option(help="Cross-validation folds over checkpoints.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and of tie-breaks.")] = 0,
    floor: Annotated[
        float, typer.Option(help="Chance of a right answer without ability (0.25: four choices).")
    ] = 0.0,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the anchor files; default anchors/ by the suite."),
    ] = None,
) -> None:
    """Fit a 2PL on every stored checkpoint's full-item outcomes of SUITE, choose anchors,
    validate on held-out checkpoints and write one anchor file per task (TASK.json)."""
    from tripwire import __version__
    from tripwire.proxies.file import write_anchor_file
    from tripwire.proxies.fit import fit_anchor_file
    from tripwire.store.db import Database
    from tripwire.suites import load_suite

    try:
        loaded = load_suite(suite)
        names = task or [t.task for t in loaded.suite.tasks]
        folder = out or loaded.path.parent / "anchors"
        db = Database.for_settings(settings_for(), writing=False)
        with db.session() as session:
            for name in names:
                found = fit_anchor_file(
                    session,
                    loaded,
                    name,
                    n_anchors=anchors,
                    folds=folds,
                    seed=seed,
                    floor=floor,
                    version=__version__,
                )
                path = folder / f"{name}.json"
                write_anchor_file(found, path)
                held = found.held_out
                change_se = found.change_se()
                console.print(
                    f"{path}: {len(found.anchors)} anchors of {len(found.full.items)} items, "
                    f"fitted on {held.checkpoints} checkpoints; held out: MAE "
                    f"{held.mae_points:.2f} points (random {held.random_mae_points:.2f}), "
                    f"95% band coverage {held.coverage_95:.0%}; a change between two "
                    f"checkpoints: se {100 * change_se:.2f} points",
                    highlight=False,
                )
    except TripwireError as exc:
        raise fail(exc) from None


@proxy_app.command("show")
def proxy_show(
    file: Annotated[Path, typer.Argument(help="An anchor file.")],
    items: Annotated[bool, typer.Option(help="List every anchor with its parameters.")] = False,
) -> None:
    """Print an anchor file: what it was fitted on, its held-out error, its anchors."""
    from tripwire.proxies.file import load_anchor_file

    try:
        found = load_anchor_file(file)
    except TripwireError as exc:
        raise fail(exc) from None
    p, held = found.provenance, found.held_out
    n = len(found.full.items)
    se = found.expected_se()
    change_se = found.change_se()
    lines = [
        f"task {found.task} ({found.metric}), model {found.model} over a floor of "
        f"{found.floor:g}, selection: {found.selection}",
        f"anchors: {len(found.anchors)} of {n} items ({100 * len(found.anchors) / n:.1f}%)",
        f"fitted on {len(p.checkpoints)} checkpoints of suite {p.suite} ({p.suite_hash[:12]}) "
        f"at {p.created_at:%Y-%m-%d %H:%M} UTC, tripwire {p.tripwire}",
        f"held out ({held.folds}-fold over {held.checkpoints} checkpoints): MAE "
        f"{held.mae_points:.2f} points, random subset of the same size "
        f"{held.random_mae_points:.2f}; 95% band coverage {held.coverage_95:.0%}",
        f"misfit sd (part of every band): {100 * found.misfit_sd:.2f} points",
        f"planned band at the fitted mean ability: se {100 * se:.2f} points; a change between "
        f"two checkpoints on these anchors: se {100 * change_se:.2f} points "
        "(what tripwire policy check plans with)",
    ]
    console.print("\n".join(lines), highlight=False)
    if items:
        params = found.params
        for anchor, j in zip(found.anchors, found.index, strict=True):
            console.print(
                f"  {anchor.item[:24]:24}  weight {anchor.weight:.4f}  "
                f"a {params.a[j]:.3f}  b {params.b[j]:+.3f}",
                highlight=False,
            )
