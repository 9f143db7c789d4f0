"""The local data store: one folder per benchmark under ``$TRIPWIRE_HOME/data``.

Each folder is laid out as a dataset repository that ``datasets.load_dataset(folder, config)``
reads without the hub: ``README.md`` lists the configurations and their split files,
``<config>/<split>.parquet`` holds the items, and ``manifest.json`` records what was imported,
from where, and the content hash of every item file.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

MANIFEST_SCHEMA_VERSION: Literal[1] = 1


class Manifest(BaseModel):
    """What one benchmark's store folder holds (``manifest.json``)."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    benchmark: str
    dataset_paths: list[str]
    """The hub datasets (lm-eval's ``dataset_path``) this folder stands in for."""
    configs: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Items per split, per dataset configuration (``wmdp-bio``: ``{"test": 1273}``)."""
    content_hash: str = ""
    """sha256 over every item file's path and bytes."""
    sources: list[str] = Field(default_factory=list)
    """The paths imported from, in order."""
    imported_at: datetime | None = None

    @property
    def items(self) -> int:
        return sum(n for splits in self.configs.values() for n in splits.values())


class DataStore:
    """The benchmark folders under ``root`` (``$TRIPWIRE_HOME/data``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, benchmark: str) -> Path:
        return self.root / benchmark

    def manifest(self, benchmark: str) -> Manifest | None:
        file = self.folder(benchmark) / "manifest.json"
        if not file.is_file():
            return None
        return Manifest.model_validate_json(file.read_text(encoding="utf-8"))

    def manifests(self) -> list[Manifest]:
        if not self.root.is_dir():
            return []
        found = (self.manifest(p.name) for p in sorted(self.root.iterdir()) if p.is_dir())
        return [m for m in found if m is not None]

    def folder_for(self, dataset_path: str) -> Path | None:
        """The store folder standing in for a hub dataset, if one was imported."""
        for manifest in self.manifests():
            if dataset_path in manifest.dataset_paths:
                return self.folder(manifest.benchmark)
        return None

    def has(self, dataset_path: str, config: str | None, splits: list[str]) -> bool:
        """Whether the store holds these splits of this dataset configuration."""
        for manifest in self.manifests():
            if dataset_path in manifest.dataset_paths:
                held = manifest.configs.get(config or "default", {})
                return all(split in held for split in splits)
        return False

    def write_index(self, benchmark: str) -> Manifest:
        """Rewrite ``README.md`` and the manifest's counts and hash from the item files."""
        import pyarrow.parquet as pq

        folder = self.folder(benchmark)
        manifest = self.manifest(benchmark)
        assert manifest is not None
        configs: dict[str, dict[str, int]] = {}
        digest = hashlib.sha256()
        for file in sorted(folder.glob("*/*.parquet")):
            config, split = file.parent.name, file.stem
            configs.setdefault(config, {})[split] = pq.ParquetFile(file).metadata.num_rows
            digest.update(f"{config}/{split}".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        card = {
            "configs": [
                {
                    "config_name": config,
                    "data_files": [
                        {"split": split, "path": f"{config}/{split}.parquet"}
                        for split in sorted(splits)
                    ],
                }
                for config, splits in sorted(configs.items())
            ]
        }
        readme = "---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n"
        _write(folder / "README.md", readme)
        manifest.configs = configs
        manifest.content_hash = digest.hexdigest()
        _write(folder / "manifest.json", manifest.model_dump_json(indent=2))
        return manifest


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
