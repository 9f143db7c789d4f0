"""Input bounds: numeric metadata in range, small files small, parsed once per version, and a
folder that vanishes mid-scan is no failure."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint
from tripwire.sources import LocalDirectorySource
from tripwire.sources.local import unlistable_failure
from tripwire.sources.metadata import MAX_STEP, MAX_TOKENS
from tripwire.sources.parsed import MAX_CONFIG_BYTES


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("template") / "ckpt", seed=0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    return folder


@pytest.fixture
def source(root: Path) -> Iterator[LocalDirectorySource]:
    with LocalDirectorySource(root, quiet_period_s=30.0) as src:
        yield src


def place(template: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for file in template.iterdir():
        os.link(file, dest / file.name)  # hard links: cheap, same content
    return dest


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        ({"step": MAX_STEP + 1}, f"field 'step': Input should be less than or equal to {MAX_STEP}"),
        ({"tokens_seen": MAX_TOKENS + 1}, "field 'tokens_seen': Input should be less than"),
        ({"tokens_seen": -1}, "field 'tokens_seen': Input should be greater than or equal to 0"),
        ({"training_flop": 1e41}, "field 'training_flop': Input should be less than or equal"),
        ({"run": "r" * 256}, "field 'run': String should have at most 255 characters"),
        ({"stage": "s" * 65}, "field 'stage': String should have at most 64 characters"),
        ({"notes": {"k": "v" * 5000}}, "field 'notes.k': String should have at most 4096"),
    ],
)
def test_an_out_of_range_sidecar_value_fails_naming_the_field_and_the_bound(
    template: Path,
    root: Path,
    source: LocalDirectorySource,
    sidecar: dict[str, object],
    expected: str,
) -> None:
    good = place(template, root / "run" / "step-1")
    bad = place(template, root / "run" / "step-2")
    (bad / "tripwire.json").write_text(json.dumps(sidecar))

    result = source.scan()

    assert [c.path for c in result.ready] == [good.resolve()], "the scan went on"
    [failure] = result.failed
    assert failure.path == bad.resolve()
    assert expected in failure.reason, failure.reason


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400"])
def test_training_flop_must_be_a_finite_number(
    template: Path, root: Path, source: LocalDirectorySource, value: str
) -> None:
    bad = place(template, root / "run" / "step-1")
    (bad / "tripwire.json").write_text('{"training_flop": ' + value + "}")

    [failure] = source.scan().failed

    assert "field 'training_flop'" in failure.reason


def test_tokens_seen_in_the_billions_is_taken(
    template: Path, root: Path, source: LocalDirectorySource
) -> None:
    """The example value of docs/sources.md (it overflowed a 32-bit column once)."""
    ckpt = place(template, root / "run" / "step-1")
    (ckpt / "tripwire.json").write_text('{"tokens_seen": 2400000000}')

    [found] = source.scan().ready

    assert found.metadata.tokens_seen == 2_400_000_000


def test_a_step_from_the_folder_name_out_of_range_is_a_failure(
    template: Path, root: Path, source: LocalDirectorySource
) -> None:
    place(template, root / "run" / "step-99999999999")

    [failure] = source.scan().failed

    assert "the folder names give field 'step'" in failure.reason
    assert "rename the folder, or set the field in tripwire.json" in failure.reason


def test_a_config_over_the_size_limit_is_refused_from_its_size(
    template: Path, root: Path, source: LocalDirectorySource
) -> None:
    ckpt = place(template, root / "run" / "step-1")
    (ckpt / "config.json").unlink()
    with (ckpt / "config.json").open("wb") as f:  # sparse: 100 MiB that take no disk
        f.truncate(100 * 1024 * 1024)

    started = time.perf_counter()
    [failure] = source.scan().failed
    elapsed = time.perf_counter() - started

    assert "config.json is 100.0 MiB, over the 16.0 MiB" in failure.reason
    assert MAX_CONFIG_BYTES == 16 * 1024 * 1024
    assert elapsed < 5, "refused from its size, not parsed"


def test_an_unchanged_config_shard_index_and_sidecar_are_parsed_once(
    tmp_path: Path, root: Path, source: LocalDirectorySource
) -> None:
    sharded = make_checkpoint(root / "run" / "step-1", seed=1, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    (sharded / "tripwire.json").write_text('{"stage": "sft"}')

    assert len(source.scan().ready) == 1
    first = source.parsed.parses
    assert first == 3, "config, shard index, sidecar"
    for _ in range(3):
        assert len(source.scan().ready) == 1
    assert source.parsed.parses == first, "nothing parsed again while the files are unchanged"
    assert source.parsed.hits >= 9

    (sharded / "tripwire.json").write_text('{"stage": "merge"}')
    [found] = source.scan().ready
    assert found.metadata.stage == "merge"
    assert source.parsed.parses == first + 1, "only the changed file"


def test_a_shard_waiting_checkpoint_says_what_it_waits_for(
    tmp_path: Path, root: Path, source: LocalDirectorySource
) -> None:
    sharded = make_checkpoint(root / "run" / "step-1", seed=1, max_shard_size="20KB", ready=False)
    last = sorted(sharded.glob("model-*.safetensors"))[-1]
    last.unlink()

    [pending] = source.scan().pending

    assert pending.waiting_for == "shards"
    assert last.name in pending.reason


def test_a_folder_gone_before_the_walk_reached_it_is_no_failure(root: Path) -> None:
    """A trainer's copy-then-rename between listing a folder's parent and listing it: no
    "give Tripwire read access" advice, only for a real refusal."""
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory", str(root / "step-1.tmp"))
    assert unlistable_failure(gone, root) is None
    moved = NotADirectoryError(errno.ENOTDIR, "Not a directory", str(root / "x"))
    assert unlistable_failure(moved, root) is None
    denied = PermissionError(errno.EACCES, "Permission denied", str(root / "locked"))
    failure = unlistable_failure(denied, root)
    assert failure is not None and failure.path == root / "locked"
    assert "give Tripwire read access" in failure.reason
    other = OSError(errno.EIO, "Input/output error", str(root / "nfs"))
    failure = unlistable_failure(other, root)
    assert failure is not None and "read access" not in failure.reason
