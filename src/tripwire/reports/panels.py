"""A run's capability trajectory as small multiples: one self-contained SVG panel per benchmark.

Each panel plots the benchmark's proxy score (points) against one x axis (training step, tokens
seen, or cumulative training compute) with a 95% interval band (score ± 1.96 standard errors),
the score of the baseline each checkpoint was compared with, the threshold band of each delta
rule above that baseline, the alert and critical lines of each level rule, and a row of markers:
fires by severity, the run's first (baseline) evaluation, holds, and where an effective-compute
rule would have called for a deep evaluation. Hover titles give the numbers; nothing needs
JavaScript. The axis is chosen with CSS-only tabs in the page (``run.html.j2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from markupsafe import Markup, escape

from tripwire.reports.model import RuleBand, RunReport, TrajectoryPoint

Axis = Literal["step", "tokens", "compute", "order"]
AXES: dict[Axis, str] = {
    "step": "training step",
    "tokens": "tokens seen",
    "compute": "training compute (FLOP)",
    "order": "checkpoint order (training step unknown for some checkpoints)",
}
SEVERITY = {"critical": "#b42318", "alert": "#c4640a"}
SCORE, BAND, BASE = "#2f6db5", "#2f6db5", "#55677a"
MUTED, GRID, INK = "#6b7280", "#e5e7eb", "#1f2937"
WIDTH, HEIGHT = 640, 268
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 62, 44
MARK_Y = (30, 46)
"""Rows of markers above the plot: fires and holds; deep evaluations and the compute rule."""


def x_value(point: TrajectoryPoint, axis: Axis, position: int = 0) -> float | None:
    if axis == "order":
        return float(position + 1)
    if axis == "step":
        return float(point.step) if point.step is not None else None
    if axis == "tokens":
        return float(point.tokens_seen) if point.tokens_seen is not None else None
    flop = point.training_flop
    return float(flop) if flop is not None else None


def available(report: RunReport, axis: Axis) -> bool:
    """An axis is drawn when every checkpoint with scores has a value on it; the checkpoints'
    order only when their steps are not all known."""
    if axis == "order":
        return bool(report.points) and not available(report, "step")
    scored = [p for p in report.points if p.scores]
    return bool(scored) and all(x_value(p, axis) is not None for p in scored)


def _f(v: float) -> str:
    return f"{v:.1f}"


def fmt_number(v: float) -> str:
    """``1.2e23`` -> ``1.2e23``; ``4500000`` -> ``4.5M``; ``300`` -> ``300``."""
    if v != 0 and (abs(v) >= 1e12 or abs(v) < 1e-3):
        mantissa, exponent = f"{v:.2g}".split("e") if "e" in f"{v:.2g}" else (f"{v:.2g}", "0")
        return f"{mantissa}e{int(exponent)}"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.3g}{suffix}"
    return f"{v:g}"


class _Scale:
    def __init__(self, xs: list[float], log: bool) -> None:
        self.log = log
        vs = [math.log10(x) for x in xs] if log else xs
        lo, hi = min(vs), max(vs)
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        pad = (hi - lo) * 0.04
        self.lo, self.hi = lo - pad, hi + pad
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = HEIGHT - TOP - BOTTOM

    def x(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return LEFT + (t - self.lo) / (self.hi - self.lo) * self.plot_w

    def y(self, points: float) -> float:
        return TOP + (1 - min(100.0, max(0.0, points)) / 100) * self.plot_h

    def ticks(self) -> list[float]:
        if self.log:
            first, last = math.ceil(self.lo), math.floor(self.hi)
            return [10.0**e for e in range(first, last + 1)] or [10 ** ((self.lo + self.hi) / 2)]
        span = self.hi - self.lo
        raw = span / 5
        magnitude = 10.0 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
        v = math.ceil(self.lo / step) * step
        out = []
        while v <= self.hi:
            out.append(v)
            v += step
        return out


def _band_top(band: RuleBand, base: float) -> float | None:
    """The score (fraction) the delta rule's threshold sits at above a baseline score."""
    if band.threshold is None:
        return None
    t = band.threshold / 100
    if band.scale == "relative":
        return base * (1 + t)
    if band.scale == "error_rate_reduction":
        return base + (1 - base) * t
    return base + t


