"""Who is asking, and may they: bearer tokens with roles, browser sessions, CSRF.

INTERFACE (stable):

- ``Principal``: the caller's token name and role.
- ``require(role)``: a FastAPI dependency that returns the ``Principal`` when the request
  carries a valid token (``Authorization: Bearer ...``) or a signed-in session of at least
  ``role`` (viewer < reviewer < admin); else 401 (no or bad credentials; pages redirect to
  ``/login``) or 403 (a role too low).
- ``csrf_token(request)``: the token a form of this session must post back as ``csrf_token``;
  ``check_csrf(request, token)`` raises 403 when it does not match.

A browser signs in at ``/login`` with a token; the session is a signed cookie (Starlette's
``SessionMiddleware``: HttpOnly, SameSite=Strict, ``Secure`` with ``TRIPWIRE_HTTPS_ONLY``) that
keeps the token's id and hash, never the token, so revoking a token ends its sessions at their
next request. Requests with a bearer token carry no cookie and need no CSRF token: a page of
another site cannot make a browser send an ``Authorization`` header.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from tripwire import tokens
from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import Role, utcnow
from tripwire.web.templating import render

log = logging.getLogger(__name__)

RANK = {Role.viewer: 0, Role.reviewer: 1, Role.admin: 2}
SESSION_COOKIE = "tripwire_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
"""JSON API calls made with a session cookie (not a bearer token) carry the CSRF token here."""
SECRET_FILE = "secret_key"
API_PREFIX = "/api/"
_UNSET = object()

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from `tripwire token create` (`twk_...`).",
)


class Principal(BaseModel):
    name: str
    """The token's name: review actions are attributed to it."""
    role: Role


class LoginRequired(HTTPException):
    """No credentials: 401 for the API, a redirect to ``/login`` for pages."""

    def __init__(self) -> None:
        super().__init__(
            401,
            "sign in first: send `Authorization: Bearer <token>` (tokens come from "
            "`tripwire token create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _bad_token(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def current_principal(request: Request) -> Principal | None:
    """The caller, from a bearer token or a signed-in session; None when neither is there.

    Raises 401 for a malformed, unknown or revoked bearer token (a client that sends one wants
    to know). A session whose token was revoked is signed out.
    """
    cached = getattr(request.state, "principal", _UNSET)
    if cached is not _UNSET:
        assert cached is None or isinstance(cached, Principal)
        return cached
    principal = _bearer(request) if "authorization" in request.headers else _session(request)
    request.state.principal = principal
    return principal


def _bearer(request: Request) -> Principal:
    scheme, _, credentials = request.headers["authorization"].strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise _bad_token("the Authorization header must be `Bearer <token>`")
    db: Database = request.app.state.db
    with db.session() as session:
        row = tokens.authenticate(session, credentials, utcnow())
        if row is None:
            raise _bad_token("unknown or revoked token")
        principal = Principal(name=row.name, role=row.role)
    request.state.auth_via = "bearer"
    return principal


def _session(request: Request) -> Principal | None:
    token_id, hashed = request.session.get("token_id"), request.session.get("token_hash")
    if not isinstance(token_id, int) or not isinstance(hashed, str):
        return None
    db: Database = request.app.state.db
    with db.session() as session:
        row = tokens.by_id(session, token_id, hashed, utcnow())
        principal = Principal(name=row.name, role=row.role) if row is not None else None
    if principal is None:
        request.session.clear()
        return None
    request.state.auth_via = "session"
    return principal


def via_bearer(request: Request) -> bool:
    return bool(getattr(request.state, "auth_via", None) == "bearer")


class _Require:
    """The dependency ``require`` returns; ``role`` is kept so tests can check every mutating
    route asks for a reviewer."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
    ) -> Principal:
        principal = current_principal(request)
        if principal is None:
            raise LoginRequired()
        if RANK[principal.role] < RANK[self.role]:
            allowed = " or ".join(str(r) for r in Role if RANK[r] >= RANK[self.role])
            raise HTTPException(
                403, f"this needs a {allowed} token; {principal.name!r} is a {principal.role}"
            )
        return principal


def require(role: Role) -> Callable[[Request], Principal]:
    """A dependency admitting callers of at least ``role``."""
    return _Require(role)


def required_role(dependency: Any) -> Role | None:
    """The role a ``require`` dependency asks for (None for any other callable)."""
    return dependency.role if isinstance(dependency, _Require) else None


def csrf_token(request: Request) -> str:
    """The CSRF token forms of this session post back (created on first use; empty for bearer
    requests, which need none)."""
    if via_bearer(request):
        return ""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, token: str | None) -> None:
    """Refuse (403) a form whose CSRF token does not match the session's."""
    if via_bearer(request):
        return
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not expected or not token:
        raise HTTPException(
            403, "the form's CSRF token is missing: reload the page and submit it again"
        )
    if not hmac.compare_digest(expected.encode(), token.encode()):
        raise HTTPException(403, "the form's CSRF token is wrong: reload the page and submit again")


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 32 for ch in target)
    ):
        return default
    return target


