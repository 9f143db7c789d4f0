"""Commands about policies and decisions: ``policy check``, ``decide``, ``backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tripwire.cli.app import (
    app,
    console,
    err,
    fail,
    policy_app,
    services_in_one_line,
    settings_for,
)
from tripwire.errors import TripwireError

if TYPE_CHECKING:
    from tripwire.policy.check import Observed
    from tripwire.policy.schema import LoadedPolicy


@app.command()
@services_in_one_line
def decide(
    policy: Annotated[Path, typer.Option(help="The policy to apply (a changed or new one).")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only checkpoints whose proxy evaluation is at or after this time "
            "(ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00Z); default every checkpoint."
        ),
    ] = None,
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    dispatch: Annotated[
        bool,
        typer.Option(
            help="Queue the deep evaluations, holds and notifications the new decisions call "
            "for (sent by the running watcher or worker). --no-dispatch only records the "
            "decisions."
        ),
    ] = True,
) -> None:
    """Apply a policy to checkpoints already decided: append its decision records.

    A policy change is explicit: the live records stay as they were, and the new ones sit beside
    them (origin "redecide"). Checkpoints are decided in step order within each run.
    """
    from tripwire.decisions.redecide import parse_since, redecide
    from tripwire.policy.schema import load_policy
    from tripwire.store.db import Database

    settings = settings_for()
    try:
        loaded = load_policy(policy)
        db = Database.for_settings(settings)
        result = redecide(
            db,
            loaded,
            since=parse_since(since) if since else None,
            run=run,
            dispatch=dispatch,
            max_attempts=settings.max_attempts,
        )
    except TripwireError as exc:
        raise fail(exc) from None
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy file.")],
    allow_underpowered: Annotated[
        bool, typer.Option(help="Warn, instead of failing, on rules that cannot decide.")
    ] = False,
    discordance: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            max=1,
            help="Share of items changing between a checkpoint and its baseline. Default: the "
            "policy's planning.discordance, else the median observed in stored decisions, "
            "else 0.25.",
        ),
    ] = None,
    power: Annotated[
        float | None, typer.Option(min=0.5, max=0.999, help="Power for the MDE (default 0.8).")
    ] = None,
    base_score: Annotated[
        float | None,
        typer.Option(min=1, max=99, help="Reference score (points) for relative scales."),
    ] = None,
    stored: Annotated[
        bool,
        typer.Option(help="Read the observed discordance from TRIPWIRE_DATABASE_URL if it exists."),
    ] = True,
) -> None:
    """Validate a policy and print each rule's minimum detectable effect for the suite sizes."""
    from tripwire.policy.check import check_policy, power_table

    observed = _observed_discordance() if stored and discordance is None else None
    try:
        check = check_policy(
            file, discordance=discordance, power=power, base_score=base_score, observed=observed
        )
        _check_task_names(check.loaded)
    except TripwireError as exc:
        raise fail(exc) from None
    loaded = check.loaded
    console.print(
        f"{file}: valid · policy {loaded.name} · hash {loaded.content_hash[:12]} · "
        f"{len(loaded.policy.rules)} rules · proxy suite {loaded.proxy_suite.name}"
    )
    console.print(power_table(check))
    for line in check.unknown:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    for line in check.warnings:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    label = "[yellow]warning:[/]" if allow_underpowered else "[bold red]error:[/]"
    for line in check.underpowered:
        err.print(f"{label} {line}", highlight=False, soft_wrap=True)
    if check.underpowered and not allow_underpowered:
        raise typer.Exit(code=2)


def _check_task_names(loaded: LoadedPolicy) -> None:
    """Every suite the policy runs names only tasks lm-eval (or its include folders) defines."""
    from tripwire.runner import Runner

    runner = Runner(cache_dir=settings_for().home / "cache")
    for suite in [loaded.proxy_suite, *loaded.deep_suites.values()]:
        runner.check_names(suite)


def _observed_discordance() -> Observed | None:
    """Discordance observed in the store's decisions, when a store exists and answers."""
    from tripwire.decisions.read import observed_discordance
    from tripwire.policy.check import Observed
    from tripwire.store.db import Database

    settings = settings_for()
    url = settings.resolved_database_url()
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).is_file():
        return None
    try:
        db = Database(url)
        try:
            with db.session() as session:
                found = observed_discordance(session)
        finally:
            db.dispose()
    except Exception:  # no store, or one without decisions yet: plan with the defaults
        return None
    return Observed(found) if found else None


@app.command()
@services_in_one_line
def backtest(
    policy: Annotated[Path, typer.Option(help="Policy file to replay.")],
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    compute_factor: Annotated[
        float, typer.Option(min=1.01, help="The compute rule compared: every this-x compute.")
    ] = 4.0,
) -> None:
    """Replay stored proxy results through a policy, beside what happened and a compute rule."""
    from tripwire.history import backtest_table, run_backtest
    from tripwire.policy.schema import load_policy
    from tripwire.store.db import Database

    settings = settings_for()
    try:
        loaded = load_policy(policy)
        db = Database.for_settings(settings)
        with db.session() as session:
            result = run_backtest(session, loaded, run, compute_factor)
    except TripwireError as exc:
        raise fail(exc) from None
    for line in backtest_table(result, loaded.name):
        console.print(line)
