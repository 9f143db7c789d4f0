"""LocalDirectorySource on real checkpoints written by transformers (tiny GPT-2s)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from tripwire.errors import CheckpointError, UnsafeCheckpointError
from tripwire.sources import (
    DiscoveredCheckpoint,
    HashCache,
    LocalDirectorySource,
    ScanResult,
    check_safetensors,
    read_checkpoint,
    step_from_name,
)

QUIET_S = 30.0


def _save_tiny_gpt2(directory: Path, *, seed: int, max_shard_size: str | None = None) -> None:
    """A tiny GPT-2 with its tokenizer (the demo's character tokenizer), as a trainer saves it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tripwire.demo.train import build_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(cfg)
    if max_shard_size is None:
        model.save_pretrained(directory)
    else:
        model.save_pretrained(directory, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoint folders built once per session; tests copy them."""
    import torch

    base = tmp_path_factory.mktemp("templates")
    single, single_v2, sharded, pickle = (base / n for n in ("single", "v2", "sharded", "pickle"))
    _save_tiny_gpt2(single, seed=0)
    _save_tiny_gpt2(single_v2, seed=1)
    _save_tiny_gpt2(sharded, seed=0, max_shard_size="5KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert (sharded / "model.safetensors.index.json").is_file() and len(shards) > 1
    # transformers 5 writes safetensors only; a pickle checkpoint is written the old way.
    pickle.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(single / name, pickle / name)
    from safetensors.torch import load_file

    torch.save(load_file(single / "model.safetensors"), pickle / "pytorch_model.bin")
    return {"single": single, "v2": single_v2, "sharded": sharded, "pickle": pickle}


def place(template: Path, dest: Path, *, mtime_s: float | None = None) -> Path:
    """Copy a checkpoint folder to ``dest``, optionally setting every mtime to ``mtime_s``."""
    shutil.copytree(template, dest)
    if mtime_s is not None:
        set_mtime(dest, mtime_s)
    return dest


def set_mtime(directory: Path, mtime_s: float) -> None:
    for path in [*directory.iterdir(), directory]:
        os.utime(path, (mtime_s, mtime_s), follow_symlinks=False)


def mark_ready(directory: Path) -> Path:
    (directory / "READY").touch()
    return directory


def only_ready(result: ScanResult) -> DiscoveredCheckpoint:
    assert not result.pending and not result.failed, result
    assert len(result.ready) == 1, result
    return result.ready[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "checkpoints"
    r.mkdir()
    return r


@pytest.fixture
def source(root: Path) -> Iterator[LocalDirectorySource]:
    with LocalDirectorySource(root, quiet_period_s=QUIET_S) as src:
        yield src


# --- completeness ----------------------------------------------------------------------------


def test_single_file_checkpoint_with_marker_is_ready(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "run-a" / "step-100"))

    found = only_ready(source.scan())

    assert found.path == ckpt.resolve()
    assert found.format == "safetensors"
    assert found.weight_files == ["model.safetensors"]
    assert found.total_bytes == (ckpt / "model.safetensors").stat().st_size
    assert found.content_hash.startswith("sha256:") and len(found.content_hash) == 71
    assert (found.run, found.step) == ("run-a", 100)
    assert (found.metadata.run, found.metadata.step, found.metadata.stage) == (
        "run-a",
        100,
        "pretrain",
    )


def test_sharded_checkpoint_with_complete_index_is_ready_without_marker_or_quiet_period(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    now = time.time()
    place(templates["sharded"], root / "run" / "step-5", mtime_s=now)

    found = only_ready(source.scan(now=now))

    assert len(found.weight_files) > 1
    assert all(name.startswith("model-0") for name in found.weight_files)


def test_sharded_checkpoint_with_missing_shard_is_pending_then_ready_once_it_appears(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    now = time.time()
    ckpt = place(templates["sharded"], root / "step-5", mtime_s=now)
    shards = sorted(ckpt.glob("model-*.safetensors"))
    held_back = shards[-1].rename(root.parent / shards[-1].name)

    first = source.scan(now=now)

    assert not first.ready and not first.failed
    [pending] = first.pending
    expected = f"shard index lists {len(shards)} shards, {len(shards) - 1} present"
    assert expected in pending.reason and shards[-1].name in pending.reason

    held_back.rename(shards[-1])
    only_ready(source.scan(now=now))


def test_missing_shard_stays_pending_even_after_the_quiet_period(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    now = time.time()
    ckpt = place(templates["sharded"], root / "step-5")
    next(ckpt.glob("model-00002-*.safetensors")).unlink()
    set_mtime(ckpt, now - 10 * QUIET_S)

    result = source.scan(now=now)

    assert [p.path for p in result.pending] == [ckpt.resolve()]
    assert not result.failed


def test_half_written_checkpoint_is_pending_until_the_quiet_period_passes(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    written_at = time.time()
    ckpt = place(templates["single"], root / "step-7", mtime_s=written_at)

    early = source.scan(now=written_at + 12)

    assert not early.ready and not early.failed
    assert early.pending[0].path == ckpt.resolve()
    assert "waiting for quiet period (12.0 s of 30.0 s)" in early.pending[0].reason
    assert only_ready(source.scan(now=written_at + QUIET_S + 1)).step == 7


def test_truncated_weights_without_marker_are_pending_not_failed_while_still_changing(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    written_at = time.time()
    ckpt = place(templates["single"], root / "step-7")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    set_mtime(ckpt, written_at)

    assert len(source.scan(now=written_at + 1).pending) == 1
    [failure] = source.scan(now=written_at + QUIET_S + 1).failed
    assert "model.safetensors is truncated" in failure.reason


def test_file_still_being_written_keeps_checkpoint_pending(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = place(templates["single"], root / "step-7")
    (ckpt / "model.safetensors.incomplete").write_bytes(b"partial")

    [pending] = source.scan(now=time.time() + 10 * QUIET_S).pending

    assert "model.safetensors.incomplete is still being written" in pending.reason


def test_hidden_and_in_progress_folders_are_skipped(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    for name in (".tmp-step-1", ".hidden", "step-2.tmp", "step-3.incomplete"):
        mark_ready(place(templates["single"], root / name))

    result = source.scan()

    assert (result.ready, result.pending, result.failed) == ([], [], [])


# --- identity --------------------------------------------------------------------------------


def test_same_weights_under_two_paths_are_two_checkpoints_with_one_hash(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    mark_ready(place(templates["single"], root / "run-a" / "step-1"))
    mark_ready(place(templates["single"], root / "mirror" / "copy"))

    result = source.scan()

    assert len(result.ready) == 2
    assert result.ready[0].content_hash == result.ready[1].content_hash
    assert result.ready[0].path != result.ready[1].path


def test_new_weights_written_over_an_old_path_get_a_new_hash(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "latest"))
    old = only_ready(source.scan()).content_hash

    shutil.copyfile(templates["v2"] / "model.safetensors", ckpt / "model.safetensors")
    os.utime(ckpt / "model.safetensors", (1_000_000_000, 1_000_000_000))

    assert only_ready(source.scan()).content_hash != old


def test_tokenizer_marker_and_sidecar_files_do_not_change_the_hash(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    plain = mark_ready(place(templates["single"], root / "a"))
    dressed = place(templates["single"], root / "b")
    (dressed / "_SUCCESS").touch()
    (dressed / "tokenizer.json").write_text('{"version": "1.0"}')
    (dressed / "tripwire.json").write_text('{"stage": "sft"}')

    result = source.scan()

    assert [c.path for c in result.ready] == [plain.resolve(), dressed.resolve()]
    assert result.ready[0].content_hash == result.ready[1].content_hash


def test_a_changed_config_gives_a_new_hash(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "a"))
    old = only_ready(source.scan()).content_hash
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "n_head": 4}))

    assert only_ready(source.scan()).content_hash != old


# --- failures --------------------------------------------------------------------------------


def test_truncated_safetensors_with_marker_fails_naming_the_file(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["sharded"], root / "step-3"))
    shard = sorted(ckpt.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])

    [failure] = source.scan().failed

    assert failure.path == ckpt.resolve()
    assert f"{shard.name} is truncated" in failure.reason
    assert not failure.unsafe


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x05\x00", "truncated: 2 bytes"),
        (struct.pack("<Q", 4) + b"{{{{", "header is not JSON"),
        (struct.pack("<Q", 2) + b"{}" + b"junk", "4 bytes beyond"),
        (struct.pack("<Q", 1_000) + b"{}", "shorter than its 1000-byte header"),
    ],
)
def test_corrupt_safetensors_headers_are_explained(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)

    with pytest.raises(CheckpointError, match=expected):
        check_safetensors(path)


def test_corrupt_config_json_fails(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "step-1"))
    (ckpt / "config.json").write_text('{"model_type": "gpt2",')

    [failure] = source.scan().failed

    assert "config.json is not valid JSON" in failure.reason


@pytest.mark.parametrize(
    ("remove", "expected"),
    [
        ("config.json", "no config.json although the ready marker READY is present"),
        ("model.safetensors", "no weights"),
    ],
)
def test_marker_without_config_or_weights_fails(
    templates: dict[str, Path],
    root: Path,
    source: LocalDirectorySource,
    remove: str,
    expected: str,
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "step-1"))
    (ckpt / remove).unlink()

    [failure] = source.scan().failed

    assert expected in failure.reason


def test_a_checkpoint_without_a_tokenizer_is_refused_naming_the_folder_and_the_files(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "run" / "step-1"))
    (ckpt / "tokenizer.json").unlink()  # tokenizer_config.json alone holds no vocabulary

    [failure] = source.scan().failed

    assert failure.path == ckpt.resolve()
    assert "no tokenizer although the ready marker READY is present" in failure.reason
    assert "AutoTokenizer" in failure.reason
    for name in ("tokenizer.json", "vocab.json with merges.txt", "tokenizer.model", "vocab.txt"):
        assert name in failure.reason
    assert str(ckpt.resolve()) in str(failure.as_error())


@pytest.mark.parametrize(
    "files",
    [("vocab.json", "merges.txt"), ("tokenizer.model",), ("spiece.model",), ("vocab.txt",)],
)
def test_slow_tokenizer_vocabularies_count_as_a_tokenizer(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource, files: tuple[str, ...]
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "step-1"))
    (ckpt / "tokenizer.json").unlink()
    for name in files:
        (ckpt / name).write_text("x")

    only_ready(source.scan())


def test_a_complete_shard_index_waits_for_the_tokenizer_written_after_the_weights(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    """save_pretrained writes the tokenizer after the shards: not failed in between."""
    now = time.time()
    ckpt = place(templates["sharded"], root / "run" / "step-5", mtime_s=now)
    tokenizer = (ckpt / "tokenizer.json").read_bytes()
    (ckpt / "tokenizer.json").unlink()

    result = source.scan(now=now + 1)
    assert not result.ready and not result.failed
    assert "quiet period" in result.pending[0].reason

    (ckpt / "tokenizer.json").write_bytes(tokenizer)
    only_ready(source.scan(now=now + 1))


def test_pickle_only_checkpoint_is_refused_naming_the_setting_unless_allowed(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    mark_ready(place(templates["pickle"], root / "step-9"))

    [failure] = source.scan().failed

    assert failure.unsafe
    assert "pytorch_model.bin" in failure.reason and "TRIPWIRE_ALLOW_PICKLE=1" in failure.reason
    assert isinstance(failure.as_error(), UnsafeCheckpointError)

    with LocalDirectorySource(root, allow_pickle=True) as permissive:
        found = only_ready(permissive.scan())
    assert (found.format, found.weight_files, found.step) == ("pickle", ["pytorch_model.bin"], 9)


def test_trainer_state_files_beside_safetensors_are_not_weights(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "checkpoint-50"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        (ckpt / name).write_bytes(b"not weights")

    found = only_ready(source.scan())

    assert (found.format, found.weight_files) == ("safetensors", ["model.safetensors"])


def test_weights_symlinked_from_outside_the_root_are_refused(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    outside = place(templates["single"], root.parent / "elsewhere")
    ckpt = root / "step-1"
    ckpt.mkdir()
    shutil.copy(outside / "config.json", ckpt / "config.json")
    (ckpt / "model.safetensors").symlink_to(outside / "model.safetensors")
    mark_ready(ckpt)

    [failure] = source.scan().failed

    assert failure.unsafe and "outside the watched root" in failure.reason
    assert "model.safetensors" in failure.reason


def test_a_symlinked_folder_leading_outside_the_root_is_refused_not_followed(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    outside = mark_ready(place(templates["single"], root.parent / "elsewhere"))
    (root / "linked").symlink_to(outside, target_is_directory=True)

    result = source.scan()

    assert not result.ready
    [failure] = result.failed
    assert failure.path == root / "linked" and failure.unsafe


def test_weights_symlinked_from_inside_the_root_are_accepted(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    blobs = place(templates["single"], root / ".blobs")  # hidden: not a checkpoint itself
    ckpt = root / "step-1"
    ckpt.mkdir()
    shutil.copy(blobs / "config.json", ckpt / "config.json")
    for name in ("model.safetensors", "tokenizer.json"):  # as in the Hugging Face hub cache
        (ckpt / name).symlink_to(blobs / name)
    mark_ready(ckpt)

    assert only_ready(source.scan()).path == ckpt.resolve()


def test_shard_index_pointing_outside_the_checkpoint_fails(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["sharded"], root / "step-1"))
    index = ckpt / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["lm_head.weight"] = "../../secret.safetensors"
    index.write_text(json.dumps(data))

    [failure] = source.scan().failed

    assert "shards must be plain file names" in failure.reason


def test_a_failing_checkpoint_does_not_stop_the_others(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    now = time.time()
    bad = mark_ready(place(templates["single"], root / "run" / "step-1"))
    (bad / "config.json").write_text("not json")
    good = mark_ready(place(templates["single"], root / "run" / "step-2"))
    waiting = place(templates["single"], root / "run" / "step-3", mtime_s=now)
    refused = mark_ready(place(templates["pickle"], root / "run" / "step-4"))

    result = source.scan(now=now)

    assert [c.path for c in result.ready] == [good.resolve()]
    assert [p.path for p in result.pending] == [waiting.resolve()]
    assert [f.path for f in result.failed] == [bad.resolve(), refused.resolve()]


# --- run, step and sidecar -------------------------------------------------------------------


def test_sidecar_metadata_is_parsed_and_overrides_the_folder_names(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "exp" / "step-100"))
    parent = "sha256:" + "ab" * 32
    sidecar = {
        "run": "llama-sft-3",
        "step": 250,
        "stage": "sft",
        "parents": [parent],
        "tokens_seen": 1_000_000,
        "training_flop": 6.0e18,
        "notes": {"bio_fraction": "0.02"},
    }
    (ckpt / "tripwire.json").write_text(json.dumps(sidecar))

    found = only_ready(source.scan())

    assert (found.run, found.step) == ("llama-sft-3", 250)
    assert found.metadata.model_dump() == sidecar


def test_sidecar_without_run_or_step_falls_back_to_folder_names(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "exp" / "global_step300"))
    (ckpt / "tripwire.json").write_text('{"stage": "merge"}')

    found = only_ready(source.scan())

    assert (found.run, found.step, found.metadata.stage) == ("exp", 300, "merge")


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        ('{"step": "late"}', "field 'step'"),
        ('{"stpe": 3}', "field 'stpe' is not allowed (allowed: run, step, stage"),
        ('{"parents": ["abc"]}', "field 'parents'"),
        ('{"run": "x",', "tripwire.json is not valid JSON"),
        (b"\xff\xfe", "cannot read tripwire.json"),
    ],
)
def test_a_bad_sidecar_fails_naming_the_problem(
    templates: dict[str, Path],
    root: Path,
    source: LocalDirectorySource,
    sidecar: str | bytes,
    expected: str,
) -> None:
    ckpt = mark_ready(place(templates["single"], root / "step-1"))
    if isinstance(sidecar, bytes):
        (ckpt / "tripwire.json").write_bytes(sidecar)
    else:
        (ckpt / "tripwire.json").write_text(sidecar)

    [failure] = source.scan().failed

    assert expected in failure.reason


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("step-1200", 1200),
        ("step_1200", 1200),
        ("step1200", 1200),
        ("checkpoint-1200", 1200),
        ("global_step1200", 1200),
        ("global-step-1200", 1200),
        ("iter_0001200", 1200),
        ("ckpt-1200", 1200),
        ("run3-step-1200", 1200),
        ("final", None),
        ("model-v2", None),
        ("mystep12", None),
    ],
)
def test_step_is_read_from_the_folder_name(name: str, step: int | None) -> None:
    assert step_from_name(name) == step


@pytest.mark.parametrize(
    ("relative", "run"),
    [("team/run-a/step-1", "team/run-a"), ("run-a/step-1", "run-a"), ("step-1", "checkpoints")],
)
def test_run_is_the_parent_folder_relative_to_the_root(
    templates: dict[str, Path], root: Path, source: LocalDirectorySource, relative: str, run: str
) -> None:
    mark_ready(place(templates["single"], root / relative))

    assert only_ready(source.scan()).run == run


# --- hash cache ------------------------------------------------------------------------------


def test_a_second_scan_hashes_nothing_and_touching_a_file_rehashes_it(
    templates: dict[str, Path], root: Path, tmp_path: Path
) -> None:
    ckpt = mark_ready(place(templates["sharded"], root / "step-1"))
    with (
        HashCache(tmp_path / "hashes.db") as cache,
        LocalDirectorySource(root, hash_cache=cache) as src,
    ):
        first = only_ready(src.scan())
        after_first = cache.hashed_bytes
        assert after_first >= first.total_bytes

        assert only_ready(src.scan()).content_hash == first.content_hash
        assert cache.hashed_bytes == after_first

        shard = sorted(ckpt.glob("model-*.safetensors"))[0]
        os.utime(shard, (1_000_000_000, 1_000_000_000))
        assert only_ready(src.scan()).content_hash == first.content_hash
        assert cache.hashed_bytes == after_first + shard.stat().st_size


def test_the_hash_cache_persists_across_sources(
    templates: dict[str, Path], root: Path, tmp_path: Path
) -> None:
    mark_ready(place(templates["single"], root / "step-1"))
    with (
        HashCache(tmp_path / "hashes.db") as cache,
        LocalDirectorySource(root, hash_cache=cache) as src,
    ):
        src.scan()
    with (
        HashCache(tmp_path / "hashes.db") as cache,
        LocalDirectorySource(root, hash_cache=cache) as src,
    ):
        only_ready(src.scan())
        assert cache.hashed_bytes == 0


# --- watching and single checkpoints ---------------------------------------------------------


def test_wait_for_change_wakes_soon_after_a_file_is_written(
    templates: dict[str, Path], root: Path
) -> None:
    place(templates["single"], root / "run" / "step-1")
    with LocalDirectorySource(root) as src:
        assert src.wait_for_change(0.2) is False
        assert src.scan(now=time.time() + 2 * QUIET_S).ready, "the scan reads every file"
        assert src.wait_for_change(0.2) is False, "the scan's own reads must not wake the loop"

        started = time.monotonic()
        timer = threading.Timer(0.1, (root / "run" / "READY").touch)
        timer.start()
        assert src.wait_for_change(10.0) is True
        assert time.monotonic() - started < 5.0
        timer.join()


def test_close_stops_the_watcher_thread(root: Path) -> None:
    before = set(threading.enumerate())
    with LocalDirectorySource(root) as src:
        src.wait_for_change(0.01)
        assert set(threading.enumerate()) - before
    assert not {t for t in set(threading.enumerate()) - before if t.is_alive()}


def test_a_missing_root_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        LocalDirectorySource(tmp_path / "nope")


def test_read_checkpoint_takes_a_named_folder_as_complete_and_raises_on_refusal(
    templates: dict[str, Path], tmp_path: Path
) -> None:
    ckpt = place(templates["single"], tmp_path / "run-b" / "step-4", mtime_s=time.time())

    found = read_checkpoint(ckpt)

    assert (found.run, found.step, found.format) == ("run-b", 4, "safetensors")
    with pytest.raises(UnsafeCheckpointError, match="TRIPWIRE_ALLOW_PICKLE"):
        read_checkpoint(place(templates["pickle"], tmp_path / "pickled"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
def test_an_unlistable_folder_is_reported_not_skipped(root: Path) -> None:
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with LocalDirectorySource(root) as src:
            [failure] = src.scan().failed
        assert failure.path == locked and "cannot list the folder" in failure.reason
    finally:
        locked.chmod(0o755)


def test_a_source_from_settings_uses_their_quiet_period_pickle_switch_and_home(
    templates: dict[str, Path], root: Path, tmp_path: Path
) -> None:
    from tripwire.settings import Settings

    written_at = time.time()
    place(templates["pickle"], root / "step-1", mtime_s=written_at)
    settings = Settings(home=tmp_path / "home", quiet_period_s=5.0, allow_pickle=True)

    with LocalDirectorySource.from_settings(root, settings) as src:
        assert src.scan(now=written_at + 1).pending
        assert only_ready(src.scan(now=written_at + 6)).format == "pickle"
    assert (tmp_path / "home" / "file-hashes.db").is_file()
