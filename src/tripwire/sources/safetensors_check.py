"""Check safetensors files and shard indexes without loading any tensor.

A safetensors file is an 8-byte little-endian header length, a JSON header of that length
mapping tensor names to ``{"dtype", "shape", "data_offsets": [start, end]}``, then the tensor
bytes. A file is whole when its size is exactly 8 + header length + the largest ``end``; a
shorter file is truncated (or still being written), a longer one has trailing garbage.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tripwire.errors import CheckpointError
from tripwire.sources.parsed import MAX_INDEX_BYTES, read_limited

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Same limit as the safetensors library: a larger header is treated as corrupt."""


def check_safetensors(path: Path, *, name: str | None = None) -> int:
    """Validate the header and size of one safetensors file; return its tensor count.

    ``name`` is how the file is called in error messages (default: the file name).
    Raises ``CheckpointError`` naming the file and what is wrong with it.
    """
    label = name or path.name
    size_bytes = path.stat().st_size
    if size_bytes < 8:
        raise CheckpointError(path.parent, f"{label} is truncated: {size_bytes} bytes")
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > MAX_HEADER_BYTES:
            raise CheckpointError(
                path.parent, f"{label} is corrupt: header length {header_len} bytes is implausible"
            )
        if 8 + header_len > size_bytes:
            raise CheckpointError(
                path.parent,
                f"{label} is truncated: {size_bytes} bytes, shorter than its "
                f"{header_len}-byte header",
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            path.parent, f"{label} is corrupt: header is not JSON ({exc})"
        ) from exc
    if not isinstance(header, dict):
        raise CheckpointError(path.parent, f"{label} is corrupt: header is not a JSON object")
    data_end = 0
    tensors = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise CheckpointError(
                path.parent, f"{label} is corrupt: tensor {key!r} has bad data_offsets"
            )
        data_end = max(data_end, offsets[1])
        tensors += 1
    expected_bytes = 8 + header_len + data_end
    if size_bytes < expected_bytes:
        raise CheckpointError(
            path.parent,
            f"{label} is truncated: {size_bytes} bytes, its header describes {expected_bytes}",
        )
    if size_bytes > expected_bytes:
        raise CheckpointError(
            path.parent,
            f"{label} is corrupt: {size_bytes - expected_bytes} bytes beyond the "
            f"{expected_bytes} its header describes",
        )
    return tensors


def read_shard_index(path: Path, size_bytes: int | None = None) -> list[str]:
    """The shard file names listed by a ``model.safetensors.index.json``, sorted and unique.

    Raises ``CheckpointError`` when the index is over ``MAX_INDEX_BYTES``, not JSON, has no
    ``weight_map``, or names a shard outside its own directory (which would escape the
    checkpoint).
    """
    size = path.stat().st_size if size_bytes is None else size_bytes
    text = read_limited(path, size, MAX_INDEX_BYTES)
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path.parent, f"{path.name} is not valid JSON ({exc})") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(path.parent, f"{path.name} has no weight_map")
    shards = set()
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(
                path.parent,
                f"{path.name} maps {tensor!r} to {shard!r}; shards must be plain file names "
                "in the checkpoint directory",
            )
        shards.add(shard)
    return sorted(shards)