def session_secret(settings: Settings) -> str:
    """``TRIPWIRE_SECRET_KEY``, else a random key generated once in ``<home>/secret_key``
    (created 0600, atomically, so replicas sharing the folder agree on it)."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = settings.home / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(
            f"{path} holds no usable key: delete it and restart, or set TRIPWIRE_SECRET_KEY"
        )
    return secret


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
            os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX) and request.url.path not in (
        "/metrics",
        "/healthz",
        "/openapi.json",
    )


async def _on_login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if _wants_html(request) and "authorization" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    return JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Pages get an HTML error page; the API and everything else FastAPI's JSON."""
    assert isinstance(exc, StarletteHTTPException)
    accepts_html = "text/html" in request.headers.get("accept", "")
    if not (_wants_html(request) and accepts_html) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    principal = getattr(request.state, "principal", None)
    body = render(
        "error.html.j2",
        status=exc.status_code,
        message=str(exc.detail),
        principal=principal,
    )
    return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_database_error(request: Request, exc: Exception) -> Response:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    log.warning("database error on %s %s: %s", request.method, request.url.path, first)
    return JSONResponse({"detail": "database unavailable; try again later"}, status_code=503)


def install(app: FastAPI, settings: Settings, db: Database) -> None:
    """Sessions, the sign-in pages and the error handlers of the web app."""
    app.state.db = db
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="strict",
        https_only=settings.https_only,
    )
    app.add_exception_handler(LoginRequired, _on_login_required)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(SQLAlchemyError, _on_database_error)
    app.include_router(login_router())


def login_router() -> APIRouter:
    router = APIRouter(tags=["sign-in"])

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        """The sign-in form (a token pasted once per browser session)."""
        return _login_form(request, safe_next(next))

    @router.post(
        "/login",
        response_class=HTMLResponse,
        responses={303: {"description": "signed in: back to `next`"}},
    )
    def login(
        request: Request,
        token: Annotated[str, Form(max_length=200)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        """Check the token and start a session (a new one: a session id known before sign-in
        is never reused)."""
        check_csrf(request, csrf_token)
        db: Database = request.app.state.db
        with db.session() as session:
            row = tokens.authenticate(session, token.strip(), utcnow())
            found = (row.id, row.token_hash) if row is not None else None
        if found is None:
            return _login_form(request, safe_next(next), "unknown or revoked token", status=401)
        request.session.clear()
        request.session.update(
            {"token_id": found[0], "token_hash": found[1], "csrf": secrets.token_urlsafe(32)}
        )
        return RedirectResponse(safe_next(next), status_code=303)

    @router.post("/logout", responses={303: {"description": "signed out: to /login"}})
    def logout(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        """End the browser session."""
        if request.session.get("token_id") is not None:
            check_csrf(request, csrf_token)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    return router


def _login_form(
    request: Request, next_url: str, error: str = "", status: int = 200
) -> HTMLResponse:
    return HTMLResponse(
        render("login.html.j2", csrf_token=csrf_token(request), next=next_url, error=error),
        status_code=status,
    )


def exposure_warning(host: str, https_only: bool) -> str | None:
    """One line for ``tripwire serve`` bound beyond loopback with no TLS in front (tokens and
    session cookies would cross the network in clear); None otherwise."""
    if https_only or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"serving on {host} without TLS: tokens and session cookies cross the network in clear; "
        "put a TLS proxy in front and set TRIPWIRE_HTTPS_ONLY=1 (or bind 127.0.0.1)"
    )
