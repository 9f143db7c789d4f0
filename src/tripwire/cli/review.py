"""``tripwire gate`` and ``tripwire review list|show|acknowledge|approve|escalate|hold|release``.

``review`` talks to the review app's JSON API (``TRIPWIRE_API_URL``, ``TRIPWIRE_TOKEN``), so
actions are authenticated, attributed and logged by the server. ``gate`` asks the API when
``TRIPWIRE_API_URL`` is set and reads the database otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from tripwire.cli.api import ApiClient, ApiError
from tripwire.cli.app import app, console, fail, services_in_one_line, settings_for
from tripwire.errors import TripwireError
from tripwire.store.models import ReviewAction

review_app = typer.Typer(
    help="Review checkpoints through the review app's API (TRIPWIRE_API_URL, TRIPWIRE_TOKEN).",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

CheckpointArg = Annotated[
    str, typer.Argument(help="Content hash (with or without sha256:) or a unique 8+ hex prefix.")
]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why (needed for this action).")]
OptionalComment = Annotated[str, typer.Option("--comment", "-m", help="An optional comment.")]
DecisionOpt = Annotated[
    int | None, typer.Option("--decision", help="The decision id the action answers.")
]


@app.command()
@services_in_one_line
def gate(checkpoint: CheckpointArg) -> None:
    """May CHECKPOINT ship? Exit 0 allowed, 1 held, 2 unknown; the reason in one line."""
    from tripwire.gate import EXIT_CODES

    settings = settings_for()
    if settings.api_url:
        answer, subject, reason = _gate_over_api(settings, checkpoint)
    else:
        answer, subject, reason = _gate_from_store(settings, checkpoint)
    console.print(f"{answer} {subject}: {reason}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(EXIT_CODES[answer])


def _gate_over_api(settings: Any, checkpoint: str) -> tuple[Any, str, str]:
    try:
        with ApiClient.from_settings(settings) as client:
            _, body = client.get(f"/api/gate/{_path(checkpoint)}", accept=(404, 409))
    except ApiError as exc:
        raise fail(exc) from None
    if not isinstance(body, dict) or body.get("answer") not in ("allowed", "held", "unknown"):
        return "unknown", checkpoint, f"the review app gave no answer: {body}"
    return body["answer"], body["checkpoint"], body["reason"]


def _gate_from_store(settings: Any, checkpoint: str) -> tuple[Any, str, str]:
    from tripwire.errors import ReviewError
    from tripwire.gate import gate as gate_for
    from tripwire.reviews import find_checkpoint
    from tripwire.store.db import Database

    db = Database.for_settings(settings, create=False)
    try:
        with db.session() as session:
            try:
                found = find_checkpoint(session, checkpoint)
            except ReviewError as exc:
                return "unknown", checkpoint, str(exc)
            answer = gate_for(session, found)
            return answer.answer, answer.checkpoint, answer.reason
    finally:
        db.dispose()


def _path(checkpoint: str) -> str:
    return quote(checkpoint.strip().removeprefix("sha256:"), safe="")


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        with ApiClient.from_settings(settings_for()) as client:
            if method == "GET":
                return client.get(path)[1]
            return client.post(path, body or {})[1]
    except TripwireError as exc:
        raise fail(exc) from None


@review_app.command("list")
def review_list() -> None:
    """Active holds and open reviews, as the queue page shows them."""
    queue = _call("GET", "/api/reviews")
    if not queue["holds"] and not queue["open"]:
        console.print("nothing held and nothing waiting for review")
        return
    table = Table("checkpoint", "run", "step", "status", "severity", "since", "rules", "why")
    for item in [*queue["holds"], *queue["open"]]:
        since = item["held_since"] if item["held"] else item["waiting_since"]
        rules = [d["rule_id"] for d in item["decisions"] if d["open"] or item["held"]]
        table.add_row(
            item["checkpoint"].removeprefix("sha256:")[:12],
            item["run"],
            str(item["step"]) if item["step"] is not None else "—",
            item["status"] + (" (escalated)" if item["escalated"] else ""),
            item["severity"] or "—",
            (since or "—")[:16].replace("T", " "),
            ", ".join(dict.fromkeys(rules)),
            item["hold_reason"] or "",
        )
    console.print(table)


@review_app.command("show")
def review_show(checkpoint: CheckpointArg) -> None:
    """A checkpoint's review state, fired decisions and review history."""
    item = _call("GET", f"/api/checkpoints/{_path(checkpoint)}/reviews")
    step = item["step"] if item["step"] is not None else "—"
    console.print(
        f"{item['checkpoint']} · {item['run']} · step {step} · {item['state']} · "
        f"review status: {item['status']}",
        highlight=False,
        soft_wrap=True,
    )
    if item["hold_reason"]:
        console.print(item["hold_reason"], highlight=False, soft_wrap=True, markup=False)
    if item["decisions"]:
        fired = Table("decision", "rule", "severity", "policy", "open", "why", title="fired rules")
        for d in item["decisions"]:
            fired.add_row(
                str(d["id"]),
                d["rule_id"],
                d["severity"],
                d["policy_name"],
                "yes" if d["open"] else "no",
                d["explanation"],
            )
        console.print(fired)
    if not item["reviews"]:
        console.print("no review actions yet")
        return
    history = Table("when", "action", "by", "role", "decision", "comment", title="reviews")
    for r in item["reviews"]:
        history.add_row(
            r["created_at"][:19].replace("T", " "),
            r["action"],
            r["actor"],
            r["role"],
            str(r["decision_id"] or ""),
            r["comment"],
        )
    console.print(history)


def _act(action: ReviewAction, checkpoint: str, comment: str, decision: int | None) -> None:
    body: dict[str, Any] = {"action": str(action), "comment": comment}
    if decision is not None:
        body["decision_id"] = decision
    result = _call("POST", f"/api/checkpoints/{_path(checkpoint)}/reviews", body)
    review = result["review"]
    console.print(
        f"{action}: {review['checkpoint']} by {review['actor']} ({review['role']}); "
        f"review {review['id']}, status now {result['status']}",
        highlight=False,
        soft_wrap=True,
    )


@review_app.command("acknowledge")
def review_acknowledge(
    checkpoint: CheckpointArg, comment: OptionalComment = "", decision: DecisionOpt = None
) -> None:
    """Seen it: closes the open review (the checkpoint stays as it is)."""
    _act(ReviewAction.acknowledge, checkpoint, comment, decision)


@review_app.command("approve")
def review_approve(
    checkpoint: CheckpointArg, comment: OptionalComment = "", decision: DecisionOpt = None
) -> None:
    """Approve: closes the open review and releases a held checkpoint."""
    _act(ReviewAction.approve, checkpoint, comment, decision)


@review_app.command("escalate")
def review_escalate(
    checkpoint: CheckpointArg, comment: CommentOpt = "", decision: DecisionOpt = None
) -> None:
    """Escalate (needs --comment); the review stays open."""
    _act(ReviewAction.escalate, checkpoint, comment, decision)


@review_app.command("hold")
def review_hold(
    checkpoint: CheckpointArg, comment: CommentOpt = "", decision: DecisionOpt = None
) -> None:
    """Hold (needs --comment): never a baseline, and the gate answers held."""
    _act(ReviewAction.hold, checkpoint, comment, decision)


@review_app.command("release")
def review_release(
    checkpoint: CheckpointArg, comment: OptionalComment = "", decision: DecisionOpt = None
) -> None:
    """Release a held checkpoint."""
    _act(ReviewAction.release, checkpoint, comment, decision)
