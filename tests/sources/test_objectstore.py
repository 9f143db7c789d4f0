"""The object-store source against a real local S3 server (moto's server mode): a checkpoint
uploaded file by file is taken only when complete; a restart in the middle of a listing misses
nothing and repeats nothing; a sharded checkpoint is taken once every shard is whole; downloads
are cached by content and evicted least recently used first."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_checkpoint
from tests.sources.s3 import Bucket, bucket, s3_server
from tripwire.sources.object_cache import CheckpointCache
from tripwire.sources.objectstore import ObjectStoreSource
from tripwire.store import repo
from tripwire.store.cursors import DatabaseCursors, MemoryCursors
from tripwire.store.db import Database
from tripwire.store.models import CheckpointLocation

__all__ = ["bucket", "s3_server"]

FAR = 1e12
"""A quiet period no test waits out."""


def source(b: Bucket, tmp_path: Path, cursors: object = None, **kw: object) -> ObjectStoreSource:
    return ObjectStoreSource(
        f"s3://{b.name}/ckpts",
        b.fs,
        cursors=cursors if cursors is not None else MemoryCursors(),  # type: ignore[arg-type]
        cache=CheckpointCache(tmp_path / "cache", kw.pop("cache_bytes", 10**9)),  # type: ignore[arg-type]
        quiet_period_s=kw.pop("quiet_period_s", FAR),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_a_checkpoint_uploaded_file_by_file_is_taken_only_when_complete(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = make_checkpoint(tmp_path / "local" / "step-100", seed=1, ready=True)
    src = source(bucket, tmp_path)
    names = [*sorted(p.name for p in local.iterdir() if p.name != "READY"), "READY"]
    for i, name in enumerate(names):
        bucket.upload(local / name, f"ckpts/run-a/step-100/{name}")
        scan = src.scan()
        if i < len(names) - 1:
            assert scan.ready == [], f"taken after {name}"
            assert [str(p.path) for p in scan.pending] == [
                f"s3://{bucket.name}/ckpts/run-a/step-100"
            ]
        else:
            (found,) = scan.ready
            assert found.uri == f"s3://{bucket.name}/ckpts/run-a/step-100"
            assert (found.run, found.step) == ("run-a", 100)
            assert found.path.is_dir() and (found.path / "config.json").is_file()
    assert src.downloads == 1


def test_without_a_marker_the_quiet_period_decides(bucket: Bucket, tmp_path: Path) -> None:
    local = make_checkpoint(tmp_path / "local" / "step-1", seed=2, ready=False)
    bucket.upload_folder(local, "ckpts/run-a/step-1")
    src = source(bucket, tmp_path, quiet_period_s=60.0)
    newest = max(
        f["LastModified"] for f in bucket.fs.ls(f"{bucket.name}/ckpts/run-a/step-1", detail=True)
    ).timestamp()
    assert src.scan(now=newest + 59).pending
    assert len(src.scan(now=newest + 61).ready) == 1


def test_a_sharded_checkpoint_is_taken_when_every_shard_is_whole(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = make_checkpoint(
        tmp_path / "local" / "step-200", seed=3, ready=False, max_shard_size="20KB"
    )
    shards = sorted(p.name for p in local.glob("model-*.safetensors"))
    assert len(shards) >= 2
    src = source(bucket, tmp_path)
    prefix = "ckpts/run-a/step-200"
    bucket.upload_folder(local, prefix, last=tuple(shards))
    for shard in shards:  # delete what upload_folder put last, then upload again in steps
        bucket.fs.rm(f"{bucket.name}/{prefix}/{shard}")
    assert src.scan().pending  # index, config and tokenizer, no shards
    truncated = tmp_path / shards[0]
    truncated.write_bytes((local / shards[0]).read_bytes()[:-100])
    bucket.upload(truncated, f"{prefix}/{shards[0]}")
    for shard in shards[1:]:
        bucket.upload(local / shard, f"{prefix}/{shard}")
    (waiting,) = src.scan().pending  # every shard present, the first one short
    assert waiting.waiting_for == "shards"
    bucket.upload(local / shards[0], f"{prefix}/{shards[0]}")
    (found,) = src.scan().ready
    assert sorted(found.weight_files) == shards


def test_a_restart_in_the_middle_of_a_listing_misses_nothing_and_repeats_nothing(
    bucket: Bucket, tmp_path: Path, database_url: str
) -> None:
    db = Database(database_url)
    model = make_checkpoint(tmp_path / "model", seed=4, ready=True)
    steps = [f"step-{i:06d}" for i in range(1, 8)]
    for step in steps:
        bucket.upload_folder(model, f"ckpts/run-a/{step}", last=("READY",))
    first = source(bucket, tmp_path, DatabaseCursors(db), page_size=2, max_ready_per_scan=3)
    scan = first.scan()
    assert [f.uri.rsplit("/", 1)[-1] for f in scan.ready if f.uri] == steps[:3]
    first.confirm(scan.ready[0])
    first.confirm(scan.ready[1])  # the process dies before the third is recorded
    restarted = source(bucket, tmp_path, DatabaseCursors(db), page_size=2, max_ready_per_scan=3)
    seen: list[str] = []
    while True:
        found = restarted.scan().ready
        if not found:
            break
        for f in found:
            assert f.uri is not None
            seen.append(f.uri.rsplit("/", 1)[-1])
            restarted.confirm(f)
    assert seen == steps[2:]  # the unrecorded third again, then the rest; each once
    assert restarted.downloads == len(steps) - 3  # the third came from the cache
    listed_before = restarted.listed
    assert restarted.scan().ready == []
    assert restarted.listed - listed_before == 2  # the runs, and one page after the cursor
    db.dispose()


def test_the_cache_is_keyed_by_content_bounded_and_evicts_the_least_recently_used(
    bucket: Bucket, tmp_path: Path
) -> None:
    a = make_checkpoint(tmp_path / "a", seed=5, ready=True)
    b = make_checkpoint(tmp_path / "b", seed=6, ready=True)
    bucket.upload_folder(a, "ckpts/run-a/step-1", last=("READY",))
    bucket.upload_folder(a, "ckpts/run-b/step-1", last=("READY",))  # same content elsewhere
    size = sum(p.stat().st_size for p in a.iterdir())
    src = source(bucket, tmp_path, cache_bytes=int(size * 1.5))
    found = src.scan().ready
    assert len(found) == 2 and found[0].content_hash == found[1].content_hash
    assert found[0].path == found[1].path  # one copy, keyed by content
    bucket.upload_folder(b, "ckpts/run-a/step-2", last=("READY",))
    for f in found:
        src.confirm(f)
    (newer,) = src.scan().ready
    assert src.cache.evicted == [found[0].content_hash]
    assert not found[0].path.exists() and newer.path.is_dir()
    assert src.cache.total_bytes() <= int(size * 1.5)


def test_a_folder_that_lands_behind_the_cursor_is_taken_by_the_next_full_sweep(
    bucket: Bucket, tmp_path: Path, database_url: str
) -> None:
    db = Database(database_url)
    late = make_checkpoint(tmp_path / "late", seed=7, ready=True)
    first = make_checkpoint(tmp_path / "first", seed=8, ready=True)
    bucket.upload_folder(first, "ckpts/run-a/step-300", last=("READY",))
    src = source(bucket, tmp_path, DatabaseCursors(db), full_sweep_every=3)
    with db.session() as s:  # what the watcher's ingest records for a taken checkpoint
        (found,) = src.scan().ready
        cp, _ = repo.record_checkpoint(
            s, content_hash=found.content_hash, path=str(found.path), run="run-a", step=300
        )
        s.add(CheckpointLocation(checkpoint_id=cp.id, path=found.uri))
    src.confirm(found)
    bucket.upload_folder(late, "ckpts/run-a/step-1000", last=("READY",))  # sorts before 300
    assert src.scan().ready == []  # scan 2: behind the cursor, not listed
    (swept,) = src.scan().ready  # scan 3: the full sweep
    assert swept.uri is not None and swept.uri.endswith("/step-1000")
    src.confirm(swept)
    assert src.scan().ready == []
    db.dispose()
