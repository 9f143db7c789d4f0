"""The review app's JSON API as the CLI calls it (``tripwire review``, ``tripwire gate``).

``TRIPWIRE_API_URL`` (default ``http://127.0.0.1:8000``) and ``TRIPWIRE_TOKEN`` say where and as
whom. Every failure becomes one ``ApiError`` line that says what to do.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tripwire.errors import TripwireError
from tripwire.settings import Settings, shown_url

DEFAULT_API_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0


class ApiError(TripwireError):
    """The review app could not be reached or refused the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ApiClient:
    """A thin client over ``httpx2`` (``transport`` is injectable for tests)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx2.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT_S, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient:
        token = settings.token.get_secret_value() if settings.token is not None else None
        return cls(settings.api_url or DEFAULT_API_URL, token or None)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, path: str, *, accept: tuple[int, ...] = ()) -> tuple[int, Any]:
        return self._send("GET", path, None, accept)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return self._send("POST", path, body, ())

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, accept: tuple[int, ...]
    ) -> tuple[int, Any]:
        """(status, JSON body) of a 2xx answer or of a status in ``accept``; else ApiError."""
        where = f"{shown_url(self.base_url)} (TRIPWIRE_API_URL)"
        try:
            response = self._client.request(method, path, json=body)
        except httpx2.TransportError as exc:
            raise ApiError(
                f"cannot reach the review app at {where}: {exc or type(exc).__name__}; "
                "start it with `tripwire serve` or set TRIPWIRE_API_URL"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            return status, data
        raise ApiError(self._explain(status, data, where), status)

    def _explain(self, status: int, data: Any, where: str) -> str:
        detail = _detail(data)
        if status == 401:
            if not self.token:
                return f"the review app at {where} needs a token (401): set TRIPWIRE_TOKEN"
            return (
                f"the review app at {where} refused the token (401): {detail or 'unknown'}; "
                "set TRIPWIRE_TOKEN to a live token from `tripwire token create`"
            )
        if status == 403:
            return f"forbidden (403): {detail}"
        if status == 404:
            return f"not found (404): {detail or 'no such page'}"
        if status in (409, 422):
            return f"refused ({status}): {detail}"
        return f"the review app answered {status}: {detail or 'no detail'}"


def _detail(data: Any) -> str:
    """FastAPI's ``detail``: a message, or validation errors as ``field: message``."""
    if not isinstance(data, dict):
        return ""
    detail = data.get("detail")
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if not isinstance(error, dict):
                continue
            loc = [str(x) for x in error.get("loc", []) if x not in ("body", "path", "query")]
            field = ".".join(loc)
            parts.append(f"{field}: {error.get('msg', '')}" if field else str(error.get("msg")))
        return "; ".join(parts)
    return str(detail) if detail is not None else ""