def panel(report: RunReport, task: str, axis: Axis) -> Markup:
    """One benchmark's panel on ``axis``; empty when the axis is unknown for the run."""
    pts = [(p, x_value(p, axis, i)) for i, p in enumerate(report.points)]
    drawn = [(p, x) for p, x in pts if x is not None]
    if not drawn:
        return Markup("")
    f = _Scale([x for _, x in drawn], log=False)
    parts: list[str] = [_axes(f, axis)]
    bands = [b for b in report.bands if b.task == task]
    parts += [_level_lines(b, f) for b in bands if b.kind == "level"]
    parts += [_delta_band(b, drawn, f) for b in bands if b.kind == "delta"]
    parts.append(_baseline_steps(task, drawn, f))
    parts.append(_interval_band(task, drawn, f))
    parts.append(_score_line(task, drawn, f, report.compute_rule))
    parts.append(_markers(drawn, f, report.compute_rule))
    title = escape(task)
    return Markup(
        f'<svg class="panel" data-task="{title}" data-axis="{axis}" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="{WIDTH}" role="img" aria-label="{title}: proxy score against '
        f'{AXES[axis]}" font-family="system-ui, sans-serif" font-size="11">'
        f'<text x="{LEFT}" y="14" fill="{INK}" font-size="12.5" '
        f'font-weight="600">{title}</text>{"".join(parts)}</svg>'
    )


def _axes(f: _Scale, axis: Axis) -> str:
    bottom = TOP + f.plot_h
    out = []
    for v in range(0, 101, 25):
        y = _f(f.y(v))
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + f.plot_w}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y}" dy="4" text-anchor="end" fill="{MUTED}">{v}</text>'
        )
    for t in f.ticks():
        x = _f(f.x(t))
        out.append(
            f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 4}" stroke="{MUTED}"/>'
            f'<text x="{x}" y="{bottom + 16}" text-anchor="middle" fill="{MUTED}">'
            f"{fmt_number(t)}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + f.plot_w}" y1="{bottom}" y2="{bottom}" stroke="{MUTED}"/>'
        f'<text x="{LEFT + f.plot_w / 2:.1f}" y="{bottom + 34}" text-anchor="middle" '
        f'fill="{INK}">{AXES[axis]}</text>'
        f'<text x="{LEFT - 6}" y="{MARK_Y[0] + 4}" text-anchor="end" fill="{MUTED}">fired</text>'
        f'<text x="{LEFT - 6}" y="{MARK_Y[1] + 4}" text-anchor="end" fill="{MUTED}">deep</text>'
    )
    return "".join(out)


def _level_lines(band: RuleBand, f: _Scale) -> str:
    out = []
    for value, name, colour in (
        (band.level, "alert level", SEVERITY["alert"]),
        (band.critical_level, "critical level", SEVERITY["critical"]),
    ):
        if value is None:
            continue
        y = _f(f.y(value))
        label = escape(f"{band.rule_id}: {name} {value:g}")
        out.append(
            f'<line class="level" x1="{LEFT}" x2="{LEFT + f.plot_w}" y1="{y}" y2="{y}" '
            f'stroke="{colour}" stroke-dasharray="6 4"><title>{label}</title></line>'
        )
    return "".join(out)


def _segments(
    drawn: list[tuple[TrajectoryPoint, float]], value: Callable[[TrajectoryPoint], float | None]
) -> list[tuple[float, float, float]]:
    """(x from, x to, value) steps: each checkpoint's value held until the next checkpoint."""
    out = []
    for i, (p, x) in enumerate(drawn):
        v = value(p)
        if v is None:
            continue
        x_end = drawn[i + 1][1] if i + 1 < len(drawn) else x
        out.append((x, x_end, v))
    return out


