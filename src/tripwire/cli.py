"""The ``tripwire`` command line."""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec

import typer
from rich.console import Console
from rich.table import Table

from tripwire.errors import BrokerError, StoreError, TripwireError
from tripwire.offline import enforce_offline
from tripwire.settings import Settings, shown_url

enforce_offline()

app = typer.Typer(
    help="Capability triggers for AI-safety evaluations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Validate and inspect trigger policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
audit_app = typer.Typer(help="Check the decision log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(width=None if sys.stdout.isatty() else 160)  # piped: no 80-column wrap
err = Console(stderr=True)


def _fail(exc: TripwireError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


P = ParamSpec("P")


def _services_in_one_line(command: Callable[P, None]) -> Callable[P, None]:
    """An unreachable database or broker ends the command with one line naming the setting
    and the host (never a password) and a non-zero exit, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable is None:
                raise
            raise _fail(unreachable) from None

    return wrapper


def _unreachable(exc: Exception) -> TripwireError | None:
    """``exc`` as a one-line error if it says the database or the broker cannot be reached."""
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    settings = Settings()
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        url = settings.resolved_database_url()
        detail = _redacted(str(exc.orig or exc).strip().splitlines()[0], url)
        return StoreError(
            f"cannot reach the database at {shown_url(url)} (TRIPWIRE_DATABASE_URL): {detail}"
        )
    broker_errors = (
        kombu.exceptions.OperationalError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )
    if isinstance(exc, broker_errors) and settings.broker_url:
        detail = _redacted(str(exc).strip().splitlines()[0], settings.broker_url)
        return BrokerError(
            f"cannot reach the broker at {shown_url(settings.broker_url)} "
            f"(TRIPWIRE_BROKER_URL): {detail}"
        )
    return None


def _redacted(message: str, url: str) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return message.replace(password, "***") if password else message


def _settings(policy: Path | None = None) -> Settings:
    settings = Settings()
    if policy is not None:
        settings.policy = policy
    return settings


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A Hugging Face checkpoint directory.")],
    suite: Annotated[Path, typer.Option(help="Suite file (evals/*.yaml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: Annotated[
        str | None, typer.Option(help="torch device; default TRIPWIRE_DEVICE.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="lm-eval batch size.")] = None,
) -> None:
    """Score one checkpoint on a suite and print a table (or JSON)."""
    from tripwire.runner import Runner
    from tripwire.suites import load_suite

    settings = _settings()
    try:
        loaded = load_suite(suite)
        runner = Runner(
            device=device or settings.device,
            batch_size=batch_size or loaded.suite.batch_size or settings.batch_size,
            allow_pickle=settings.allow_pickle,
            cache_dir=settings.home / "cache",
        )
        with (
            console.status(f"scoring {checkpoint} on {loaded.name}", spinner="dots")
            if not as_json
            else _null()
        ):
            result = runner.evaluate(checkpoint, loaded)
    except TripwireError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    table = Table(title=f"{loaded.name} on {checkpoint}")
    for column in ("task", "metric", "score", "± stderr", "items", "shots"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task in result.tasks.values():
        stderr = f"{100 * task.stderr:.2f}" if task.stderr is not None else "-"
        table.add_row(
            task.task,
            f"{task.metric} ({task.filter})",
            f"{100 * task.score:.2f}",
            stderr,
            str(task.n_items),
            str(task.num_fewshot),
        )
    console.print(table)
    console.print(
        f"suite {result.suite_hash[:12]} · lm-eval {result.versions.lm_eval} · "
        f"transformers {result.versions.transformers} · torch {result.versions.torch} · "
        f"{result.duration_s:.1f} s"
    )


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@app.command()
@_services_in_one_line
def watch(
    directory: Annotated[list[Path], typer.Argument(help="Folders where checkpoints land.")],
    policy: Annotated[
        Path | None, typer.Option(help="Policy file; default TRIPWIRE_POLICY.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Scan once, wait for the work, and exit.")] = False,
) -> None:
    """Discover checkpoints and process them until stopped (Ctrl-C)."""
    from tripwire.jobs.service import Service

    settings = _settings(policy)
    try:
        service = Service(settings, directory)  # refuses an unreachable broker at once
    except TripwireError as exc:
        raise _fail(exc) from None
    stop = threading.Event()
    with service:
        if once:
            service.watcher.poll_once()
            service.wait_until_settled()
        else:
            console.print(
                f"watching {', '.join(map(str, directory))} with policy "
                f"{service.ctx.policy.name} ({service.ctx.policy.content_hash[:12]}); "
                f"{'embedded worker' if service.embedded else 'broker ' + str(settings.broker_url)}"
            )
            try:
                service.watcher.run(stop, on_scan=service.log_scan)
            except KeyboardInterrupt:
                stop.set()
    _print_status(settings)


@app.command()
@_services_in_one_line
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "proxy,deep,control",
    gpus: Annotated[
        str | None,
        typer.Option(
            help="One worker process per GPU: device indices (0,1,...) or 'auto' (nvidia-smi). "
            "Without GPUs, CPU workers."
        ),
    ] = None,
    cpu_workers: Annotated[
        int, typer.Option(min=1, help="CPU worker processes when there is no GPU.")
    ] = 1,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Pool processes of a single worker (without --gpus).")
    ] = 1,
    pool: Annotated[str, typer.Option(help="Celery pool (without --gpus).")] = "prefork",
    loglevel: Annotated[str, typer.Option()] = "INFO",
    shutdown_grace_s: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM, how long running evaluations may finish before they are killed "
            "(their jobs are then retried elsewhere). With --gpus or --cpu-workers.",
        ),
    ] = 60.0,
) -> None:
    """Run Celery workers on TRIPWIRE_BROKER_URL (Redis in production)."""
    settings = _settings()
    if not settings.broker_url:
        raise _fail(
            TripwireError(
                "tripwire worker needs TRIPWIRE_BROKER_URL (e.g. redis://localhost:6379/0); "
                "without a broker, `tripwire watch` runs its own embedded worker"
            )
        )
    from tripwire.jobs.celery_config import QUEUES

    queue_list = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(queue_list) - set(QUEUES)) or ([] if queue_list else ["(none)"])
    if unknown:
        raise _fail(
            TripwireError(
                f"--queues: unknown queue {', '.join(unknown)}; allowed: {', '.join(QUEUES)}"
            )
        )
    if gpus is not None or cpu_workers > 1:
        from tripwire.jobs.workers import Supervisor, plan_workers

        try:
            specs = plan_workers(gpus, queue_list, cpu_workers, loglevel)
        except ValueError as exc:
            raise _fail(TripwireError(str(exc))) from None
        _check_services(settings)
        for spec in specs:
            console.print(
                f"worker {spec.name}: {'GPU ' + spec.gpu if spec.gpu else 'CPU'}, "
                f"queues {','.join(spec.queues)}"
            )
        raise typer.Exit(code=Supervisor(specs, shutdown_grace_s=shutdown_grace_s).run())
    _check_services(settings)
    from tripwire.jobs import tasks

    tasks.configure(settings.broker_url, settings)
    tasks.start_worker(queues=queue_list, concurrency=concurrency, pool=pool, loglevel=loglevel)


def _check_services(settings: Settings) -> None:
    """Fail in one line now if the broker or the database does not answer, rather than start
    workers that would only log connection errors."""
    from tripwire.jobs.celery_config import check_broker
    from tripwire.store.db import make_engine

    try:
        check_broker(str(settings.broker_url))
    except TripwireError as exc:
        raise _fail(exc) from None
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


@app.command()
@_services_in_one_line
def status() -> None:
    """Runs, checkpoints and their state."""
    _print_status(_settings())


@app.command()
@_services_in_one_line
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve /metrics (Prometheus), /healthz and the JSON API (/api/status, /docs)."""
    import uvicorn

    from tripwire.web.app import create_app

    uvicorn.run(create_app(_settings()), host=host, port=port, log_level="info")


def _print_status(settings: Settings) -> None:
    from tripwire.status import status_tables

    try:
        for table in status_tables(settings):
            console.print(table)
    except TripwireError as exc:
        raise _fail(exc) from None


@app.command()
@_services_in_one_line
def report(
    out: Annotated[Path | None, typer.Option(help="Folder; default TRIPWIRE_REPORT_DIR.")] = None,
) -> None:
    """Write the report pages of every checkpoint and run from the stored decision records.

    Nothing is decided again: the pages say what the live loop (and any `tripwire decide`)
    recorded, whatever policy file is around.
    """
    from tripwire.reports.build import write_all_reports
    from tripwire.store.db import Database

    settings = _settings()
    try:
        db = Database(settings.resolved_database_url())
        with db.session() as session:
            index = write_all_reports(session, out or settings.resolved_report_dir())
    except TripwireError as exc:
        raise _fail(exc) from None
    console.print(f"report: {index}")


@app.command()
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
            help="Queue the deep evaluations and holds the new decisions call for (sent by the "
            "running watcher or worker). --no-dispatch only records the decisions."
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

    settings = _settings()
    try:
        loaded = load_policy(policy)
        db = Database(settings.resolved_database_url())
        result = redecide(
            db,
            loaded,
            since=parse_since(since) if since else None,
            run=run,
            dispatch=dispatch,
            max_attempts=settings.max_attempts,
        )
    except TripwireError as exc:
        raise _fail(exc) from None
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy file.")],
    allow_underpowered: Annotated[
        bool, typer.Option(help="Warn, instead of failing, on rules that cannot decide.")
    ] = False,
    discordance: Annotated[
        float, typer.Option(min=0.001, max=1, help="Share of items changing between checkpoints.")
    ] = 0.25,
    power: Annotated[float, typer.Option(min=0.5, max=0.999, help="Power for the MDE.")] = 0.8,
    base_score: Annotated[
        float, typer.Option(min=1, max=99, help="Reference score (points) for relative scales.")
    ] = 50.0,
) -> None:
    """Validate a policy and print each rule's minimum detectable effect for the suite sizes."""
    from tripwire.policy.check import check_policy, power_table
    from tripwire.policy.power import Planning

    try:
        check = check_policy(file, Planning(discordance, power, base_score / 100))
    except TripwireError as exc:
        raise _fail(exc) from None
    loaded = check.loaded
    console.print(
        f"{file}: valid · policy {loaded.name} · hash {loaded.content_hash[:12]} · "
        f"{len(loaded.policy.rules)} rules · proxy suite {loaded.proxy_suite.name}"
    )
    console.print(power_table(check))
    for line in check.unknown:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    label = "[yellow]warning:[/]" if allow_underpowered else "[bold red]error:[/]"
    for line in check.underpowered:
        err.print(f"{label} {line}", highlight=False, soft_wrap=True)
    if check.underpowered and not allow_underpowered:
        raise typer.Exit(code=2)


@app.command()
@_services_in_one_line
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

    settings = _settings()
    try:
        loaded = load_policy(policy)
        db = Database(settings.resolved_database_url())
        with db.session() as session:
            result = run_backtest(session, loaded, run, compute_factor)
    except TripwireError as exc:
        raise _fail(exc) from None
    for line in backtest_table(result, loaded.name):
        console.print(line)


@audit_app.command("verify")
@_services_in_one_line
def audit_verify(
    head: Annotated[
        str | None, typer.Option(help="A head hash printed earlier: fail if it is gone.")
    ] = None,
) -> None:
    """Recompute the decision log's hash chain; name the first altered or removed record."""
    from tripwire.audit import verify_chain
    from tripwire.store.db import Database

    settings = _settings()
    try:
        db = Database(settings.resolved_database_url())
        with db.session() as session:
            result = verify_chain(session, expected_head=head)
    except TripwireError as exc:
        raise _fail(exc) from None
    if result.broken is not None:
        err.print(f"[bold red]broken:[/] {result.broken.message}", highlight=False, soft_wrap=True)
        err.print(f"{result.checked} records verified before it", highlight=False)
        raise typer.Exit(code=1)
    console.print(
        f"decision log intact: {result.checked} records; head {result.head} "
        "(keep it elsewhere and pass it back with --head to detect truncation)",
        highlight=False,
        soft_wrap=True,
    )


@db_app.command("upgrade")
@_services_in_one_line
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate TRIPWIRE_DATABASE_URL to the latest schema (safe to run from many hosts)."""
    from tripwire.store.db import make_engine
    from tripwire.store.migrate import current_revision, upgrade

    engine = make_engine(_settings().resolved_database_url())
    before = upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


@db_app.command("current")
@_services_in_one_line
def db_current() -> None:
    """Print the database's schema revision and the latest one."""
    from tripwire.store.db import make_engine
    from tripwire.store.migrate import current_revision, head_revision

    engine = make_engine(_settings().resolved_database_url())
    console.print(f"current {current_revision(engine) or 'none'} · head {head_revision()}")


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
        raise _fail(exc) from None


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
