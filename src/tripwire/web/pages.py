"""The server's HTML pages: overview, runs, checkpoints, items, compare, audit.

Pages render stored records through the report models (``tripwire.reports``): the same pages as
the static export (``tripwire report``), with server links.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import select

from tripwire.reports import views
from tripwire.reports.build import checkpoint_report
from tripwire.reports.items import baseline_items, compare_checkpoints
from tripwire.reports.links import WebLinks
from tripwire.reports.overview import audit_page, overview
from tripwire.reports.render import run_charts
from tripwire.reports.trajectory import run_report
from tripwire.reviews import review_state
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Role
from tripwire.web.auth import Principal, csrf_token, require
from tripwire.web.lookup import find_checkpoint, find_run
from tripwire.web.reviews import review_context
from tripwire.web.templating import nav, render

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
LINKS = WebLinks()


def _page(
    request: Request, principal: Principal, here: str, template: str, **ctx: object
) -> HTMLResponse:
    return HTMLResponse(
        render(template, nav=nav(here, principal, csrf_token(request)), links=LINKS, **ctx)
    )


def pages_router(db: Database) -> APIRouter:
    router = APIRouter(tags=["pages"], default_response_class=HTMLResponse, include_in_schema=False)

    @router.get("/")
    def home(request: Request, principal: Viewer) -> HTMLResponse:
        """Runs, latest checkpoints, open reviews and holds."""
        with db.session() as session:
            o = overview(session)
        return _page(request, principal, "/", "overview.html.j2", o=o)

    @router.get("/runs/{run}")
    def run_page(run: str, request: Request, principal: Viewer) -> HTMLResponse:
        with db.session() as session:
            report = run_report(session, find_run(session, run).id)
        return _page(request, principal, "", "run.html.j2", r=report, **run_charts(report))

    @router.get("/checkpoints/{ident}.json")
    def checkpoint_json(ident: str, principal: Viewer) -> Response:
        with db.session() as session:
            report = checkpoint_report(session, find_checkpoint(session, ident).id)
        return Response(report.model_dump_json(indent=2), media_type="application/json")

    @router.get("/checkpoints/{ident}.md")
    def checkpoint_markdown(ident: str, principal: Viewer) -> PlainTextResponse:
        with db.session() as session:
            report = checkpoint_report(session, find_checkpoint(session, ident).id)
        text = render(
            "checkpoint.md.j2",
            r=report,
            banner=views.banner(report),
            decisions=views.ordered_decisions(report),
            links=LINKS,
        )
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @router.get("/checkpoints/{ident}")
    def checkpoint_page(ident: str, request: Request, principal: Viewer) -> HTMLResponse:
        with db.session() as session:
            checkpoint = find_checkpoint(session, ident)
            report = checkpoint_report(session, checkpoint.id)
            here = f"/checkpoints/{checkpoint.content_hash.removeprefix('sha256:')}"
            context = review_context(
                request, principal, review_state(session, checkpoint), f"{here}#reviews"
            )
        return _page(
            request,
            principal,
            "",
            "checkpoint.html.j2",
            r=report,
            banner=views.banner(report),
            decisions=views.ordered_decisions(report),
            actions_form=context["actions_form"],
            flashes=context["flashes"],
        )

    @router.get("/checkpoints/{ident}/items")
    def items_page(ident: str, request: Request, principal: Viewer) -> HTMLResponse:
        with db.session() as session:
            checkpoint = find_checkpoint(session, ident)
            report = baseline_items(session, checkpoint.id)
        if report is None:
            raise HTTPException(404, "this checkpoint has no baseline to compare its items with")
        return _page(request, principal, "", "items.html.j2", r=report)

    @router.get("/compare")
    def compare_page(
        request: Request,
        principal: Viewer,
        a: Annotated[str | None, Query(description="The checkpoint (hash or prefix).")] = None,
        b: Annotated[str | None, Query(description="The reference checkpoint.")] = None,
    ) -> HTMLResponse:
        with db.session() as session:
            choices = list(
                session.scalars(select(Checkpoint).order_by(Checkpoint.run_id, Checkpoint.step))
            )
            options = [
                (c.content_hash.removeprefix("sha256:"), c.run.name, c.step) for c in choices
            ]
            report = None
            if a and b:
                try:
                    report = compare_checkpoints(
                        session, find_checkpoint(session, a), find_checkpoint(session, b)
                    )
                except LookupError as exc:
                    raise HTTPException(404, str(exc)) from None
        return _page(
            request, principal, "/compare", "compare.html.j2", r=report, options=options, a=a, b=b
        )

    @router.get("/audit")
    def audit(
        request: Request, principal: Viewer, page: Annotated[int, Query(ge=1)] = 1
    ) -> HTMLResponse:
        with db.session() as session:
            a = audit_page(session, page)
        return _page(request, principal, "/audit", "audit.html.j2", a=a)

    return router
