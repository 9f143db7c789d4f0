"""Deep evaluations run by a lab's own harness: an external command with a stated contract.

In: the checkpoint folder and a result-file path (as ``argv`` placeholders and as
``TRIPWIRE_CHECKPOINT`` / ``TRIPWIRE_RESULT``), the suite file's folder as the working directory.
Out: exit status 0 and a JSON result file::

    {"tasks": {"bio_uplift": {"score": 0.31, "stderr": 0.02, "n_items": 200,
                              "metric": "acc", "higher_is_better": true,
                              "items": {"ids": ["q1", ...], "values": [1, 0, ...]}}}}

``stderr`` and ``items`` are optional; item ids are hashed into document keys so that two
checkpoints' results pair item by item like lm-eval's. Every task the suite lists must be in
the file. A non-zero exit, a missing or malformed file, or a run past ``timeout_s`` (the whole
process group is killed) fails the job with the reason and the end of the command's output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tripwire import __version__
from tripwire.errors import EvaluationError
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions
from tripwire.suites import CommandSpec, LoadedSuite

log = logging.getLogger(__name__)

OUTPUT_TAIL = 2000
"""Characters of the command's output kept in a failure's reason."""
MAX_RESULT_BYTES = 64 * 1024 * 1024


class CommandItems(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str]
    values: list[float]

    @model_validator(mode="after")
    def _aligned(self) -> CommandItems:
        if len(self.ids) != len(self.values):
            raise ValueError(f"{len(self.ids)} ids and {len(self.values)} values")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("item ids repeat")
        return self


class CommandTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: float
    stderr: float | None = Field(default=None, ge=0)
    n_items: int = Field(ge=0)
    metric: str = "score"
    higher_is_better: bool = True
    items: CommandItems | None = None


class CommandOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: dict[str, CommandTask]
    logs: list[str] = Field(default_factory=list)
    """Where the harness kept its logs (paths or URLs), shown with the results."""


def _argv(spec: CommandSpec, fields: dict[str, str]) -> list[str]:
    try:
        return [part.format(**fields) for part in spec.argv]
    except (KeyError, IndexError, ValueError) as exc:
        raise EvaluationError(
            f"command argv {spec.argv}: unknown placeholder {exc}; use {{checkpoint}}, "
            "{result}, {suite_dir} or {seed}"
        ) from exc


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-OUTPUT_TAIL:].strip()


def run_command(
    checkpoint: Path, suite: LoadedSuite, spec: CommandSpec | None = None
) -> SuiteResult:
    """Run the suite's command (or ``spec``) on ``checkpoint`` and read its scores."""
    spec = spec or suite.suite.command
    assert spec is not None
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tripwire-command-") as work:
        result_file = Path(work) / "result.json"
        output_file = Path(work) / "output.log"
        fields = {
            "checkpoint": str(checkpoint),
            "result": str(result_file),
            "suite_dir": str(suite.path.parent),
            "seed": str(suite.suite.seed),
        }
        argv = _argv(spec, fields)
        env = {
            **os.environ,
            **spec.env,
            "TRIPWIRE_CHECKPOINT": fields["checkpoint"],
            "TRIPWIRE_RESULT": fields["result"],
        }
        with output_file.open("wb") as output:
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=suite.path.parent,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group, killed whole on timeout
                )
            except OSError as exc:
                raise EvaluationError(
                    f"suite {suite.name}: cannot start {argv[0]!r}: {exc.strerror or exc}"
                ) from exc
            try:
                status = process.wait(timeout=spec.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise EvaluationError(
                    f"suite {suite.name}: the command ran past its time limit of "
                    f"{spec.timeout_s:g} s and was killed; its output ended with: "
                    f"{_tail(output_file)}"
                ) from None
            except BaseException:
                _kill_group(process)  # the worker is stopping: leave nothing running
                raise
        if status != 0:
            raise EvaluationError(
                f"suite {suite.name}: the command exited with status {status}; its output "
                f"ended with: {_tail(output_file)}"
            )
        output_text = _tail(output_file)
        if output_text:
            log.info("suite %s command output (end): %s", suite.name, output_text)
        parsed = _read_result(result_file, suite)
    return _suite_result(parsed, suite, checkpoint, started, time.perf_counter() - t0)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_result(path: Path, suite: LoadedSuite) -> CommandOutput:
    if not path.is_file():
        raise EvaluationError(
            f"suite {suite.name}: the command exited 0 and wrote no result file at {{result}}"
        )
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise EvaluationError(
            f"suite {suite.name}: the result file is over {MAX_RESULT_BYTES // 1024**2} MB"
        )
    try:
        parsed = CommandOutput.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvaluationError(
            f"suite {suite.name}: the command's result file is not what the contract says: "
            f"{where}: {first['msg']} ({exc.error_count()} problems)"
        ) from None
    missing = [t.task for t in suite.suite.tasks if t.task not in parsed.tasks]
    if missing:
        raise EvaluationError(
            f"suite {suite.name}: the command reported no score for {', '.join(missing)} "
            f"(it reported {', '.join(sorted(parsed.tasks)) or 'none'})"
        )
    return parsed


def _item_key(task: str, item_id: str) -> str:
    return hashlib.sha256(f"{task}\n{item_id}".encode()).hexdigest()


def _suite_result(
    parsed: CommandOutput,
    suite: LoadedSuite,
    checkpoint: Path,
    started: datetime,
    duration_s: float,
) -> SuiteResult:
    tasks: dict[str, TaskResult] = {}
    for entry in suite.suite.tasks:
        reported = parsed.tasks[entry.task]
        items = reported.items
        tasks[entry.task] = TaskResult(
            task=entry.task,
            metric=reported.metric,
            filter="none",
            score=reported.score,
            stderr=reported.stderr,
            n_items=reported.n_items,
            num_fewshot=0,
            higher_is_better=reported.higher_is_better,
            alert_level=entry.alert_level,
            critical_level=entry.critical_level,
            items=ItemOutcomes(
                doc_hashes=[_item_key(entry.task, i) for i in items.ids] if items else [],
                values=list(items.values) if items else [],
            ),
        )
    return SuiteResult(
        suite_name=suite.name,
        suite_hash=suite.content_hash,
        model_path=str(checkpoint),
        tasks=tasks,
        versions=Versions(
            lm_eval="none",
            transformers="none",
            torch="none",
            tripwire=__version__,
            logs=parsed.logs or None,
        ),
        started_at=started,
        duration_s=duration_s,
        seed=suite.suite.seed,
    )