def _delta_band(band: RuleBand, drawn: list[tuple[TrajectoryPoint, float]], f: _Scale) -> str:
    out = []
    for p, x in drawn:
        base = p.baseline_scores.get(band.task)
        if base is None:
            continue
        top = _band_top(band, base)
        if top is None:
            continue
        y_base, y_top = f.y(base * 100), f.y(top * 100)
        half = 7.0
        label = escape(
            f"{band.rule_id}: +{band.threshold:g} {band.scale} over the baseline "
            f"(step {p.baseline_step}) {base * 100:.1f}: fires at {top * 100:.1f}"
        )
        out.append(
            f'<rect class="threshold-band" x="{_f(f.x(x) - half)}" y="{_f(y_top)}" '
            f'width="{_f(2 * half)}" height="{_f(max(y_base - y_top, 0.5))}" '
            f'fill="{SEVERITY.get(band.severity, SEVERITY["alert"])}" fill-opacity="0.13" '
            f'stroke="{SEVERITY.get(band.severity, SEVERITY["alert"])}" stroke-opacity="0.5" '
            f'stroke-dasharray="2 2"><title>{label}</title></rect>'
        )
    return "".join(out)


def _baseline_steps(task: str, drawn: list[tuple[TrajectoryPoint, float]], f: _Scale) -> str:
    d = []
    for p, x in drawn:
        base = p.baseline_scores.get(task)
        if base is None:
            continue
        d.append(f"M{_f(f.x(x) - 7)} {_f(f.y(base * 100))}h14")
    if not d:
        return ""
    return (
        f'<path class="baseline" d="{" ".join(d)}" stroke="{BASE}" stroke-width="2">'
        f"<title>the baseline's score each checkpoint was compared with</title></path>"
    )


def _interval_band(task: str, drawn: list[tuple[TrajectoryPoint, float]], f: _Scale) -> str:
    upper, lower = [], []
    for p, x in drawn:
        score, se = p.scores.get(task), p.stderrs.get(task)
        if score is None or not math.isfinite(score):
            continue
        half = 1.96 * se * 100 if se is not None and math.isfinite(se) else 0.0
        upper.append((f.x(x), f.y(score * 100 + half)))
        lower.append((f.x(x), f.y(score * 100 - half)))
    if len(upper) < 2:
        return ""
    ring = upper + lower[::-1]
    d = "M" + "L".join(f"{_f(a)} {_f(b)}" for a, b in ring) + "Z"
    return f'<path class="interval" d="{d}" fill="{BAND}" fill-opacity="0.15" stroke="none"/>'


def _score_line(
    task: str, drawn: list[tuple[TrajectoryPoint, float]], f: _Scale, compute_rule: str
) -> str:
    d: list[str] = []
    marks: list[str] = []
    for p, x in drawn:
        score = p.scores.get(task)
        if score is None or not math.isfinite(score):
            continue
        px, py = f.x(x), f.y(score * 100)
        d.append(f"{'L' if d else 'M'}{_f(px)} {_f(py)}")
        se = p.stderrs.get(task)
        where = f"step {p.step}" if p.step is not None else p.content_hash[:19]
        label = f"{task} at {where}: {score * 100:.1f}"
        if se is not None and math.isfinite(se):
            label += f" (95% interval ± {1.96 * se * 100:.1f})"
        marks.append(
            f'<circle cx="{_f(px)}" cy="{_f(py)}" r="3.5"><title>{escape(label)}</title></circle>'
        )
    if not d:
        return ""
    return (
        f'<path class="series" d="{" ".join(d)}" fill="none" stroke="{SCORE}" stroke-width="2"/>'
        f'<g fill="{SCORE}" stroke="#fff" stroke-width="1">{"".join(marks)}</g>'
    )


