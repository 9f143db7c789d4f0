"""``tripwire demo``: train a tiny model beside a watcher and show the triggers fire.

The trainer runs in its own process, writing checkpoints the way a real trainer does (temporary
folder, atomic rename, ready marker last). Tripwire watches the folder with the embedded worker,
exactly as ``tripwire watch`` would: nothing is handed to it directly.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from tripwire.errors import TripwireError
from tripwire.jobs.service import Service
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.settings import Settings
from tripwire.store.models import Decision, Evaluation, Job, JobKind, Run

DEMO_RUN = "demo-run"


def find_repo_root(start: Path | None = None) -> Path:
    """The Tripwire checkout holding ``evals/`` and ``triggers/`` (the demo's suites and policy)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "evals" / "demo-proxy.yaml").is_file() and (
            candidate / "triggers" / "demo.yaml"
        ).is_file():
            return candidate
    raise TripwireError(
        f"no evals/demo-proxy.yaml and triggers/demo.yaml above {here}: run `tripwire demo` "
        "from a Tripwire checkout (or `make demo`)"
    )


def _train(out: Path, steps: int | None) -> None:
    from tripwire.demo.train import train_demo_model

    kwargs = {"steps": steps} if steps else {}
    train_demo_model(out, run=DEMO_RUN, overwrite=True, **kwargs)  # type: ignore[arg-type]


def run_demo(
    out: Path, *, steps: int | None = None, fresh: bool = True, console: Console | None = None
) -> Path:
    """Run the demo into ``out``; return the report index."""
    console = console or Console()
    started = time.monotonic()
    # lm-eval, datasets and transformers draw a progress bar per task and per shard; in the demo
    # they would bury the discoveries and the summary. The trainer process inherits this too.
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = find_repo_root()
    out = out.resolve()
    if fresh and out.exists():
        shutil.rmtree(out)
    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)

    from tripwire.demo.skills import write_eval_data

    write_eval_data(root / "evals" / "demo" / "data")
    settings = Settings(
        home=out,
        database_url=f"sqlite:///{out / 'tripwire.db'}",
        broker_url=None,
        policy=root / "triggers" / "demo.yaml",
        report_dir=out / "reports",
        quiet_period_s=5.0,
        scan_interval_s=1.0,
    )
    console.print(
        f"[bold]Tripwire demo[/]: training a tiny GPT-2 on CPU; checkpoints land in {checkpoints}"
    )
    trainer = multiprocessing.get_context("spawn").Process(
        target=_train, args=(checkpoints, steps), name="demo-trainer"
    )
    stop = threading.Event()
    with Service(settings, [checkpoints], console=console) as service:
        console.print(
            f"watching with policy [bold]{service.ctx.policy.name}[/] "
            f"({service.ctx.policy.content_hash[:12]}), embedded Celery worker"
        )
        watcher = threading.Thread(
            target=service.watcher.run, args=(stop,), kwargs={"on_scan": service.log_scan}
        )
        trainer.start()
        watcher.start()
        with console.status("training and evaluating...", spinner="dots"):
            trainer.join()
            if trainer.exitcode != 0:
                stop.set()
                watcher.join()
                raise TripwireError(f"the demo trainer failed (exit code {trainer.exitcode})")
            console.print(f"training finished after {time.monotonic() - started:.0f} s")
            stop.set()
            watcher.join()
            service.watcher.poll_once()  # the last checkpoint, if the loop had not seen it
            service.wait_until_settled(timeout_s=1800)
        index = service.ctx.report_dir / "index.html"
        _summary(service, console)
    console.print(f"\nreport: [bold]{index}[/]")
    console.print(
        "review app: [bold]make review[/] (serves this store at http://127.0.0.1:8000 and "
        "prints a reviewer token to sign in with)"
    )
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return index


def _summary(service: Service, console: Console) -> None:
    policy = service.ctx.policy
    tasks = [t.task for t in policy.proxy_suite.suite.tasks]
    table = Table(title=f"run {DEMO_RUN} under policy {policy.name}")
    table.add_column("step", justify="right")
    for task in tasks:
        table.add_column(task.removeprefix("demo_"), justify="right")
    table.add_column("fired rules", overflow="fold")
    table.add_column("deep evaluation")
    with service.ctx.db.session() as session:
        run = session.scalar(select(Run).where(Run.name == DEMO_RUN))
        rows = sorted(run.checkpoints, key=lambda c: c.step or 0) if run else []
        fired_total = deep_total = 0
        for cp in rows:
            proxy = session.scalar(
                select(Evaluation).where(
                    Evaluation.checkpoint_id == cp.id, Evaluation.kind == "proxy"
                )
            )
            scores = {s.task: s for s in proxy.scores} if proxy else {}
            fired = session.scalars(
                select(Decision.rule_id).where(
                    Decision.checkpoint_id == cp.id,
                    Decision.verdict == "fired",
                    Decision.policy_hash == policy.content_hash,
                )
            ).all()
            deep = session.scalars(
                select(Job).where(Job.checkpoint_id == cp.id, Job.kind == JobKind.deep_eval)
            ).all()
            baseline = BASELINE_RULE_ID in fired
            fired = [r for r in fired if r != BASELINE_RULE_ID]
            fired_total += bool(fired)
            deep_total += len(deep)
            cells = [
                f"{100 * scores[t].score:.1f}" if t in scores else cp.state.value for t in tasks
            ]
            table.add_row(
                str(cp.step),
                *cells,
                "\n".join(fired) or ("(first baseline)" if baseline else "-"),
                ", ".join(f"{j.state.value}" for j in deep) or "-",
            )
    console.print(table)
    console.print(
        f"{len(rows)} checkpoints, {fired_total} fired a trigger (besides the first, evaluated "
        f"deeply as the run's baseline), {deep_total} deep evaluations dispatched"
    )
