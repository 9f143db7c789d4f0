"""Sealing the ledger: Ed25519 signatures on its entries and an append-only anchor of its heads.

The hash chain (``tripwire.store.ledger``) finds an edited, deleted or unlogged row, but anyone
who can write the database can also recompute every hash after a change. Two things kept outside
the database close that gap:

- **A signing key.** Every process that appends to the ledger signs each entry's hash with an
  Ed25519 key read from a file (``TRIPWIRE_LEDGER_KEY``, generated once in
  ``<home>/ledger_key`` with mode 0600). A forged entry, or a chain recomputed after an edit, has
  no valid signature unless its author also holds the key.
- **An anchor.** After each commit that appended entries, the new head (entry id, hash and
  signature) is appended to an anchor outside the database: a JSON-lines file
  (``<home>/ledger-anchor.jsonl`` by default) or objects under an fsspec prefix
  (``s3://bucket/tripwire/anchor``). An anchored entry that is gone, or whose hash changed,
  shows a truncated or rewritten log even when every remaining signature verifies.

``tripwire audit verify`` checks both (``tripwire.audit``); auditors who should not hold the
private key verify with its public key (``TRIPWIRE_LEDGER_PUBLIC_KEYS``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tripwire.errors import TripwireError

if TYPE_CHECKING:
    from tripwire.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "ledger_key"
ANCHOR_FILE = "ledger-anchor.jsonl"
_DOMAIN = b"tripwire-ledger-v1\n"


def signed_message(entry_hash: str) -> bytes:
    """What a signature covers: the entry's hash, which chains it to every entry before it."""
    return _DOMAIN + entry_hash.encode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key (the first 16 hex digits of its sha256)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class Signer:
    """Signs ledger entries with one Ed25519 private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, entry_hash: str) -> str:
        return self._private.sign(signed_message(entry_hash)).hex()


class Verifier:
    """Checks signatures against the trusted public keys, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def verify(self, entry_hash: str, kid: str | None, signature: str) -> bool:
        key = self.keys.get(kid or "")
        if key is None:
            return False
        try:
            key.verify(bytes.fromhex(signature), signed_message(entry_hash))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """One anchored head."""

    entry_id: int
    entry_hash: str
    key_id: str
    signature: str
    anchored_at: str
    log: str = ""
    """The hash of the log's first entry: which log this head belongs to when several
    databases share one anchor (a home moved from SQLite to PostgreSQL). Empty in records
    written before it existed; those apply to every log."""

    def line(self) -> str:
        fields: dict[str, object] = {
            "entry_id": self.entry_id,
            "entry_hash": self.entry_hash,
            "key_id": self.key_id,
            "signature": self.signature,
            "anchored_at": self.anchored_at,
        }
        if self.log:
            fields["log"] = self.log
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> AnchorRecord:
        data = json.loads(text)
        return cls(
            entry_id=int(data["entry_id"]),
            entry_hash=str(data["entry_hash"]),
            key_id=str(data["key_id"]),
            signature=str(data["signature"]),
            anchored_at=str(data.get("anchored_at", "")),
            log=str(data.get("log", "")),
        )


@dataclass(slots=True)
class AnchorReading:
    records: list[AnchorRecord] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """Lines or objects that are not anchor records (each named)."""


class Anchor(Protocol):
    location: str

    def append(self, record: AnchorRecord) -> None: ...

    def read(self) -> AnchorReading: ...


