"""A suite's model settings: dtype, chat template, generation settings and backend, honoured on
CPU, refused with the fix where this worker cannot honour them, and part of every result's
identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tests.runner.test_response_cache import GENERATE_TASK
from tripwire.errors import CheckpointError, SuiteError
from tripwire.runner import Runner
from tripwire.runner.response_store import ResponseCache
from tripwire.sources.hashing import HashCache
from tripwire.sources.identity import hash_listing
from tripwire.sources.layout import list_dir
from tripwire.suites import load_suite

CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}|"


def _suite(root: Path, name: str, model: str, tasks: str = "  - task: tiny_add\n") -> Path:
    return write_suite(
        root / "evals" / f"{name}.yaml",
        f"name: {name}\nkind: proxy\ninclude: [tiny]\nbootstrap_iters: 0\n{model}tasks:\n{tasks}",
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_tasks(tmp_path / "evals" / "tiny", names=("add",), n_items=20)
    (tmp_path / "evals" / "tiny" / "tasks" / "tiny_echo.yaml").write_text(GENERATE_TASK)
    make_checkpoint(tmp_path / "ckpt", seed=3)
    return tmp_path


def _hash(folder: Path) -> str:
    with HashCache.in_memory() as cache:
        return hash_listing(list_dir(folder), cache)


def test_the_dtype_is_chosen_by_the_suite_and_auto_means_float32_on_a_cpu(
    workspace: Path,
) -> None:
    config = workspace / "ckpt" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "torch_dtype": "bfloat16", "dtype": "bfloat16"}))
    default = load_suite(_suite(workspace, "default", ""))
    bf16 = load_suite(_suite(workspace, "bf16", "model:\n  dtype: bfloat16\n"))
    assert default.content_hash != bf16.content_hash  # settings are part of the identity
    cache = ResponseCache(workspace / "responses", 1024**3)
    runner = Runner(progress=False, responses=cache)
    auto = runner.evaluate(workspace / "ckpt", default, content_hash=_hash(workspace / "ckpt"))
    assert auto.versions.dtype == "float32" and auto.versions.backend == "hf"
    half = runner.evaluate(workspace / "ckpt", bf16, content_hash=_hash(workspace / "ckpt"))
    assert half.versions.dtype == "bfloat16"
    assert half.versions.cached_answers == 0  # float32 answers are not bfloat16 answers


def test_a_chat_template_wraps_the_prompts_and_needs_the_tokenizer_to_have_one(
    workspace: Path,
) -> None:
    suite = load_suite(_suite(workspace, "chat", "model:\n  chat_template: true\n"))
    plain = load_suite(_suite(workspace, "plain", ""))
    runner = Runner(progress=False)
    with pytest.raises(CheckpointError, match="asks for a chat template"):
        runner.evaluate(workspace / "ckpt", suite)
    tokenizer_config = workspace / "ckpt" / "tokenizer_config.json"
    data = json.loads(tokenizer_config.read_text())
    tokenizer_config.write_text(json.dumps({**data, "chat_template": CHAT_TEMPLATE}))
    chat = runner.evaluate(workspace / "ckpt", suite)
    without = runner.evaluate(workspace / "ckpt", plain)
    prompts = chat.tasks["tiny_add"].items.texts
    assert prompts is not None and all(p.endswith("|") for p, _ in prompts)
    assert chat.tasks["tiny_add"].items.values != without.tasks["tiny_add"].items.values or (
        prompts != without.tasks["tiny_add"].items.texts
    )


def test_generation_settings_reach_generative_tasks(workspace: Path) -> None:
    tasks = "  - task: tiny_echo\n    limit: 6\n"
    short = load_suite(
        _suite(workspace, "short", "model:\n  generation:\n    max_gen_toks: 1\n", tasks)
    )
    long = load_suite(
        _suite(workspace, "long", "model:\n  generation:\n    max_gen_toks: 3\n", tasks)
    )
    runner = Runner(progress=False)
    one = runner.evaluate(workspace / "ckpt", short).tasks["tiny_echo"].items.answers
    three = runner.evaluate(workspace / "ckpt", long).tasks["tiny_echo"].items.answers
    assert one is not None and three is not None
    assert max(len(a) for a in one) <= 1 < max(len(a) for a in three)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("model:\n  backend: vllm\n", "vllm is not installed"),
        ("model:\n  device_map: auto\n", "shards a model over GPUs"),
        ("model:\n  dtype: float8\n", "model.dtype"),
        ("model:\n  fewshot_as_multiturn: true\n", "needs chat_template"),
    ],
)
def test_settings_this_worker_cannot_honour_are_refused_before_any_model_loads(
    workspace: Path, model: str, says: str
) -> None:
    with pytest.raises(SuiteError, match=says):
        Runner(progress=False).evaluate(
            workspace / "missing-checkpoint", load_suite(_suite(workspace, "bad", model))
        )
