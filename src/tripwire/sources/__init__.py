"""Checkpoint discovery: find complete checkpoints, refuse unsafe ones, identify them by content.

``LocalDirectorySource`` watches a directory; every source reports a ``ScanResult`` whose
checkpoints are ready (``DiscoveredCheckpoint``), pending or failed. See ``docs/sources.md``.
"""

from tripwire.sources.base import (
    CheckpointSource,
    DiscoveredCheckpoint,
    DiscoveryFailure,
    PendingCheckpoint,
    ScanResult,
)
from tripwire.sources.hashing import HashCache, content_hash, sha256_file
from tripwire.sources.local import LocalDirectorySource, read_checkpoint
from tripwire.sources.metadata import CheckpointMetadata, step_from_name
from tripwire.sources.safetensors_check import check_safetensors

__all__ = [
    "CheckpointMetadata",
    "CheckpointSource",
    "DiscoveredCheckpoint",
    "DiscoveryFailure",
    "HashCache",
    "LocalDirectorySource",
    "PendingCheckpoint",
    "ScanResult",
    "check_safetensors",
    "content_hash",
    "read_checkpoint",
    "sha256_file",
    "step_from_name",
]
