"""File names that make up a Hugging Face checkpoint directory, and a snapshot of one.

These rules are shared by every source: which files are weights, which are markers, which
directories are in-progress writes to be skipped.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.json"
INDEX_NAME = "model.safetensors.index.json"
SIDECAR_NAME = "tripwire.json"
DEFAULT_READY_MARKERS = ("READY", ".ready", "_SUCCESS")
"""File names whose presence says the writer has finished the checkpoint."""

PICKLE_WEIGHT_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
TRAINER_STATE_PATTERNS = ("optimizer*.pt", "scheduler*.pt", "scaler*.pt", "rng_state*.pth")
"""Files a Hugging Face Trainer saves beside the weights; they are not weights."""

IN_PROGRESS_SUFFIXES = (".tmp", ".incomplete", ".part", ".partial")
"""A file or folder with one of these suffixes is still being written."""

TOKENIZER_FILE_SETS = (
    ("tokenizer.json",),
    ("vocab.json", "merges.txt"),
    ("tokenizer.model",),
    ("spiece.model",),
    ("sentencepiece.bpe.model",),
    ("vocab.txt",),
)
"""File sets from which transformers' ``AutoTokenizer`` can build a tokenizer offline, without
remote code: a fast tokenizer (``tokenizer.json``), a BPE vocabulary with its merges (GPT-2,
RoBERTa), a sentencepiece model (Llama, Mistral, T5, XLM-R) or a WordPiece vocabulary (BERT).
``tokenizer_config.json`` names the class and special tokens, but holds no vocabulary."""
TOKENIZER_HELP = (
    "tokenizer.json, or vocab.json with merges.txt, or a sentencepiece model (tokenizer.model, "
    "spiece.model, sentencepiece.bpe.model), or vocab.txt"
)


def is_skipped_dir(name: str) -> bool:
    """Hidden folders and in-progress writes (``.tmp*``, ``*.tmp``, ``*.incomplete``)."""
    return name.startswith(".") or name.endswith((".tmp", ".incomplete"))


def is_safetensors(name: str) -> bool:
    return name.endswith(".safetensors") and not name.startswith(".")


def is_pickle_weights(name: str) -> bool:
    if name.startswith("."):
        return False
    if any(fnmatch.fnmatchcase(name, p) for p in TRAINER_STATE_PATTERNS):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in PICKLE_WEIGHT_PATTERNS)


@dataclass(frozen=True)
class FileEntry:
    """One file directly inside a checkpoint directory, as seen at listing time."""

    name: str
    path: Path
    """Where the file is read from: the resolved target when the entry is a symlink."""
    size_bytes: int
    mtime_s: float
    is_symlink: bool
    mtime_ns: int = 0
    """Modification time in nanoseconds (of the target, for a symlink)."""
    inode: int = 0
    """Inode number (of the target, for a symlink)."""


@dataclass(frozen=True)
class DirListing:
    """The files directly inside one directory (not recursive)."""

    directory: Path
    dir_mtime_s: float
    files: dict[str, FileEntry]
    dangling_links: list[str]
    """Symlinks whose target does not exist."""

    def has_any(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` present, or None."""
        return next((n for n in names if n in self.files), None)

    def safetensors_files(self) -> list[str]:
        return sorted(n for n in self.files if is_safetensors(n))

    def pickle_files(self) -> list[str]:
        return sorted(n for n in self.files if is_pickle_weights(n))

    def weight_files(self) -> list[str]:
        """The weights: the safetensors files, or the pickle files when there are none."""
        return self.safetensors_files() or self.pickle_files()

    def identity_files(self) -> list[str]:
        """The files whose contents make the checkpoint's content hash: weights and config."""
        weights = self.weight_files()
        return [*weights, CONFIG_NAME] if weights and CONFIG_NAME in self.files else weights

    def has_tokenizer(self) -> bool:
        """Whether one of ``TOKENIZER_FILE_SETS`` is complete here."""
        return any(all(n in self.files for n in names) for names in TOKENIZER_FILE_SETS)

    def in_progress_files(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(IN_PROGRESS_SUFFIXES))

    def latest_mtime_s(self) -> float:
        """Newest modification time of the directory and of every file in it."""
        return max([self.dir_mtime_s, *(f.mtime_s for f in self.files.values())])


def list_dir(directory: Path) -> DirListing:
    """Snapshot the files directly inside ``directory``; subdirectories are left out.

    Symlinks are followed for size and mtime. A file that vanishes while listing raises
    ``FileNotFoundError``: the directory is changing and should be looked at again.
    """
    files: dict[str, FileEntry] = {}
    dangling: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            link = entry.is_symlink()
            if entry.is_dir(follow_symlinks=True):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                if not link:
                    raise
                dangling.append(entry.name)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            path = Path(entry.path).resolve() if link else Path(entry.path)
            files[entry.name] = FileEntry(
                entry.name, path, st.st_size, st.st_mtime, link, st.st_mtime_ns, st.st_ino
            )
    return DirListing(directory, directory.stat().st_mtime, files, sorted(dangling))


def is_candidate(names: list[str], ready_markers: tuple[str, ...]) -> bool:
    """Whether a directory holding these file names looks like a checkpoint."""
    return any(
        n == CONFIG_NAME or n in ready_markers or is_safetensors(n) or is_pickle_weights(n)
        for n in names
    )
