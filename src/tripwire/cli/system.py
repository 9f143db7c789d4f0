"""``tripwire system``: register a served system (an OpenAI-compatible endpoint) as a subject."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tripwire.cli.app import console, fail, services_in_one_line, settings_for, system_app
from tripwire.errors import TripwireError


@system_app.command("add")
@services_in_one_line
def system_add(
    name: Annotated[str, typer.Argument(help="The system's name: its run, unless --run.")],
    base_url: Annotated[str, typer.Option(help="The API base URL, up to /v1.")],
    model: Annotated[str, typer.Option(help="The model name the server expects.")],
    version: Annotated[
        str, typer.Option(help="What is served (deployment id, image digest): the identity.")
    ],
    api: Annotated[str, typer.Option(help="completions or chat.")] = "completions",
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Local tokenizer folder of the served model (log-likelihood tasks)."),
    ] = None,
    run: Annotated[str | None, typer.Option(help="Run to record it in; default NAME.")] = None,
    step: Annotated[int | None, typer.Option(help="Step; default one past the run's last.")] = None,
    stage: Annotated[str, typer.Option(help="Lineage stage recorded with it.")] = "deployed",
    wait: Annotated[
        bool,
        typer.Option(help="Without a broker: score it here and wait for every job it starts."),
    ] = False,
) -> None:
    """Register a served system; its proxy suite is queued like a new checkpoint's (scored by
    the workers, or here with --wait when no broker is configured). The API key, if the server
    needs one, is read from TRIPWIRE_SYSTEM_API_KEY when scoring, never stored."""
    from pydantic import ValidationError

    from tripwire.jobs.pipeline import ingest_system
    from tripwire.jobs.service import Service
    from tripwire.systems import SystemSpec

    settings = settings_for()
    try:
        spec = SystemSpec(
            base_url=base_url,
            model=model,
            api=api,
            version=version,
            tokenizer=str(tokenizer.resolve()) if tokenizer else None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "system"
        raise fail(TripwireError(f"{where}: {first['msg']}")) from None
    try:
        with Service(settings, []) as service:
            _, created = ingest_system(service.ctx, spec, run or name, step, stage)
            state = "registered" if created else "already registered"
            console.print(
                f"{state}: {run or name} ({spec.content_hash}) at {spec.base_url}", highlight=False
            )
            if wait and service.embedded:
                if not service.wait_until_settled():
                    raise TripwireError("jobs still unsettled after an hour; see tripwire status")
                console.print("scored: see tripwire status and the report pages", highlight=False)
            elif service.embedded:
                console.print(
                    "queued: `tripwire watch` scores it (no broker: the embedded worker), or "
                    "run this again with --wait",
                    highlight=False,
                )
    except TripwireError as exc:
        raise fail(exc) from None
