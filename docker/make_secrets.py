#!/usr/bin/env python3
"""Write the compose deployment's secrets: random passwords, and the URLs that use them.

    python3 docker/make_secrets.py                      # on the machine that runs compose
    python3 docker/make_secrets.py --host tripwire-host # on a GPU machine elsewhere (after
                                                        # copying the two password files over)

Files go to ``./secrets`` (``--dir``), one per compose secret; docker-compose.yml hands each
service only the ones it needs, at ``/run/secrets/<name>``. A file that exists is never
overwritten, so running this again is safe; the URL files are derived from the password files
(and rewritten when ``--host`` names another host). Passwords are hexadecimal, so they need no
escaping in a URL. The folder is readable by its owner only; the files are world-readable so
that every container user (postgres, redis, tripwire) can read the one it is given.

Only the standard library: it runs on the host, before any image is built.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

PASSWORD_BYTES = 24
"""Random bytes per password (48 hexadecimal characters)."""


def write(path: Path, value: str, *, overwrite: bool = False) -> bool:
    """Write ``value`` to ``path`` (mode 0644) unless it exists; True if written."""
    if path.exists() and not overwrite:
        return False
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o644)
    return True


def read(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SystemExit(f"{path} is empty: delete it and run this again")
    return value


def make(folder: Path, *, host: str | None, user: str, database: str) -> list[str]:
    """Create what is missing in ``folder``; returns the names written."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    written = []
    remote = host is not None
    for name in ("postgres_password", "redis_password"):
        path = folder / name
        if not path.exists() and remote:
            raise SystemExit(
                f"{path} is missing: copy it from the machine that runs compose (the GPU "
                "machines use the same passwords)"
            )
        if write(path, secrets.token_hex(PASSWORD_BYTES)):
            written.append(name)
    if write(folder / "flower_basic_auth", f"admin:{secrets.token_hex(PASSWORD_BYTES)}"):
        written.append("flower_basic_auth")
    # the review app's session key, and the Ed25519 seed that signs the decision log (every
    # machine that runs workers needs the same ledger_key: copy it with the passwords)
    if not remote and write(folder / "tripwire_secret_key", secrets.token_hex(32)):
        written.append("tripwire_secret_key")
    # the upload webhook's HMAC key: give it to the trainers that announce checkpoints
    if not remote and write(folder / "tripwire_webhook_secret", secrets.token_hex(32)):
        written.append("tripwire_webhook_secret")
    path = folder / "ledger_key"
    if not path.exists() and remote:
        raise SystemExit(f"{path} is missing: copy it from the machine that runs compose")
    if write(path, secrets.token_hex(32)):
        written.append("ledger_key")
    pg_host, redis_host = (host, host) if remote else ("postgres", "redis")
    pg_password, redis_password = (
        read(folder / "postgres_password"),
        read(folder / "redis_password"),
    )
    urls = {
        "tripwire_database_url": (
            f"postgresql+psycopg://{user}:{pg_password}@{pg_host}:5432/{database}"
        ),
        "tripwire_broker_url": f"redis://:{redis_password}@{redis_host}:6379/0",
    }
    for name, url in urls.items():
        if write(folder / name, url, overwrite=remote):
            written.append(name)
    return written


def dotenv(path: Path = Path(".env")) -> dict[str, str]:
    """``KEY=value`` lines of compose's ``.env`` (POSTGRES_USER and POSTGRES_DB are used)."""
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return {
        key.strip(): value[0].strip()
        for key, *value in pairs
        if value and not key.lstrip().startswith("#")
    }


def main(argv: list[str] | None = None) -> int:
    env = {**dotenv(), **os.environ}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("secrets"), help="default ./secrets")
    parser.add_argument(
        "--host",
        help="the machine that runs Redis and PostgreSQL, for workers elsewhere (default: the "
        "compose service names, which resolve only inside compose)",
    )
    parser.add_argument("--user", default=env.get("POSTGRES_USER") or "tripwire")
    parser.add_argument("--database", default=env.get("POSTGRES_DB") or "tripwire")
    args = parser.parse_args(argv)
    written = make(args.dir, host=args.host, user=args.user, database=args.database)
    kept = "; existing files kept" if len(written) < 5 else ""
    print(f"{args.dir}: wrote {', '.join(written) or 'nothing'}{kept}")
    print(f"Flower's user:password is in {args.dir / 'flower_basic_auth'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
