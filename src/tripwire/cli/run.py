"""Commands that run the loop: ``eval``, ``watch``, ``worker``, ``serve``, ``status``."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tripwire.cli.app import (
    app,
    cache_app,
    console,
    err,
    fail,
    services_in_one_line,
    settings_for,
)
from tripwire.errors import TripwireError
from tripwire.settings import Settings, shown_url
from tripwire.status import DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    pass


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
    from tripwire.runner.response_store import response_cache_for
    from tripwire.suites import load_suite

    settings = settings_for()
    try:
        loaded = load_suite(suite)
        runner = Runner(
            device=device or settings.device,
            batch_size=batch_size or loaded.suite.batch_size or settings.batch_size,
            allow_pickle=settings.allow_pickle,
            cache_dir=settings.home / "cache",
            data_dir=settings.home / "data",
            logs_dir=settings.home / "logs",
            responses=response_cache_for(settings),
        )
        with (
            console.status(f"scoring {checkpoint} on {loaded.name}", spinner="dots")
            if not as_json
            else _null()
        ):
            result = runner.evaluate(
                checkpoint, loaded, content_hash=_content_hash(checkpoint, settings)
            )
    except TripwireError as exc:
        raise fail(exc) from None
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


@app.command("fetch-data")
def fetch_data(
    suites: Annotated[list[Path], typer.Argument(help="Suite files (evals/*.yaml).")],
) -> None:
    """Download the datasets of the suites' lm-eval tasks into the Hugging Face cache (HF_HOME),
    for workers that run offline. Needs hub access: TRIPWIRE_ALLOW_HUB=1 (and HF_TOKEN for
    gated data such as GPQA)."""
    from tripwire.offline import hub_allowed
    from tripwire.runner import Runner
    from tripwire.suites import load_suite

    if not hub_allowed():
        raise fail(
            TripwireError(
                "fetch-data downloads from the Hugging Face hub: run it with "
                "TRIPWIRE_ALLOW_HUB=1 (e.g. docker compose run --rm -e TRIPWIRE_ALLOW_HUB=1 "
                "worker-cpu tripwire fetch-data evals/proxy.yaml evals/deep.yaml)"
            )
        )
    settings = settings_for()
    runner = Runner(
        device="cpu",
        batch_size=1,
        allow_pickle=False,
        cache_dir=settings.home / "cache",
        data_dir=settings.home / "data",
        progress=False,
    )
    try:
        for path in suites:
            suite = load_suite(path)
            with console.status(f"fetching the data of {suite.name}", spinner="dots"):
                tasks = runner.fetch_data(suite)
            console.print(f"{suite.name}: {len(tasks)} tasks cached ({', '.join(tasks)})")
    except TripwireError as exc:
        raise fail(exc) from None
    console.print(f"Hugging Face cache: {os.environ.get('HF_HOME', '~/.cache/huggingface')}")


@cache_app.command("info")
def cache_info() -> None:
    """How many checkpoints' answers are cached, and the folder's size against its bound."""
    from tripwire.runner.response_store import ResponseCache

    settings = settings_for()
    cache = ResponseCache(
        settings.response_cache_dir(), int(settings.response_cache_max_gb * 1024**3)
    )
    info = cache.info()
    state = "on" if settings.response_cache else "off (TRIPWIRE_RESPONSE_CACHE=false)"
    console.print(
        f"response cache {state} at {cache.root}: {info.checkpoints} checkpoints, "
        f"{info.answers} answers, {info.size_bytes / 1024**2:.1f} MiB of "
        f"{info.max_bytes / 1024**3:.1f} GiB",
        highlight=False,
    )


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every cached answer (the next evaluation of each checkpoint computes them again)."""
    from tripwire.runner.response_store import ResponseCache

    settings = settings_for()
    removed = ResponseCache(settings.response_cache_dir(), 0).clear()
    console.print(f"removed the cached answers of {removed} checkpoints", highlight=False)


def _content_hash(checkpoint: Path, settings: Settings) -> str | None:
    """The checkpoint folder's content hash (weights and config), through the home's hash
    cache; None when the folder holds no weights (the runner then says what is wrong)."""
    from tripwire.jobs.context import hash_cache_path
    from tripwire.sources.hashing import HashCache
    from tripwire.sources.identity import hash_listing
    from tripwire.sources.layout import list_dir

    if not checkpoint.is_dir():
        return None
    listing = list_dir(checkpoint)
    if not listing.identity_files():
        return None
    with HashCache(hash_cache_path(settings)) as cache:
        return hash_listing(listing, cache)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@app.command()
