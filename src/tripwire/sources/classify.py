"""Judge one checkpoint directory: ready, pending or failed.

Completeness comes first, so a half-written checkpoint is pending and never failed for being
incomplete. In order, a directory is complete when (1) a ready marker is present, (2) its
``model.safetensors.index.json`` lists only shards that are present with whole headers, and
``config.json`` and a tokenizer are there, or (3) nothing in it changed for the quiet period.
Only a complete directory is validated, and only a valid one is hashed. A valid checkpoint has
``config.json``, weights and a tokenizer that ``AutoTokenizer`` can load: lm-eval cannot score
a model without one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tripwire.errors import CheckpointError, UnsafeCheckpointError
from tripwire.sources.base import (
    DiscoveredCheckpoint,
    DiscoveryFailure,
    Outcome,
    PendingCheckpoint,
)
from tripwire.sources.hashing import FileChangedError, HashCache
from tripwire.sources.identity import Fingerprint, hash_listing
from tripwire.sources.layout import (
    CONFIG_NAME,
    INDEX_NAME,
    SIDECAR_NAME,
    TOKENIZER_HELP,
    DirListing,
    list_dir,
)
from tripwire.sources.metadata import CheckpointMetadata, complete, load_sidecar
from tripwire.sources.parsed import MAX_CONFIG_BYTES, ParsedFiles, read_limited
from tripwire.sources.safetensors_check import check_safetensors, read_shard_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """How a source judges directories under its root."""

    root: Path
    """Resolved directory every file must stay inside."""
    quiet_period_s: float
    ready_markers: tuple[str, ...]
    allow_pickle: bool


def classify(
    directory: Path,
    rules: Rules,
    cache: HashCache,
    now: float,
    *,
    assume_complete: bool = False,
    parsed: ParsedFiles | None = None,
) -> Outcome:
    """Judge ``directory``; ``assume_complete`` skips the completeness rules. ``parsed`` keeps
    the parsed config, shard index and sidecar between scans (none: each is read again).

    Never raises: whatever goes wrong with one folder is that folder's failure, and a scan
    goes on with the others.
    """
    try:
        return _classify(directory, rules, cache, now, assume_complete, parsed or ParsedFiles())
    except UnsafeCheckpointError as exc:
        return DiscoveryFailure(path=directory, reason=exc.reason, unsafe=True)
    except CheckpointError as exc:
        return DiscoveryFailure(path=directory, reason=exc.reason)
    except (FileNotFoundError, FileChangedError) as exc:
        reason = f"files changed during the scan ({exc}); it will be looked at again"
        return PendingCheckpoint(path=directory, reason=reason, waiting_for="stable files")
    except OSError as exc:
        return DiscoveryFailure(path=directory, reason=f"cannot read the checkpoint: {exc}")
    except Exception as exc:  # a bug must not stop the scan of the other folders
        log.exception("unexpected error while judging %s", directory)
        return DiscoveryFailure(
            path=directory,
            reason=f"unexpected error while judging the folder ({type(exc).__name__}: {exc}); "
            "this is a bug in Tripwire: please report it with the watcher's log",
        )


def _classify(
    directory: Path,
    rules: Rules,
    cache: HashCache,
    now: float,
    assume_complete: bool,
    parsed: ParsedFiles,
) -> Outcome:
    listing = list_dir(directory)
    _check_confined(listing, rules.root)
    marker = listing.has_any(rules.ready_markers)
    if not (marker or assume_complete):
        waiting = _why_incomplete(listing, rules, now, parsed)
        if waiting is not None:
            return waiting
    if listing.dangling_links:
        raise CheckpointError(directory, f"{listing.dangling_links[0]} is a broken symlink")
    return _validate(listing, rules, cache, marker, parsed)


def _check_confined(listing: DirListing, root: Path) -> None:
    targets = [(e.name, e.path) for e in listing.files.values() if e.is_symlink]
    targets += [(n, (listing.directory / n).resolve()) for n in listing.dangling_links]
    for name, target in targets:
        if not target.is_relative_to(root):
            raise UnsafeCheckpointError(
                listing.directory,
                f"{name} is a symlink to {target}, outside the watched root {root}; "
                "copy the file in, or watch the directory it lives in",
            )


def _why_incomplete(
    listing: DirListing, rules: Rules, now: float, parsed: ParsedFiles
) -> PendingCheckpoint | None:
    """What the directory still waits for, or None when it is complete."""
    files, directory = listing.files, listing.directory
    age_s = now - listing.latest_mtime_s()
    if INDEX_NAME in files:
        try:
            shards = _shard_index(listing, parsed)
        except CheckpointError:
            shards = None  # maybe still being written: the quiet period decides
        if shards is not None:
            missing = [s for s in shards if s not in files]
            if missing:
                shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
                reason = (
                    f"shard index lists {len(shards)} shards, {len(shards) - len(missing)} "
                    f"present (missing: {shown}; unchanged for {max(age_s, 0.0):.1f} s)"
                )
                return PendingCheckpoint(path=directory, reason=reason, waiting_for="shards")
            if CONFIG_NAME in files and listing.has_tokenizer() and _all_whole(listing, shards):
                return None  # save_pretrained writes the tokenizer after the weights
    if listing.dangling_links:
        reason = f"{listing.dangling_links[0]} is a symlink to a file that does not exist yet"
        return PendingCheckpoint(path=directory, reason=reason, waiting_for="symlink target")
    in_progress = listing.in_progress_files()
    if in_progress:
        reason = f"{in_progress[0]} is still being written"
        return PendingCheckpoint(path=directory, reason=reason, waiting_for="file being written")
    if age_s < rules.quiet_period_s:
        marker = rules.ready_markers[0] if rules.ready_markers else "a ready marker"
        reason = (
            f"waiting for quiet period ({max(age_s, 0.0):.1f} s of {rules.quiet_period_s:.1f} s); "
            f"write {marker} in it to take it at once"
        )
        return PendingCheckpoint(path=directory, reason=reason, waiting_for="quiet period")
    return None


def _shard_index(listing: DirListing, parsed: ParsedFiles) -> list[str]:
    return parsed.get("index", listing.files[INDEX_NAME], read_shard_index)


def _all_whole(listing: DirListing, shards: list[str]) -> bool:
    try:
        for shard in shards:
            check_safetensors(listing.files[shard].path, name=shard)
    except CheckpointError:
        return False
    return True


def _validate(
    listing: DirListing, rules: Rules, cache: HashCache, marker: str | None, parsed: ParsedFiles
) -> DiscoveredCheckpoint:
    directory, files = listing.directory, listing.files
    if CONFIG_NAME not in files:
        why = f" although the ready marker {marker} is present" if marker else ""
        raise CheckpointError(directory, f"no {CONFIG_NAME}{why}; save_pretrained writes one")
    parsed.get("config", files[CONFIG_NAME], _read_config)
    weights = listing.safetensors_files()
    fmt: Literal["safetensors", "pickle"] = "safetensors"
    if weights:
        if INDEX_NAME in files:
            shards = _shard_index(listing, parsed)
            missing = [s for s in shards if s not in files]
            if missing:
                raise CheckpointError(
                    directory, f"{INDEX_NAME} lists shards that are missing: {', '.join(missing)}"
                )
        for name in weights:
            check_safetensors(files[name].path, name=name)
    elif listing.pickle_files():
        weights, fmt = listing.pickle_files(), "pickle"
        if not rules.allow_pickle:
            raise UnsafeCheckpointError(
                directory,
                f"pickle weights ({', '.join(weights)}) refused: loading pickle can run "
                "arbitrary code. Convert them to safetensors, or set TRIPWIRE_ALLOW_PICKLE=1 "
                "(allow_pickle=True) if you trust where they came from",
            )
    else:
        why = f" although the ready marker {marker} is present" if marker else ""
        raise CheckpointError(
            directory, f"no weights (*.safetensors){why}; expected model.safetensors or shards"
        )
    if not listing.has_tokenizer():
        why = f" although the ready marker {marker} is present" if marker else ""
        raise CheckpointError(
            directory,
            f"no tokenizer{why}: lm-eval loads it with AutoTokenizer from the checkpoint folder, "
            f"which needs {TOKENIZER_HELP}; save it beside the weights with "
            "tokenizer.save_pretrained(<folder>)",
        )
    sidecar = (
        parsed.get("sidecar", files[SIDECAR_NAME], load_sidecar)
        if SIDECAR_NAME in files
        else CheckpointMetadata()
    )
    meta = complete(sidecar, directory, rules.root)
    assert meta.run is not None
    return DiscoveredCheckpoint(
        path=directory,
        content_hash=hash_listing(listing, cache),
        fingerprint=Fingerprint.of(listing),
        run=meta.run,
        step=meta.step,
        metadata=meta,
        weight_files=weights,
        total_bytes=sum(files[name].size_bytes for name in weights),
        format=fmt,
    )


def _read_config(path: Path, size_bytes: int) -> None:
    text = read_limited(path, size_bytes, MAX_CONFIG_BYTES)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(path.parent, f"{CONFIG_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(path.parent, f"{CONFIG_NAME} is not a JSON object")
