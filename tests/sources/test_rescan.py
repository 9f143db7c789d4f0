"""The periodic rescan skips unchanged folders by their modification times, and still finds what
is new: a checkpoint in an existing folder, the last shard of a sharded one, a sidecar edited in
place, an entry made in the same clock tick as the last listing."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint
from tripwire.sources import DiscoveredCheckpoint, LocalDirectorySource
from tripwire.sources.walk import RACY_S


def _age(root: Path, seconds: float = 10 * RACY_S) -> None:
    """Set every folder's and file's times ``seconds`` back, as if written long ago."""
    then = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath, name), (then, then), follow_symlinks=False)
    os.utime(root, (then, then))


def _ready(source: LocalDirectorySource) -> dict[str, DiscoveredCheckpoint]:
    return {c.path.name: c for c in source.scan().ready}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("template") / "ckpt", seed=3)


@pytest.fixture
def root(tmp_path: Path, template: Path) -> Path:
    base = tmp_path / "root"
    for step in (100, 200):
        shutil.copytree(template, base / "run-a" / f"step-{step}")
    _age(base)
    return base


def test_an_idle_rescan_lists_no_folder_and_judges_no_checkpoint(root: Path) -> None:
    with LocalDirectorySource(root, quiet_period_s=0) as source:
        first = _ready(source)
        assert set(first) == {"step-100", "step-200"}
        assert source.folders.listings == 4 and source.folders.judged == 2
        again = _ready(source)
    assert again == first
    assert source.folders.listings == 0, "unchanged folders are not listed again"
    assert source.folders.judged == 0, "unchanged ready checkpoints are not judged again"


def test_a_checkpoint_copied_into_an_existing_run_folder_is_found(
    root: Path, template: Path
) -> None:
    with LocalDirectorySource(root, quiet_period_s=0) as source:
        _ready(source)
        staging = root / "run-a" / ".step-300.tmp"
        shutil.copytree(template, staging)
        _age(staging)
        # copy, then rename: the run folder's time moves
        staging.rename(root / "run-a" / "step-300")
        found = _ready(source)
    assert set(found) == {"step-100", "step-200", "step-300"}
    assert source.folders.judged == 1


def test_a_checkpoint_in_a_new_nested_folder_is_found(root: Path, template: Path) -> None:
    with LocalDirectorySource(root, quiet_period_s=0) as source:
        _ready(source)
        shutil.copytree(template, root / "run-a" / "sft" / "step-50")
        assert "step-50" in _ready(source)


def test_the_last_shard_of_a_sharded_checkpoint_is_found(tmp_path: Path) -> None:
    base = tmp_path / "root"
    sharded = make_checkpoint(
        base / "run-b" / "step-10", seed=4, max_shard_size="20KB", ready=False
    )
    last = sorted(sharded.glob("model-*.safetensors"))[-1]
    held = tmp_path / last.name
    last.rename(held)  # still uploading
    _age(base)
    with LocalDirectorySource(base, quiet_period_s=3600) as source:
        scan = source.scan()
        assert scan.ready == [] and [p.waiting_for for p in scan.pending] == ["shards"]
        shutil.copy2(held, last)
        assert [c.path.name for c in source.scan().ready] == ["step-10"]


def test_a_sidecar_edited_in_place_is_read_again(root: Path) -> None:
    checkpoint = root / "run-a" / "step-100"
    sidecar = checkpoint / "tripwire.json"
    sidecar.write_text(json.dumps({"run": "run-a", "step": 100}))
    _age(root)
    with LocalDirectorySource(root, quiet_period_s=0) as source:
        assert _ready(source)["step-100"].metadata.tokens_seen is None
        folder_time = checkpoint.stat().st_mtime_ns
        with sidecar.open("r+") as f:  # in place: no folder's time changes
            f.write(json.dumps({"run": "run-a", "step": 100, "tokens_seen": 2_400_000_000}))
        assert checkpoint.stat().st_mtime_ns == folder_time
        found = _ready(source)["step-100"]
    assert found.metadata.tokens_seen == 2_400_000_000
    assert source.folders.judged == 1 and source.folders.listings == 0


def test_an_entry_made_in_the_tick_of_the_last_listing_is_found(root: Path, template: Path) -> None:
    """A folder listed within RACY_S of its modification time is listed again next scan, even
    when its time then reads the same (an entry created in the same clock tick)."""
    run = root / "run-a"
    shutil.rmtree(run / "step-200")  # the run folder's time is now: the listing is not trusted
    with LocalDirectorySource(root, quiet_period_s=0) as source:
        assert set(_ready(source)) == {"step-100"}
        stamp = run.stat()
        shutil.copytree(template, run / "step-200")
        os.utime(run, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same tick: time unchanged
        assert set(_ready(source)) == {"step-100", "step-200"}
