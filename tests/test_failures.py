"""One table says which failures a job retries after a pause and which fail it at once."""

from __future__ import annotations

import errno

import kombu.exceptions
import pytest
import redis.exceptions
import sqlalchemy.exc
import torch

from tripwire.errors import (
    BrokerError,
    CheckpointChangedError,
    CheckpointError,
    EvaluationError,
    MissingDataError,
    SuiteChangedError,
    SuiteError,
)
from tripwire.failures import FailureKind, classify_failure, is_out_of_memory
from tripwire.sources.hashing import FileChangedError

TRANSIENT = FailureKind.transient
PERMANENT = FailureKind.permanent
UNEXPECTED = FailureKind.unexpected


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OSError(errno.EIO, "Input/output error"), TRANSIENT),
        (OSError(errno.ESTALE, "Stale file handle"), TRANSIENT),
        (ConnectionResetError(errno.ECONNRESET, "reset"), TRANSIENT),
        (TimeoutError("timed out"), TRANSIENT),
        (
            MissingDataError("deep.yaml", {"wmdp": ["wmdp_bio"]}, ["tripwire data import"]),
            PERMANENT,
        ),
        (FileChangedError("model.safetensors changed while it was hashed"), TRANSIENT),
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed")), TRANSIENT),
        (sqlalchemy.exc.TimeoutError("QueuePool limit reached"), TRANSIENT),
        (redis.exceptions.ConnectionError("Error 111 connecting"), TRANSIENT),
        (kombu.exceptions.OperationalError("Error 111 connecting"), TRANSIENT),
        (BrokerError("cannot reach the broker"), TRANSIENT),
        (FileNotFoundError(errno.ENOENT, "No such file", "/ckpt/model.safetensors"), PERMANENT),
        (PermissionError(errno.EACCES, "Permission denied"), PERMANENT),
        (CheckpointError("/ckpt", "model.safetensors is truncated"), PERMANENT),
        (CheckpointChangedError("/ckpt", "job refused"), PERMANENT),
        (SuiteError("/evals/proxy.yaml", ["tasks.0.task: unknown"]), PERMANENT),
        (SuiteChangedError("/evals/proxy.yaml", "job refused"), PERMANENT),
        (EvaluationError("lm-eval could not load task"), PERMANENT),
        (torch.OutOfMemoryError("CUDA out of memory"), PERMANENT),
        (MemoryError(), PERMANENT),
        (OSError("Can't load tokenizer for '/ckpt'"), UNEXPECTED),  # transformers, no errno
        (ValueError("a bug"), UNEXPECTED),
        (KeyError("acc"), UNEXPECTED),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_each_error_has_one_kind(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(error).kind == kind


def test_out_of_memory_is_recognised_in_every_form() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("[enforce fail] DefaultCPUAllocator: Out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_a_permanent_error_keeps_its_own_message_as_the_reason() -> None:
    reason = classify_failure(CheckpointError("/ckpt", "no tokenizer")).reason
    assert reason == "checkpoint /ckpt: no tokenizer"
