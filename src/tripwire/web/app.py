"""``tripwire serve``: the review web app, its JSON API, Prometheus metrics and a health check.

Every request reads the database (the source of truth); the app keeps no state of its own, so
any number of replicas can run behind a load balancer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import redis
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tripwire import __version__
from tripwire.metrics import Clock, TripwireCollector, broker_client, metrics_registry
from tripwire.settings import Settings
from tripwire.status import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    StatusSnapshot,
    UnknownRunError,
    status_snapshot,
)
from tripwire.store.db import Database, init_db
from tripwire.store.models import utcnow
from tripwire.store.source_state import reconcile_health
from tripwire.web import auth
from tripwire.web.api import api_router
from tripwire.web.apidocs import add_api_docs
from tripwire.web.intake import intake_router
from tripwire.web.pages import pages_router
from tripwire.web.reviews import reviews_router

log = logging.getLogger(__name__)


class Health(BaseModel):
    """The body of ``/healthz``: 200 when ``status`` is ``ok``, 503 otherwise. It names what
    is wrong, never an error's text (the server's log has that)."""

    status: Literal["ok", "degraded", "unavailable"]
    """``unavailable``: the database or the broker cannot be reached; ``degraded``: they can,
    but no watcher reconciled lately, or a watched folder's scan fails."""
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable", "embedded", "not checked"]
    """``embedded`` when no broker is configured; ``not checked`` for a non-Redis broker."""
    reconcile: Literal["ok", "overdue", "no watcher", "unknown"] = "unknown"
    """``overdue``: the running watchers stopped re-sending lost work; ``no watcher``: none
    runs (or all stopped on purpose); ``unknown``: the database cannot be read."""
    scan_failures: int = 0
    """Watched folders whose last scan failed."""


def create_app(settings: Settings, *, clock: Clock = utcnow) -> FastAPI:
    """The app for ``settings``; ``clock`` is "now" for the metrics (injected by tests)."""
    db = Database.for_settings(settings, create=False)
    broker = broker_client(settings.broker_url)
    registry = metrics_registry(TripwireCollector(db, broker, clock=clock))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            init_db(db.engine)
        except SQLAlchemyError as exc:  # start anyway: /healthz says what is wrong
            log.warning("cannot create the tables at %s: %s", db.engine.url, _first_line(exc))
        yield
        if broker is not None:
            broker.close()
        db.dispose()

    app = FastAPI(
        title="Tripwire",
        version=__version__,
        summary="Capability triggers for AI-safety evaluations.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: a local page instead
        redoc_url=None,
    )
    add_api_docs(app)

    auth.install(app, settings, db)
    app.include_router(api_router(db))
    app.include_router(pages_router(db))
    app.include_router(reviews_router(db))
    app.include_router(intake_router(db, settings))

    @app.get("/metrics", response_class=Response, tags=["operations"])
    def metrics() -> Response:
        """Prometheus text format; see docs/operations.md for what each metric measures."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "the database or the broker is down"}},
        tags=["operations"],
    )
    def healthz() -> JSONResponse:
        """200 when the database (and the Redis broker, if one is configured) answers."""
        database = _check_database(db)
        broker_state: Literal["ok", "unreachable", "embedded", "not checked"]
        if broker is not None:
            broker_state = _check_broker(broker)
        elif settings.broker_url:
            broker_state = "not checked"
        else:
            broker_state = "embedded"
        body = Health(status="ok", database=database, broker=broker_state)
        if database == "ok":
            try:
                with db.session() as session:
                    watch = reconcile_health(session, clock())
                body.reconcile, body.scan_failures = watch.state, watch.scan_failures
            except SQLAlchemyError as exc:
                log.warning("healthz: cannot read the watchers' state: %s", _first_line(exc))
        if database != "ok" or broker_state == "unreachable":
            body.status = "unavailable"
        elif body.reconcile == "overdue" or body.scan_failures:
            body.status = "degraded"
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)

    @app.get(
        "/api/status",
        response_model=StatusSnapshot,
        tags=["status"],
        responses={404: {"description": "``run`` names no run"}},
    )
    def api_status(
        run: Annotated[str | None, Query(description="Only this run's checkpoints.")] = None,
        limit: Annotated[
            int,
            Query(ge=1, le=MAX_LIMIT, description="Checkpoints per page, in (run, step) order."),
        ] = DEFAULT_LIMIT,
        offset: Annotated[
            int, Query(ge=0, description="Checkpoints to skip: the last page's `next_offset`.")
        ] = 0,
    ) -> StatusSnapshot:
        """One page of runs and their checkpoints (state, fired rules, deep jobs), with job
        counts and folder notes. Follow ``next_offset`` until it is null for every page."""
        try:
            with db.session() as session:
                return status_snapshot(session, run=run, limit=limit, offset=offset)
        except UnknownRunError:
            raise HTTPException(404, f"no run named {run!r}") from None
        except SQLAlchemyError as exc:
            log.warning("/api/status: database unavailable: %s", _first_line(exc))
            raise HTTPException(503, "database unavailable") from None

    return app


def _check_database(db: Database) -> Literal["ok", "unreachable"]:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("healthz: database unreachable: %s", _first_line(exc))
        return "unreachable"
    return "ok"


def _check_broker(client: redis.Redis) -> Literal["ok", "unreachable"]:
    try:
        client.ping()
    except redis.RedisError as exc:
        log.warning("healthz: broker unreachable: %s", _first_line(exc))
        return "unreachable"
    return "ok"


def _first_line(exc: BaseException) -> str:
    """Driver errors run to several lines (SQL, background link); the first says what failed."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
