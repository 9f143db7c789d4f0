"""Out of memory is retried with a smaller batch; I/O errors are left for the job to retry."""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from lm_eval.models.huggingface import HFLM

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tripwire.errors import CheckpointError, EvaluationError
from tripwire.results import SuiteResult
from tripwire.runner import Runner
from tripwire.suites import LoadedSuite, load_suite

SUITE = """\
name: tiny
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
  - task: tiny_cmp
    num_fewshot: 2
    limit: 25
"""


def failing_model(error: BaseException, *, fits: int) -> type[Any]:
    """An lm-eval HFLM that raises ``error`` for any batch larger than ``fits``; ``calls``
    keeps the batch size of every loglikelihood call."""

    class Failing(HFLM):  # type: ignore[misc]
        calls: ClassVar[list[int]] = []

        def loglikelihood(self, requests: Any, disable_tqdm: bool = False) -> Any:
            type(self).calls.append(self.batch_size)
            if self.batch_size > fits:
                raise error
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    return Failing


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oom")
    write_tasks(root / "evals" / "tiny")
    make_checkpoint(root / "ckpt", seed=1)
    write_suite(root / "evals" / "suite.yaml", SUITE)
    return root


@pytest.fixture(scope="module")
def suite(workspace: Path) -> LoadedSuite:
    return load_suite(workspace / "evals" / "suite.yaml")


@pytest.fixture(scope="module")
def normal(workspace: Path, suite: LoadedSuite) -> SuiteResult:
    return Runner(batch_size=32, progress=False).evaluate(workspace / "ckpt", suite)


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
        MemoryError(),
    ],
    ids=["torch-oom", "runtime-error", "cpu-memory-error"],
)
def test_out_of_memory_is_retried_at_half_the_batch_and_scores_like_a_normal_run(
    workspace: Path,
    suite: LoadedSuite,
    normal: SuiteResult,
    error: BaseException,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = failing_model(error, fits=8)
    with caplog.at_level(logging.WARNING, logger="tripwire.runner"):
        result = Runner(batch_size=32, progress=False, model_class=model).evaluate(
            workspace / "ckpt", suite
        )

    assert model.calls == [32, 16, 8, 8], "halved twice, then the smaller batch is kept"
    retries = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(retries) == 2
    assert "at batch size 32" in retries[0] and "retrying at batch size 16" in retries[0]
    assert "retrying at batch size 8" in retries[1]
    assert result.versions.batch_size == 8 and normal.versions.batch_size == 32
    assert result.versions.model_dump()["batch_size"] == 8, "stored with the evaluation"
    for name, task in normal.tasks.items():
        assert result.tasks[name].score == task.score
        assert result.tasks[name].items == task.items


def test_out_of_memory_at_batch_size_one_fails_with_the_reason(
    workspace: Path, suite: LoadedSuite
) -> None:
    model = failing_model(torch.OutOfMemoryError("CUDA out of memory"), fits=0)
    runner = Runner(batch_size=4, progress=False, model_class=model)

    with pytest.raises(EvaluationError, match=r"out of memory .* at batch size 1 on cpu") as info:
        runner.evaluate(workspace / "ckpt", suite)

    assert model.calls == [4, 2, 1]
    assert "halved down from 4" in str(info.value)


def test_an_io_error_is_raised_as_it_is_for_the_job_to_retry(
    workspace: Path, suite: LoadedSuite
) -> None:
    model = failing_model(OSError(errno.EIO, "Input/output error"), fits=0)

    with pytest.raises(OSError, match="Input/output error") as info:
        Runner(progress=False, model_class=model).evaluate(workspace / "ckpt", suite)

    assert not isinstance(info.value, EvaluationError | CheckpointError)


def test_a_checkpoint_without_a_tokenizer_is_refused_before_loading(
    workspace: Path, suite: LoadedSuite, tmp_path: Path
) -> None:
    bare = shutil.copytree(workspace / "ckpt", tmp_path / "bare")
    (bare / "tokenizer.json").unlink()

    with pytest.raises(CheckpointError, match=r"bare: no tokenizer: AutoTokenizer needs"):
        Runner().evaluate(bare, suite)
