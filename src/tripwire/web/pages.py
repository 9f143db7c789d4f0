"""The server's HTML pages: overview, runs, checkpoints, items, compare, audit.

Pages render stored records through the report models (``tripwire.reports``): the same pages as
the static export, with server links and the review actions added.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tripwire.store.db import Database
from tripwire.store.models import Role
from tripwire.web.auth import Principal, csrf_token, require
from tripwire.web.templating import nav, render

Viewer = Annotated[Principal, Depends(require(Role.viewer))]


def pages_router(db: Database) -> APIRouter:
    router = APIRouter(tags=["pages"], default_response_class=HTMLResponse)

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request, principal: Viewer) -> HTMLResponse:
        """Runs, latest checkpoints, open reviews and holds."""
        return HTMLResponse(
            render(
                "overview.html.j2",
                nav=nav("/", principal, csrf_token(request)),
            )
        )

    return router
