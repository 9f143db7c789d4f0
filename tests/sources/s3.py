"""A real local S3 endpoint (moto's server mode) and an s3fs file system on it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bucket:
    fs: Any
    url: str
    name: str

    def upload(self, local: Path, key: str) -> None:
        self.fs.put_file(str(local), f"{self.name}/{key}")

    def upload_folder(self, local: Path, prefix: str, *, last: tuple[str, ...] = ()) -> None:
        """Every file of ``local`` under ``prefix``, file by file, the ``last`` ones last."""
        names = sorted(p.name for p in local.iterdir() if p.is_file())
        for name in [n for n in names if n not in last] + [n for n in last if n in names]:
            self.upload(local / name, f"{prefix}/{name}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(
    s3_server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Bucket:
    """A fresh bucket per test on the shared server."""
    import s3fs

    for var, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(var, value)
    fs = s3fs.S3FileSystem(
        endpoint_url=s3_server, key="testing", secret="testing", skip_instance_cache=True
    )
    readable = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]
    name = f"b-{readable.strip('-')}-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    return Bucket(fs, s3_server, name)