@services_in_one_line
def watch(
    directory: Annotated[
        list[str],
        typer.Argument(help="Folders or object-store prefixes (s3://bucket/prefix) to watch."),
    ],
    policy: Annotated[
        Path | None, typer.Option(help="Policy file; default TRIPWIRE_POLICY.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Scan once, wait for the work, and exit.")] = False,
) -> None:
    """Discover checkpoints and process them until stopped (Ctrl-C)."""
    from tripwire.jobs.service import Service

    settings = settings_for(policy)
    try:
        service = Service(settings, directory)  # refuses an unreachable broker at once
    except TripwireError as exc:
        raise fail(exc) from None
    stop = threading.Event()
    # SIGTERM (docker stop, systemd) stops the loop like Ctrl-C: the reconciler thread ends and
    # the watcher notes that it stopped on purpose. As PID 1 without a handler it would be
    # ignored until the container is killed.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        with service:
            if once:
                service.watcher.poll_once()
                service.wait_until_settled()
            else:
                console.print(
                    f"watching {', '.join(map(str, directory))} with policy "
                    f"{service.ctx.policy.name} ({service.ctx.policy.content_hash[:12]}); "
                    + (
                        "embedded worker"
                        if service.embedded
                        else f"broker {shown_url(str(settings.broker_url))}"
                    )
                )
                try:
                    service.watcher.run(stop, on_scan=service.log_scan)
                except KeyboardInterrupt:
                    stop.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_status(settings)


@app.command()
@services_in_one_line
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
    hostname: Annotated[
        str | None,
        typer.Option(
            help="Celery node name (%h is the host name). Default <queues>.<pid>@%h, or "
            "<queues>.gpu<N>@%h per GPU: unique on the host, so `celery inspect` and Flower "
            "see every worker. With --gpus or --cpu-workers, .gpu<N> / .cpu<I> is added.",
        ),
    ] = None,
) -> None:
    """Run Celery workers on TRIPWIRE_BROKER_URL (Redis in production)."""
    settings = settings_for()
    if not settings.broker_url:
        raise fail(
            TripwireError(
                "tripwire worker needs TRIPWIRE_BROKER_URL (e.g. redis://localhost:6379/0); "
                "without a broker, `tripwire watch` runs its own embedded worker"
            )
        )
    from tripwire.jobs.celery_config import QUEUES

    queue_list = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(queue_list) - set(QUEUES)) or ([] if queue_list else ["(none)"])
    if unknown:
        raise fail(
            TripwireError(
                f"--queues: unknown queue {', '.join(unknown)}; allowed: {', '.join(QUEUES)}"
            )
        )
    from tripwire.jobs.workers import Supervisor, check_cuda, node_name, plan_workers, probe_cuda

    if gpus is not None or cpu_workers > 1:
        try:
            specs = plan_workers(gpus, queue_list, cpu_workers, loglevel, hostname=hostname)
        except ValueError as exc:
            raise fail(TripwireError(str(exc))) from None
        except TripwireError as exc:
            raise fail(exc) from None
        _check_services(settings)
        if gpus is not None and gpus.strip() == "auto" and all(s.gpu is None for s in specs):
            console.print("--gpus auto: no GPU found (no nvidia-smi); running CPU workers")
        for spec in specs:
            console.print(
                f"worker {spec.node_name()}: {'GPU ' + spec.gpu if spec.gpu else 'CPU'}, "
                f"queues {','.join(spec.queues)}"
            )
        raise typer.Exit(code=Supervisor(specs, shutdown_grace_s=shutdown_grace_s).run())
    if settings.device.startswith("cuda"):  # a GPU asked for that is not there is an error
        index = settings.device.partition(":")[2] or "0"
        try:
            check_cuda([index], f"TRIPWIRE_DEVICE={settings.device}", probe_cuda())
        except TripwireError as exc:
            raise fail(exc) from None
    _check_services(settings)
    from tripwire.jobs import tasks

    tasks.configure(settings.broker_url, settings)
    node = node_name(queue_list, "" if hostname else str(os.getpid()), hostname)
    tasks.start_worker(
        queues=queue_list, concurrency=concurrency, pool=pool, loglevel=loglevel, hostname=node
    )


def _check_services(settings: Settings) -> None:
    """Fail in one line now if the broker or the database does not answer, rather than start
    workers that would only log connection errors."""
    from tripwire.jobs.celery_config import check_broker
    from tripwire.store.db import make_engine

    try:
        check_broker(str(settings.broker_url))
    except TripwireError as exc:
        raise fail(exc) from None
    engine = make_engine(settings.resolved_database_url())
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


@app.command()
@services_in_one_line
def status(
    run: Annotated[str | None, typer.Option(help="Only this run's checkpoints.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIMIT, help="Checkpoints per page, in (run, step) order.")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, typer.Option(min=0, help="Checkpoints to skip (the next page).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON.")] = False,
) -> None:
    """Runs, checkpoints and their state, one page at a time; job counts; waiting folders."""
    _print_status(settings_for(), run=run, limit=limit, offset=offset, as_json=as_json)


@app.command()
@services_in_one_line
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the review app, its JSON API (/docs), /metrics (Prometheus) and /healthz."""
    import uvicorn

    from tripwire.web.app import create_app
    from tripwire.web.auth import exposure_warning

    settings = settings_for()
    warning = exposure_warning(host, settings.https_only)
    if warning is not None:
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _print_status(
    settings: Settings,
    *,
    run: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    as_json: bool = False,
) -> None:
    from tripwire.status import UnknownRunError, read_status, render_tables

    try:
        snapshot, url = read_status(settings, run=run, limit=limit, offset=offset)
    except TripwireError as exc:
        raise fail(exc) from None
    except UnknownRunError:
        err.print(f"no run named {run!r}; `tripwire status` lists the runs", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(snapshot.model_dump_json(indent=2) + "\n")
        return
    for table in render_tables(snapshot, url):
        console.print(table)
