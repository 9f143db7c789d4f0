"""Discovering new checkpoints in a bucket that already holds many: proportional to what is new.

Against a real local S3 endpoint (moto's server mode on a free port, stopped at the end), a
bucket holds ``--old`` checkpoint folders already taken (the source's cursor is where a watcher
that took them would have left it; taking them the first time is not what is measured) and then
receives ``--new`` complete checkpoints. One ``ObjectStoreSource.scan`` finds them. The same is
done with 100 old folders, and the naive way (list every key under the prefix, what a scanner
without a cursor does at every pass) is timed on the large bucket.

Prints list requests and wall time for each, and the ratios: large/small near 1 means the cost
follows the new checkpoints, not the bucket.

Usage: ``python bench/sources.py [--old 10000] [--new 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)

from tripwire.sources.object_cache import CheckpointCache  # noqa: E402
from tripwire.sources.objectstore import ObjectStoreSource  # noqa: E402
from tripwire.store.cursors import MemoryCursors  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tiny_checkpoint(folder: Path, seed: int) -> Path:
    """config.json, a one-tensor safetensors file, a tokenizer file and a ready marker."""
    folder.mkdir(parents=True, exist_ok=True)
    data = bytes((seed + i) % 256 for i in range(64))
    header = json.dumps({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "seed": seed}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "READY").write_text("")
    return folder


def fill(fs: object, bucket: str, old: int) -> None:
    """``old`` folders of one small object each (their content is never read: they are behind
    the cursor)."""
    put = fs.pipe_file  # type: ignore[attr-defined]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: put(f"{bucket}/ckpts/run-a/step-{i:07d}/READY", b""), range(1, old + 1)
            )
        )


def land(fs: object, bucket: str, first: int, new: int, tmp: Path) -> None:
    for i in range(first, first + new):
        local = tiny_checkpoint(tmp / f"c{i}", i)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "READY"):
            fs.put_file(str(local / name), f"{bucket}/ckpts/run-a/step-{i:07d}/{name}")  # type: ignore[attr-defined]


def measure(
    endpoint: str, old: int, new: int, tmp: Path, rounds: int
) -> tuple[int, float, float, float]:
    """(list requests, median scan time s, naive full-listing time s, one bare StartAfter
    listing request s: the server's own cost) for ``old`` + ``new``."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    times, requests, naive, bare = [], [], [], []
    for r in range(rounds):
        bucket = f"bench-{old}-{r}-{time.time_ns()}"
        fs.mkdir(bucket)
        fill(fs, bucket, old)
        cursors = MemoryCursors()
        root = f"s3://{bucket}/ckpts"
        cursors.save(root, {"runs": {"run-a": {"after": f"step-{old:07d}"}}})
        land(fs, bucket, old + 1, new, tmp / bucket)
        source = ObjectStoreSource(
            root,
            fs,
            cursors=cursors,
            cache=CheckpointCache(tmp / bucket / "cache", 10**9),
            quiet_period_s=1e12,
            max_ready_per_scan=new,
        )
        started = time.perf_counter()
        found = source.scan().ready
        times.append(time.perf_counter() - started)
        assert len(found) == new, f"found {len(found)} of {new}"
        requests.append(source.listed)
        started = time.perf_counter()
        fs.call_s3(
            "list_objects_v2",
            Bucket=bucket,
            Prefix="ckpts/run-a/",
            Delimiter="/",
            StartAfter=f"ckpts/run-a/step-{old + new:07d}",
        )
        bare.append(time.perf_counter() - started)
        fs.invalidate_cache()
        started = time.perf_counter()
        keys = fs.find(f"{bucket}/ckpts")
        naive.append(time.perf_counter() - started)
        assert len(keys) >= old + new
    return (
        int(statistics.median(requests)),
        statistics.median(times),
        statistics.median(naive),
        statistics.median(bare),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            small = measure(endpoint, 100, args.new, Path(tmp), args.rounds)
            large = measure(endpoint, args.old, args.new, Path(tmp), args.rounds)
    finally:
        server.stop()
    print(f"discovering {args.new} new checkpoints (median of {args.rounds} rounds)")
    head = f"{'old folders':>12} {'list requests':>14} {'scan s':>8} {'naive full listing s':>21}"
    print(head + f" {'one empty StartAfter request s':>31}")
    for old, (req, scan_s, naive_s, bare_s) in ((100, small), (args.old, large)):
        print(f"{old:>12,} {req:>14} {scan_s:>8.3f} {naive_s:>21.3f} {bare_s:>31.4f}")
    ratio = large[1] / small[1]
    print(f"ratio scan time, {args.old:,} old / 100 old: {ratio:.2f} (1 = proportional to new)")
    print(f"ratio list requests, {args.old:,} old / 100 old: {large[0] / small[0]:.2f}")
    print(f"ratio naive full listing / cursor scan at {args.old:,} old: {large[2] / large[1]:.1f}x")
    print(
        f"server cost: one StartAfter request returning nothing, {args.old:,} old / 100 old: "
        f"{large[3] / small[3]:.1f}x (moto filters every key of the bucket per request; S3 "
        "seeks an index)"
    )


if __name__ == "__main__":
    main()
