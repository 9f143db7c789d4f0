"""What the templates show that is not a field: the verdict banner and number formatting.

Templates stay free of logic; every judgement about what to say lives here, where it is tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tripwire.reports.model import CheckpointReport, DecisionRow, RunReport

BannerTone = Literal["critical", "alert", "quiet", "failed", "pending"]

MISSING = "—"


@dataclass(frozen=True)
class Banner:
    """The one-line answer at the top of a checkpoint page."""

    tone: BannerTone
    headline: str
    detail: str = ""
    fired: list[DecisionRow] = field(default_factory=list)
    review_hold_rules: list[str] = field(default_factory=list)


def banner(report: CheckpointReport) -> Banner:
    """Fired rules first, then failure, then 'nothing fired' (with any undecidable rules)."""
    fired = [d for d in report.decisions if d.verdict == "fired"]
    holds = [d.rule_id for d in fired if d.actions.review_hold]
    undecidable = [d.rule_id for d in report.decisions if d.verdict == "undecidable"]
    note = f"Undecidable: {', '.join(undecidable)}." if undecidable else ""
    if fired:
        tone: BannerTone = "critical" if any(d.severity == "critical" for d in fired) else "alert"
        names = ", ".join(f"{d.rule_id} ({d.severity})" for d in fired)
        return Banner(tone, f"FIRED: {names}", note, fired, holds)
    if report.checkpoint.state == "failed":
        reason = report.checkpoint.error or "no reason recorded"
        return Banner("failed", "FAILED: this checkpoint could not be evaluated", reason)
    first = (
        "First checkpoint of the run: there is no baseline to compare with."
        if (report.baseline is None)
        else ""
    )
    if not report.decisions and report.checkpoint.state != "decided":
        return Banner(
            "pending", "Not decided yet", f"Checkpoint state: {report.checkpoint.state}. {first}"
        )
    if not report.decisions:
        return Banner("quiet", "No rule fired: the policy recorded no decision", first)
    count = len(report.decisions) - len(undecidable)
    headline = f"No rule fired ({count} of {len(report.decisions)} rules decided)"
    return Banner("quiet", headline, " ".join(filter(None, [note, first])))


_VERDICT_ORDER = {"fired": 0, "undecidable": 1, "not_fired": 2}


def ordered_decisions(report: CheckpointReport) -> list[DecisionRow]:
    """Fired rules first, critical before alert, then undecidable, then the rest; else as logged."""
    return sorted(
        report.decisions,
        key=lambda d: (
            _VERDICT_ORDER[d.verdict],
            d.verdict == "fired" and d.severity != "critical",
        ),
    )


def run_summary(report: RunReport) -> dict[str, object]:
    """Counts shown for a run on the site index."""
    steps = [p.step for p in report.points if p.step is not None]
    return {
        "checkpoints": len(report.points),
        "latest_step": max(steps) if steps else None,
        "fired": sum(p.fired for p in report.points),
        "fired_severity": "critical"
        if any(p.fired_severity == "critical" for p in report.points if p.fired)
        else "alert",
        "deep": sum(p.deep_evaluated for p in report.points),
        "failed": sum(p.state == "failed" for p in report.points),
    }


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def points(fraction: float | None) -> str:
    """A fraction as points with one decimal: ``0.612`` -> ``61.2``."""
    return f"{fraction * 100:.1f}" if fraction is not None and _finite(fraction) else MISSING


def plus_minus(fraction: float | None) -> str:
    """A standard error (fraction) as ``± 1.4``, or nothing when there is none."""
    return f"± {fraction * 100:.1f}" if fraction is not None and _finite(fraction) else ""


def signed(value: float | None, digits: int = 1) -> str:
    """A change with its sign: ``+5.3``, ``-0.8``."""
    return f"{value:+.{digits}f}" if value is not None and _finite(value) else MISSING


def number(value: float | None, digits: int = 2) -> str:
    """A plain number, or a dash."""
    return f"{value:.{digits}f}" if value is not None and _finite(value) else MISSING


def p_value(value: float | None) -> str:
    if value is None or not _finite(value):
        return MISSING
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def alpha(value: float | None) -> str:
    """An error level: ``0.05``, ``0.00098``."""
    if value is None or not _finite(value):
        return MISSING
    return f"{value:.2g}"


def scientific(value: float | None) -> str:
    """Large counts such as FLOP: ``3.2e+22``."""
    return f"{value:.2e}" if value is not None and _finite(value) else MISSING


def count(value: int | None) -> str:
    """Token counts with thin grouping: ``1 200 000 000``."""
    return f"{value:,}".replace(",", "\u2009") if value is not None else MISSING


def timestamp(value: datetime | None) -> str:
    """UTC time to the second; naive datetimes are taken to be UTC already."""
    if value is None:
        return MISSING
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no pipes, no newlines, no raw HTML."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def quantity(value: float | None, unit: str | None, *, sign: bool = False) -> str:
    """A rule's threshold or statistic in its unit: ``1.0e26 FLOP``, ``4x compute``,
    ``182.0 days``, ``+5.30 points``; a dash when missing."""
    if value is None or not _finite(value):
        return MISSING
    if unit == "FLOP":
        return f"{value:.2e} FLOP"
    if unit == "x compute":
        return f"{value:.3g}x compute"
    if unit == "days":
        return f"{value:.1f} days"
    if unit == "rules":
        return f"{value:g} rules"
    text = f"{value:+.2f}" if sign else f"{value:.2f}"
    return f"{text} {unit}" if unit else text


LEVEL_VERDICTS = {
    "critical": "critical level reached (established)",
    "alert": "alert level reached (established)",
    "unresolved": "unresolved: the interval straddles a level",
    "below": "below the alert level",
}
"""How a deep result's level verdict reads."""