def _markers(drawn: list[tuple[TrajectoryPoint, float]], f: _Scale, compute_rule: str) -> str:
    out = []
    for p, x in drawn:
        px = f.x(x)
        where = escape(f"step {p.step}" if p.step is not None else p.content_hash[:19])
        if p.fired:
            colour = SEVERITY.get(p.fired_severity or "alert", SEVERITY["alert"])
            rules = escape(", ".join(p.fired_rules))
            sev = escape(p.fired_severity or "alert")
            out.append(
                f'<path class="fired {sev}" d="M{_f(px - 6)} {MARK_Y[0] - 5}h12l-6 10z" '
                f'fill="{colour}"><title>{where}: fired {rules} ({sev})</title></path>'
            )
        elif p.baseline_evaluation:
            out.append(
                f'<circle class="first-baseline" cx="{_f(px)}" cy="{MARK_Y[0]}" r="5" fill="#fff" '
                f'stroke="{BASE}" stroke-width="2"><title>{where}: the run\'s first checkpoint, '
                f"evaluated deeply as its first baseline (not a fire)</title></circle>"
            )
        elif p.state == "failed":
            out.append(
                f'<path class="failed" d="M{_f(px - 4)} {MARK_Y[0] - 4}l8 8m0 -8l-8 8" '
                f'stroke="{MUTED}" stroke-width="2">'
                f"<title>{where}: evaluation failed</title></path>"
            )
        if p.held:
            out.append(
                f'<rect class="held" x="{_f(px + 7)}" y="{MARK_Y[0] - 5}" width="10" height="10" '
                f'fill="none" stroke="{SEVERITY["critical"]}" stroke-width="2">'
                f"<title>{where}: held for review</title></rect>"
            )
        if p.deep_evaluated:
            out.append(
                f'<path class="deep" d="M{_f(px)} {MARK_Y[1] - 5}l5 5l-5 5l-5 -5z" fill="{INK}">'
                f"<title>{where}: deep evaluation</title></path>"
            )
        if p.compute_rule_fired:
            out.append(
                f'<g class="compute-rule"><line x1="{_f(px)}" x2="{_f(px)}" y1="{TOP}" '
                f'y2="{TOP + f.plot_h}" stroke="{MUTED}" stroke-dasharray="1 3"/>'
                f'<text x="{_f(px + 3)}" y="{TOP + 10}" fill="{MUTED}">compute</text>'
                f"<title>{where}: an effective-compute rule ({escape(compute_rule)}) would call "
                f"for a deep evaluation here</title></g>"
            )
    return "".join(out)


def legend() -> Markup:
    """What the marks mean (shared by every panel)."""
    items = [
        (f'<path d="M2 6h14" stroke="{SCORE}" stroke-width="2"/>', "proxy score"),
        (
            f'<rect x="2" y="1" width="14" height="10" fill="{BAND}" fill-opacity="0.15"/>',
            "95% interval",
        ),
        (f'<path d="M2 6h14" stroke="{BASE}" stroke-width="2"/>', "baseline compared with"),
        (
            f'<rect x="2" y="1" width="14" height="10" fill="{SEVERITY["alert"]}" '
            f'fill-opacity="0.13" stroke="{SEVERITY["alert"]}" stroke-dasharray="2 2"/>',
            "delta rule's threshold band",
        ),
        (
            f'<path d="M2 6h14" stroke="{SEVERITY["alert"]}" stroke-dasharray="6 4"/>',
            "level rule's alert / critical level",
        ),
        (f'<path d="M3 1h12l-6 10z" fill="{SEVERITY["critical"]}"/>', "fired (critical)"),
        (f'<path d="M3 1h12l-6 10z" fill="{SEVERITY["alert"]}"/>', "fired (alert)"),
        (
            f'<circle cx="9" cy="6" r="5" fill="#fff" stroke="{BASE}" stroke-width="2"/>',
            "first baseline",
        ),
        (
            f'<rect x="4" y="1" width="10" height="10" fill="none" '
            f'stroke="{SEVERITY["critical"]}" stroke-width="2"/>',
            "held",
        ),
        (f'<path d="M9 1l5 5l-5 5l-5 -5z" fill="{INK}"/>', "deep evaluation"),
        (f'<path d="M9 0v12" stroke="{MUTED}" stroke-dasharray="1 3"/>', "compute rule"),
    ]
    cells = "".join(
        f'<span class="key"><svg width="18" height="12" aria-hidden="true">{icon}</svg> '
        f"{label}</span>"
        for icon, label in items
    )
    return Markup(f'<div class="legend small">{cells}</div>')
