"""A folder's fingerprint tells cheaply that a checkpoint is unchanged; the hash decides if not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint
from tripwire.sources import HashCache, read_checkpoint
from tripwire.sources.identity import Fingerprint, check_location


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("identity") / "step-1", seed=1)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("identity-other") / "step-1", seed=2)


def test_discovery_records_the_stat_of_the_weights_and_config_only(
    original: Path, tmp_path: Path
) -> None:
    found = read_checkpoint(shutil.copytree(original, tmp_path / "step-1"))

    assert found.fingerprint is not None
    assert [f.name for f in found.fingerprint.files] == ["config.json", "model.safetensors"]
    weights = (tmp_path / "step-1" / "model.safetensors").stat()
    stamp = found.fingerprint.files[1]
    assert (stamp.size_bytes, stamp.mtime_ns, stamp.inode) == (
        weights.st_size,
        weights.st_mtime_ns,
        weights.st_ino,
    )


def test_an_unchanged_folder_is_recognised_without_reading_a_byte(
    original: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(original, tmp_path / "step-1")
    found = read_checkpoint(folder)
    with HashCache.in_memory() as cache:
        check = check_location(folder, found.content_hash, found.fingerprint, cache)

        assert check.matches and check.how == "fingerprint"
        assert cache.hashed_bytes == 0 and cache.hits == 0


def test_a_touched_file_is_hashed_again_and_still_matches(original: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(original, tmp_path / "step-1")
    found = read_checkpoint(folder)
    os.utime(folder / "model.safetensors", ns=(1, 1))
    with HashCache.in_memory() as cache:
        check = check_location(folder, found.content_hash, found.fingerprint, cache)

        assert check.matches and check.how == "hash"
        assert check.found_hash == found.content_hash
        assert cache.hashed_bytes > 0


def test_new_weights_at_the_same_path_do_not_match_and_say_what_is_there(
    original: Path, other: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(original, tmp_path / "step-1")
    found = read_checkpoint(folder)
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    with HashCache.in_memory() as cache:
        check = check_location(folder, found.content_hash, found.fingerprint, cache)

    assert not check.matches and check.how == "hash"
    assert check.found_hash == read_checkpoint(other).content_hash
    assert f"now holds {check.found_hash} (expected {found.content_hash})" in check.describe(
        found.content_hash
    )


def test_a_tokenizer_or_marker_change_is_not_a_content_change(
    original: Path, tmp_path: Path
) -> None:
    folder = shutil.copytree(original, tmp_path / "step-1")
    found = read_checkpoint(folder)
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "READY").unlink()

    assert Fingerprint.of_folder(folder) == found.fingerprint


def test_a_missing_folder_is_reported_as_missing(tmp_path: Path) -> None:
    with HashCache.in_memory() as cache:
        check = check_location(tmp_path / "gone", "sha256:" + "0" * 64, None, cache)

    assert (check.matches, check.how) == (False, "missing")
    assert check.describe("x").endswith("gone no longer exists")
