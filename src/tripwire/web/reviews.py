"""Review routes: the queue page and its form action, the review JSON API and the deployment gate.

Pages post plain forms (no JavaScript) carrying the session's CSRF token and redirect back with a
message. The API takes a bearer token (no CSRF token needed) or a session cookie with the CSRF
token in ``X-CSRF-Token``. The logic is in ``tripwire.reviews``; this module is HTTP only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session

from tripwire.errors import InvalidReview, ReviewError
from tripwire.gate import gate
from tripwire.reviews import (
    COMMENT_REQUIRED,
    CheckpointReview,
    find_checkpoint,
    review_queue,
    review_state,
    short_hash,
)
from tripwire.reviews import act as record_action
from tripwire.store.db import Database
from tripwire.store.models import ReviewAction, Role, utcnow
from tripwire.web.auth import (
    CSRF_HEADER,
    RANK,
    Principal,
    check_csrf,
    csrf_token,
    require,
    safe_next,
)
from tripwire.web.flash import flash as add_flash
from tripwire.web.flash import pop_flashes
from tripwire.web.review_models import (
    MAX_ID,
    CheckpointReviewOut,
    GateOut,
    Problem,
    ReviewIn,
    ReviewOut,
    ReviewQueueOut,
    ReviewResult,
)
from tripwire.web.templating import nav, render

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Reviewer = Annotated[Principal, Depends(require(Role.reviewer))]
CheckpointId = Annotated[
    str,
    Path(
        description="The content hash without `sha256:`, or a unique prefix of at least 8 hex "
        "characters.",
        max_length=100,
    ),
]
ACTION_BUTTONS = (
    (ReviewAction.acknowledge, "Acknowledge", ""),
    (ReviewAction.approve, "Approve", "primary"),
    (ReviewAction.escalate, "Escalate", ""),
    (ReviewAction.hold, "Hold", "danger"),
    (ReviewAction.release, "Release", ""),
)
PAST_TENSE = {
    ReviewAction.acknowledge: "Acknowledged",
    ReviewAction.approve: "Approved",
    ReviewAction.escalate: "Escalated",
    ReviewAction.hold: "Held",
    ReviewAction.release: "Released",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {
        "model": Problem,
        "description": "the token's role is too low, or the CSRF token is wrong",
    },
}
_LOOKUP_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no checkpoint matches"},
    409: {"model": Problem, "description": "the prefix matches several checkpoints"},
}


@dataclass(frozen=True, slots=True)
class ActionButton:
    value: str
    label: str
    css: str
    needs_comment: bool


@dataclass(frozen=True, slots=True)
class DecisionOption:
    id: int
    label: str


@dataclass(frozen=True, slots=True)
class ActionsForm:
    """What ``_review_actions.html.j2`` needs to draw the form of one checkpoint."""

    action_url: str
    csrf_token: str
    next: str
    """Where the browser returns after the action (a local path)."""
    decisions: list[DecisionOption] = field(default_factory=list)
    """Fired decisions the action may name; none named answers them all."""
    actions: list[ActionButton] = field(default_factory=list)


def actions_form(
    request: Request, principal: Principal | None, state: CheckpointReview, next_url: str
) -> ActionsForm | None:
    """The form of review actions for ``state``'s checkpoint, or None when ``principal`` may
    not review."""
    if principal is None or RANK[principal.role] < RANK[Role.reviewer]:
        return None
    options = [
        DecisionOption(d.id, f"{d.rule_id} ({d.severity}, decision {d.id})") for d in state.fired
    ]
    buttons = [
        ActionButton(str(action), label, css, action in COMMENT_REQUIRED)
        for action, label, css in ACTION_BUTTONS
        if action != ReviewAction.release or state.held
    ]
    return ActionsForm(
        action_url=f"/checkpoints/{short_hash(state.checkpoint.content_hash)}/reviews",
        csrf_token=csrf_token(request),
        next=safe_next(next_url, "/reviews"),
        decisions=options,
        actions=buttons,
    )


def review_context(
    request: Request, principal: Principal | None, state: CheckpointReview, next_url: str
) -> dict[str, Any]:
    """The context of ``{% include "_review_history.html.j2" %}`` for a checkpoint page:
    ``reviews``, ``actions_form``, ``review_state`` and the waiting ``flashes``."""
    return {
        "reviews": state.reviews,
        "actions_form": actions_form(request, principal, state, next_url),
        "review_state": state,
        "flashes": pop_flashes(request),
    }


def _lookup(session: Session, identifier: str) -> Any:
    try:
        return find_checkpoint(session, identifier)
    except ReviewError as exc:
        raise HTTPException(exc.status, str(exc)) from None


def _problem(exc: ReviewError) -> HTTPException:
    if exc.status == 422 and exc.field:
        detail: Any = [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
    else:
        detail = str(exc)
    return HTTPException(exc.status, detail)


def reviews_router(db: Database) -> APIRouter:
    router = APIRouter()

    @router.get("/api/reviews", response_model=ReviewQueueOut, tags=["reviews"], responses=_ERRORS)
    def api_queue(principal: Viewer) -> ReviewQueueOut:
        """Active holds and open reviews (fired decisions nobody has acknowledged or approved)."""
        with db.session() as session:
            queue = review_queue(session)
            return ReviewQueueOut(
                holds=[CheckpointReviewOut.of(s) for s in queue.holds],
                open=[CheckpointReviewOut.of(s) for s in queue.open],
            )

    @router.get(
        "/api/checkpoints/{checkpoint}/reviews",
        response_model=CheckpointReviewOut,
        tags=["reviews"],
        responses=_ERRORS | _LOOKUP_ERRORS,
    )
    def api_history(checkpoint: CheckpointId, principal: Viewer) -> CheckpointReviewOut:
        """A checkpoint's review state, its fired decisions and every review action on it."""
        with db.session() as session:
            return CheckpointReviewOut.of(review_state(session, _lookup(session, checkpoint)))

    @router.post(
        "/api/checkpoints/{checkpoint}/reviews",
        response_model=ReviewResult,
        status_code=201,
        tags=["reviews"],
        responses=_ERRORS
        | _LOOKUP_ERRORS
        | {409: {"model": Problem, "description": "ambiguous prefix, or nothing to release"}},
    )
    def api_act(
        checkpoint: CheckpointId, body: ReviewIn, request: Request, principal: Reviewer
    ) -> ReviewResult:
        """Acknowledge, approve, escalate, hold or release a checkpoint (a reviewer or admin
        token). Escalate and hold need a comment. The action enters the hash-chained log."""
        check_csrf(request, request.headers.get(CSRF_HEADER))
        with db.session() as session:
            cp = _lookup(session, checkpoint)
            try:
                review = record_action(
                    session,
                    cp,
                    action=body.action,
                    actor=principal.name,
                    role=principal.role,
                    comment=body.comment,
                    decision_id=body.decision_id,
                    now=utcnow(),
                )
            except ReviewError as exc:
                raise _problem(exc) from None
            state = review_state(session, cp)
            return ReviewResult(
                review=ReviewOut.of(review, cp.content_hash), status=state.status, held=state.held
            )

    @router.get(
        "/api/gate/{checkpoint}",
        response_model=GateOut,
        tags=["gate"],
        responses=_ERRORS
        | {
            404: {"model": GateOut, "description": "answer `unknown`: no checkpoint matches"},
            409: {"model": GateOut, "description": "answer `unknown`: the prefix is ambiguous"},
        },
    )
    def api_gate(checkpoint: CheckpointId, principal: Viewer) -> Any:
        """May this checkpoint ship? ``allowed`` (decided, not held), ``held`` or ``unknown``."""
        with db.session() as session:
            try:
                cp = find_checkpoint(session, checkpoint)
            except ReviewError as exc:
                body = GateOut(checkpoint=checkpoint[:100], answer="unknown", reason=str(exc))
                return JSONResponse(body.model_dump(mode="json"), status_code=exc.status)
            return GateOut.of(gate(session, cp))

    @router.get("/reviews", response_class=HTMLResponse, tags=["pages"])
    def queue_page(request: Request, principal: Viewer) -> HTMLResponse:
        """The review queue: active holds and open reviews, each with its action form."""
        with db.session() as session:
            queue = review_queue(session)
            now = utcnow()
            items = [_item(request, principal, s, now) for s in [*queue.holds, *queue.open]]
            body = render(
                "reviews.html.j2",
                nav=nav("/reviews", principal, csrf_token(request)),
                holds=items[: len(queue.holds)],
                open_reviews=items[len(queue.holds) :],
                flashes=pop_flashes(request),
                can_review=RANK[principal.role] >= RANK[Role.reviewer],
                principal=principal,
            )
        return HTMLResponse(body)

    @router.post(
        "/checkpoints/{checkpoint}/reviews",
        response_class=RedirectResponse,
        status_code=303,
        tags=["pages"],
        responses=_ERRORS | {404: {"model": Problem, "description": "no checkpoint matches"}},
    )
    def form_act(
        checkpoint: CheckpointId,
        request: Request,
        principal: Reviewer,
        action: Annotated[str, Form(max_length=32)] = "",
        comment: Annotated[str, Form(max_length=20_000)] = "",
        decision_id: Annotated[str, Form(max_length=12)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/reviews",
    ) -> RedirectResponse:
        """The queue's and the checkpoint page's form: record the action, then go back to
        ``next`` with a message (an error message names the field at fault)."""
        check_csrf(request, csrf_token)
        back = RedirectResponse(safe_next(next, "/reviews"), status_code=303)
        try:
            with db.session() as session:
                cp = _lookup(session, checkpoint)
                review = record_action(
                    session,
                    cp,
                    action=_form_action(action),
                    actor=principal.name,
                    role=principal.role,
                    comment=comment,
                    decision_id=_form_decision(decision_id),
                    now=utcnow(),
                )
                done = (
                    f"{PAST_TENSE[review.action]} checkpoint {short_hash(cp.content_hash)[:12]} "
                    f"(step {cp.step}) as {principal.name}."
                )
        except ReviewError as exc:
            where = f"{exc.field}: " if exc.field else ""
            add_flash(request, f"Not recorded: {where}{exc}", "error")
            return back
        add_flash(request, done)
        return back

    return router


def _form_action(value: str) -> ReviewAction:
    try:
        return ReviewAction(value)
    except ValueError:
        allowed = ", ".join(a.value for a in ReviewAction)
        raise InvalidReview(f"choose one of {allowed}", field="action") from None


def _form_decision(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise InvalidReview(f"{value!r} is not a decision id", field="decision_id")
    return int(value)


@dataclass(frozen=True, slots=True)
class QueueItem:
    state: CheckpointReview
    url_id: str
    age: str
    actions_form: ActionsForm | None


def _item(
    request: Request, principal: Principal, state: CheckpointReview, now: datetime
) -> QueueItem:
    since = state.held_since if state.held else state.waiting_since
    return QueueItem(
        state=state,
        url_id=short_hash(state.checkpoint.content_hash),
        age=age(since, now),
        actions_form=actions_form(request, principal, state, "/reviews"),
    )


def age(since: datetime | None, now: datetime) -> str:
    """``3 min``, ``5 h``, ``2 d``: how long something has waited."""
    if since is None:
        return "—"
    seconds = max(0.0, (now - since).total_seconds())
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
