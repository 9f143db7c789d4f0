"""Real local receivers for notifications: an HTTP server that can be down and come back, and
an SMTP server (aiosmtpd). Both record what arrives; the HTTP one counts each idempotency key
once, as a receiver that honours the key does."""

from __future__ import annotations

import email
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A local TCP port nothing listens on (yet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A plain ``http.server`` on a fixed local port; not listening until :meth:`start`."""

    port: int = field(default_factory=free_port)
    status: int = 200
    """What it answers (500 to play a failing receiver)."""
    answer: bytes = b"ok"
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of every request, duplicates included."""
        with self._lock:
            return [r.headers.get("Idempotency-Key", "") for r in self.requests]

    def accepted(self) -> dict[str, Request]:
        """The first request of each idempotency key: what a deduplicating receiver keeps."""
        kept: dict[str, Request] = {}
        with self._lock:
            for request in self.requests:
                kept.setdefault(request.headers.get("Idempotency-Key", ""), request)
        return kept


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on a free local port (no TLS, no login: ``tls: none``)."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()
