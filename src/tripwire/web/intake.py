"""``POST /v1/checkpoints``: a trainer announces a checkpoint.

Checked in this order, each refusal with its status: the webhook configured (404), the body's
size (413), the signature over timestamp and body (401), the timestamp's age (401), the body's
fields (422, naming the field), the URI under a configured root (403), a replayed signature
(409). An accepted event is committed to ``intake_events`` before the 202; the watcher takes it
through the same ingest as a scanned folder (``tripwire.intake.take``).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from tripwire.intake.event import (
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    TIMESTAMP_HEADER,
    CheckpointEvent,
    verify,
)
from tripwire.intake.roots import within_roots
from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import IntakeEvent


class Accepted(BaseModel):
    """The body of a 202: the event is stored; the watcher takes the checkpoint."""

    event_id: int
    uri: str
    """The URI as stored (resolved)."""
    state: str


class FieldProblem(BaseModel):
    field: str
    message: str


class Invalid(BaseModel):
    """The body of a 422."""

    detail: str
    problems: list[FieldProblem]


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _problems(exc: ValidationError) -> list[FieldProblem]:
    allowed = ", ".join(CheckpointEvent.model_fields)
    problems = []
    for err in exc.errors():
        message = str(err["msg"])
        if err["type"] == "extra_forbidden":
            message += f" (allowed: {allowed})"
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        problems.append(FieldProblem(field=field, message=message))
    return problems


def _store(db: Database, row: IntakeEvent) -> int:
    """Commit the event (durable before the 202); 409 for a signature seen before."""
    replay = HTTPException(409, "replay: this signature was accepted before")
    with db.session() as session:
        if session.scalar(select(IntakeEvent.id).where(IntakeEvent.signature == row.signature)):
            raise replay
    try:
        with db.session() as session:  # commits when the block ends
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:  # the same signature raced in
        raise replay from None


def intake_router(db: Database, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["intake"])
    schema = CheckpointEvent.model_json_schema()

    @router.post(
        "/v1/checkpoints",
        status_code=202,
        response_model=Accepted,
        responses={
            401: {"description": "signature missing or wrong, or a stale timestamp"},
            403: {"description": "the URI is outside the configured intake roots"},
            404: {"description": "the webhook is not configured (no secret)"},
            409: {"description": "a replay: this signature was accepted before"},
            413: {"description": "the body is too large"},
            422: {"model": Invalid, "description": "the body is not a valid event"},
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
        },
    )
    async def announce(
        request: Request,
        x_tripwire_timestamp: Annotated[str | None, Header()] = None,
        x_tripwire_signature: Annotated[str | None, Header()] = None,
    ) -> Any:
        """Announce a checkpoint: HMAC-SHA256 over ``<timestamp>.<body>`` in
        ``X-Tripwire-Signature: v1=<hex>``, the Unix time in ``X-Tripwire-Timestamp``."""
        if settings.webhook_secret is None:
            raise HTTPException(404, "the webhook is off: set TRIPWIRE_WEBHOOK_SECRET")
        body = await _body(request, settings.webhook_max_bytes)
        stamp = (x_tripwire_timestamp or "").strip()
        signed = (x_tripwire_signature or "").strip()
        if not stamp.isdigit() or len(stamp) > 12 or not signed.startswith(SIGNATURE_PREFIX):
            raise HTTPException(
                401, f"sign the request: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} (v1=<hex>)"
            )
        secret = settings.webhook_secret.get_secret_value().encode()
        if not verify(secret, stamp, body, signed):
            raise HTTPException(401, "bad signature")
        sent_at = int(stamp)
        if abs(time.time() - sent_at) > settings.webhook_max_age_s:
            raise HTTPException(
                401, f"stale timestamp: more than {settings.webhook_max_age_s:g} s from now"
            )
        try:
            event = CheckpointEvent.model_validate(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, ValidationError):
                problems = _problems(exc)
            else:
                problems = [FieldProblem(field="(body)", message=f"not JSON: {exc}")]
            summary = "; ".join(f"field {p.field!r}: {p.message}" for p in problems)
            return JSONResponse(
                Invalid(detail=summary, problems=problems).model_dump(), status_code=422
            )
        uri = within_roots(event.uri, settings.intake_roots)
        if uri is None:
            raise HTTPException(
                403, "the uri is outside TRIPWIRE_INTAKE_ROOTS (or holds '..'): refused"
            )
        row = IntakeEvent(
            signature=signed.removeprefix(SIGNATURE_PREFIX),
            sent_at=sent_at,
            uri=uri,
            body=event.model_dump(mode="json", exclude_unset=True),
            state="accepted",
        )
        event_id = await run_in_threadpool(_store, db, row)
        return JSONResponse(
            Accepted(event_id=event_id, uri=uri, state="accepted").model_dump(), status_code=202
        )

    return router