class FileAnchor:
    """A JSON-lines file opened for appending only (one ``write`` per record, then fsync).

    Make the file append-only at the operating-system level (``chattr +a``) or ship it to a
    write-once store so that the database's writers cannot rewrite it either.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def append(self, record: AnchorRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (record.line() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> AnchorReading:
        reading = AnchorReading()
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return reading
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                reading.records.append(AnchorRecord.parse(line))
            except (ValueError, KeyError, TypeError):
                reading.unreadable.append(f"{self.path}:{number}")
        return reading


class ObjectAnchor:
    """One object per anchored head under an fsspec prefix (``s3://bucket/prefix``).

    Objects are never overwritten; pair the prefix with the store's object lock or versioning
    (S3 Object Lock in compliance mode) to make it write-once.
    """

    def __init__(self, url: str) -> None:
        import fsspec

        self.location = url.rstrip("/")
        self.fs, self.prefix = fsspec.core.url_to_fs(self.location)

    def append(self, record: AnchorRecord) -> None:
        name = f"{self.prefix}/{record.entry_id:012d}-{record.entry_hash[:16]}.json"
        if self.fs.exists(name):
            return
        with self.fs.open(name, "wb") as out:
            out.write(record.line().encode())

    def read(self) -> AnchorReading:
        reading = AnchorReading()
        try:
            names = sorted(self.fs.find(self.prefix))
        except FileNotFoundError:
            return reading
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with self.fs.open(name, "rb") as handle:
                    reading.records.append(AnchorRecord.parse(handle.read().decode()))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                reading.unreadable.append(name)
        return reading


def anchor_at(location: str) -> Anchor:
    """A file anchor for a path, an object anchor for a URL (``s3://``, ``gs://``, ...)."""
    if "://" in location and not location.startswith("file://"):
        return ObjectAnchor(location)
    return FileAnchor(Path(location.removeprefix("file://")))


@dataclass(frozen=True, slots=True)
class Seal:
    """How this process signs and anchors the ledger, and which keys it trusts."""

    signer: Signer | None
    verifier: Verifier
    anchor: Anchor | None

    def anchor_head(self, entry_id: int, entry_hash: str, signature: str, log: str = "") -> None:
        """Append a signed head to the anchor (called after the commit that wrote it);
        ``log`` is the hash of the log's first entry."""
        if self.anchor is None or self.signer is None:
            return
        self.anchor.append(
            AnchorRecord(
                entry_id=entry_id,
                entry_hash=entry_hash,
                key_id=self.signer.key_id,
                signature=signature,
                anchored_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
                log=log,
            )
        )


# ------------------------------------------------------------------ keys from settings


def _load_private(path: Path) -> Ed25519PrivateKey:
    """A PEM private key, or a 32-byte seed in hex (what ``docker/make_secrets.py`` writes)."""
    try:
        data = path.read_bytes()
        seed = data.strip()
        key = (
            Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed.decode()))
            if len(seed) == 64 and b"-----" not in seed
            else serialization.load_pem_private_key(data, password=None)
        )
    except (OSError, ValueError, TypeError) as exc:
        raise TripwireError(
            f"{path}: not a readable Ed25519 private key (PEM, or a 32-byte seed in hex) "
            f"({exc}); restore it from your backup, or point TRIPWIRE_LEDGER_KEY at the "
            "ledger's key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TripwireError(f"{path}: the ledger key must be Ed25519, not {type(key).__name__}")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and not str(path).startswith("/run/secrets/"):  # compose secrets are 0644
        log.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)
    return key


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_public_key(data)
            if b"PUBLIC KEY" in data
            else _load_private(path).public_key()
        )
    except (OSError, ValueError, TypeError) as exc:
        raise TripwireError(
            f"{path}: not a readable Ed25519 key in PEM ({exc}); "
            "TRIPWIRE_LEDGER_PUBLIC_KEYS lists PEM files"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise TripwireError(f"{path}: a ledger key must be Ed25519, not {type(key).__name__}")
    return key


def create_key(path: Path) -> None:
    """Write a new Ed25519 private key to ``path`` (0600); keep an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
            os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def key_path(settings: Settings) -> Path:
    return settings.ledger_key or settings.home / KEY_FILE


def anchor_location(settings: Settings) -> str:
    return settings.ledger_anchor or str(settings.home / ANCHOR_FILE)


def seal_for(settings: Settings, *, writing: bool) -> Seal:
    """The seal of a process with these settings.

    A writing process signs with the ledger key (generating it on first use); a reading one
    (``audit verify``) signs nothing and trusts the key's public half and any listed public keys.
    """
    path = key_path(settings)
    signer: Signer | None = None
    trusted: list[Ed25519PublicKey] = [_load_public(p) for p in settings.ledger_public_keys]
    if settings.ledger_signing:
        if writing and not path.exists():
            create_key(path)
        if path.exists():
            signer = Signer(_load_private(path))
            trusted.append(signer.public)
    anchor = anchor_at(anchor_location(settings)) if settings.ledger_signing else None
    if not writing:
        signer = None
    return Seal(signer=signer, verifier=Verifier(trusted), anchor=anchor)
