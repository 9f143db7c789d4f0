"""The JSON API behind the pages: every page's data as the report models (OpenAPI at /docs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from tripwire.reports.build import checkpoint_report
from tripwire.reports.items import ItemsReport, baseline_items, compare_checkpoints
from tripwire.reports.model import CheckpointReport, RunReport
from tripwire.reports.overview import AuditPage, Overview, audit_page, overview
from tripwire.reports.trajectory import run_report
from tripwire.store.db import Database
from tripwire.store.models import Role, Run
from tripwire.web.auth import Principal, require
from tripwire.web.lookup import find_checkpoint, find_run

Viewer = Annotated[Principal, Depends(require(Role.viewer))]


class RunSummary(BaseModel):
    name: str
    checkpoints: int


def api_router(db: Database) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["records"])

    @router.get("/overview", response_model=Overview)
    def get_overview(principal: Viewer) -> Overview:
        """Runs, the latest checkpoints, open reviews and active holds."""
        with db.session() as session:
            return overview(session)

    @router.get("/runs", response_model=list[RunSummary])
    def list_runs(principal: Viewer) -> list[RunSummary]:
        with db.session() as session:
            return [
                RunSummary(name=r.name, checkpoints=len(r.checkpoints))
                for r in session.scalars(select(Run).order_by(Run.name))
            ]

    @router.get("/runs/{run}", response_model=RunReport)
    def get_run(run: str, principal: Viewer) -> RunReport:
        """The run's trajectory: scores, intervals, baselines, bands, fires, holds."""
        with db.session() as session:
            return run_report(session, find_run(session, run).id)

    @router.get("/checkpoints/{ident}", response_model=CheckpointReport)
    def get_checkpoint(ident: str, principal: Viewer) -> CheckpointReport:
        """The checkpoint's stored decision records, scores, deep results and jobs."""
        with db.session() as session:
            return checkpoint_report(session, find_checkpoint(session, ident).id)

    @router.get(
        "/checkpoints/{ident}/items",
        response_model=ItemsReport,
        responses={404: {"description": "no such checkpoint, or it has no baseline"}},
    )
    def get_items(ident: str, principal: Viewer) -> ItemsReport:
        """The items that changed between the checkpoint and its baseline."""
        with db.session() as session:
            report = baseline_items(session, find_checkpoint(session, ident).id)
        if report is None:
            raise HTTPException(404, "this checkpoint has no baseline to compare its items with")
        return report

    @router.get("/compare", response_model=ItemsReport)
    def get_compare(
        principal: Viewer,
        a: Annotated[str, Query(description="The checkpoint (hash or prefix).")],
        b: Annotated[str, Query(description="The reference checkpoint (hash or prefix).")],
    ) -> ItemsReport:
        """Any two checkpoints, paired item by item on the benchmarks they share."""
        with db.session() as session:
            try:
                return compare_checkpoints(
                    session, find_checkpoint(session, a), find_checkpoint(session, b)
                )
            except LookupError as exc:
                raise HTTPException(404, str(exc)) from None

    @router.get("/audit", response_model=AuditPage)
    def get_audit(principal: Viewer, page: Annotated[int, Query(ge=1)] = 1) -> AuditPage:
        """The log (decisions, reviews, evaluations), newest first, and its chain status."""
        with db.session() as session:
            return audit_page(session, page)

    return router
