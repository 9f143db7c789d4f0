"""``tripwire serve``: the review web app, its JSON API, Prometheus metrics and a health check.

Every request reads the database (the source of truth); the app keeps no state of its own, so
any number of replicas can run behind a load balancer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import redis
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tripwire import __version__
from tripwire.metrics import Clock, TripwireCollector, broker_client, metrics_registry
from tripwire.settings import Settings
from tripwire.status import StatusSnapshot, status_snapshot
from tripwire.store.db import Database, init_db
from tripwire.store.models import utcnow
from tripwire.web import auth
from tripwire.web.api import api_router
from tripwire.web.pages import pages_router
from tripwire.web.reviews import reviews_router

log = logging.getLogger(__name__)


class Health(BaseModel):
    """The body of ``/healthz``: 200 when ``status`` is ``ok``, 503 otherwise."""

    status: Literal["ok", "unavailable"]
    database: str
    """``ok``, or why the database cannot be read."""
    broker: str
    """``ok``; ``embedded`` when no broker is configured; ``not checked`` for a non-Redis
    broker; or why Redis cannot be reached."""


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
            log.warning("cannot create the tables at %s: %s", db.engine.url, exc)
        yield
        if broker is not None:
            broker.close()
        db.dispose()

    app = FastAPI(
        title="Tripwire",
        version=__version__,
        summary="Capability triggers for AI-safety evaluations.",
        lifespan=lifespan,
    )

    auth.install(app, settings, db)
    app.include_router(api_router(db))
    app.include_router(pages_router(db))
    app.include_router(reviews_router(db))

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
        if broker is not None:
            broker_state = _check_broker(broker)
        elif settings.broker_url:
            broker_state = "not checked"
        else:
            broker_state = "embedded"
        healthy = database == "ok" and broker_state in ("ok", "embedded", "not checked")
        body = Health(
            status="ok" if healthy else "unavailable", database=database, broker=broker_state
        )
        return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)

    @app.get("/api/status", response_model=StatusSnapshot, tags=["status"])
    def api_status() -> StatusSnapshot:
        """Runs and their checkpoints (state, fired rules, deep jobs), and job counts."""
        try:
            with db.session() as session:
                return status_snapshot(session)
        except SQLAlchemyError as exc:
            raise HTTPException(503, f"database unavailable: {_first_line(exc)}") from None

    return app


def _check_database(db: Database) -> str:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"error: {_first_line(exc)}"
    return "ok"


def _check_broker(client: redis.Redis) -> str:
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"error: {_first_line(exc)}"
    return "ok"


def _first_line(exc: BaseException) -> str:
    """Driver errors run to several lines (SQL, background link); the first says what failed."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
