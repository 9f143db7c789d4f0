"""The local data store: one folder per benchmark under ``$TRIPWIRE_HOME/data``.

Each folder holds the imported items as ``<config>/<split>.parquet``, ``manifest.json`` (what
was imported, from where, the content hash of the item files), and a snapshot
``snapshots/<hash>/`` laid out as a dataset repository that ``datasets.load_dataset(snapshot,
config)`` reads without the hub (``README.md`` lists the configurations and their split files).
The snapshot is named by its content because ``datasets`` caches a local folder's prepared
data by the folder's name and file names, not their bytes: a re-import under the same name
would be served stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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
    snapshot: str = ""
    """The snapshot folder lm-eval reads, relative to the benchmark's folder."""

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

    def dataset_folder(self, manifest: Manifest) -> Path:
        """The folder ``datasets.load_dataset`` reads for this benchmark (its snapshot)."""
        return self.folder(manifest.benchmark) / manifest.snapshot

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
            if file.parent.parent != folder:
                continue
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
        content_hash = digest.hexdigest()
        snapshot = folder / "snapshots" / content_hash[:16]
        if not snapshot.is_dir():
            staging = folder / "snapshots" / f".{content_hash[:16]}.{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            for file in sorted(folder.glob("*/*.parquet")):
                (staging / file.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, staging / file.parent.name / file.name)
            (staging / "README.md").write_text(readme, encoding="utf-8")
            try:
                os.replace(staging, snapshot)
            except OSError:  # another import wrote the same snapshot first
                shutil.rmtree(staging, ignore_errors=True)
        for old in (folder / "snapshots").iterdir():
            if old.name != snapshot.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        manifest.configs = configs
        manifest.content_hash = content_hash
        manifest.snapshot = f"snapshots/{snapshot.name}"
        _write(folder / "manifest.json", manifest.model_dump_json(indent=2))
        return manifest


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
