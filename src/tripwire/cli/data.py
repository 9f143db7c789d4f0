"""``tripwire data import`` and ``tripwire data list``: the local benchmark data store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tripwire.cli.app import app, console, fail, settings_for
from tripwire.errors import TripwireError

data_app = typer.Typer(
    help="Benchmark data kept locally, read by lm-eval's built-in tasks offline.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("import")
def import_command(
    benchmark: Annotated[str, typer.Argument(help="mmlu, gpqa, arc, hellaswag, gsm8k or wmdp.")],
    path: Annotated[
        Path, typer.Argument(help="A file or folder in the benchmark's public layout.")
    ],
) -> None:
    """Read a benchmark's files into the data store ($TRIPWIRE_HOME/data): docs/benchmarks.md."""
    from tripwire.benchmarks import DataStore, import_benchmark

    settings = settings_for()
    store = DataStore(settings.home / "data")
    try:
        with console.status(f"importing {benchmark} from {path}", spinner="dots"):
            manifest = import_benchmark(benchmark, path, store, now=datetime.now(UTC))
    except TripwireError as exc:
        raise fail(exc) from None
    console.print(
        f"{manifest.benchmark}: {len(manifest.configs)} subsets, {manifest.items} items, "
        f"content {manifest.content_hash[:12]} in {store.folder(manifest.benchmark)}"
    )


@data_app.command("list")
def list_command() -> None:
    """What the data store holds: benchmark, subsets, items, content hash."""
    from tripwire.benchmarks import DataStore

    store = DataStore(settings_for().home / "data")
    manifests = store.manifests()
    if not manifests:
        console.print(f"no benchmark data in {store.root}: tripwire data import BENCHMARK PATH")
        return
    table = Table(title=f"benchmark data in {store.root}")
    for column in ("benchmark", "subsets", "splits", "items", "content", "imported"):
        table.add_column(column, justify="right" if column == "items" else "left")
    for m in manifests:
        subsets = ", ".join(m.configs) if len(m.configs) <= 4 else f"{len(m.configs)} subsets"
        splits = ", ".join(sorted({s for splits in m.configs.values() for s in splits}))
        imported = m.imported_at.strftime("%Y-%m-%d %H:%M") if m.imported_at else "-"
        table.add_row(m.benchmark, subsets, splits, str(m.items), m.content_hash[:12], imported)
    console.print(table)
