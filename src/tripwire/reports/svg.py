"""The capability trajectory of a run as a small, self-contained SVG line chart.

x is the training step (or the checkpoint's position in the run when some steps are unknown),
y is the proxy score in points (0-100). One line per task with ±1 stderr error bars; a row of
markers above the plot shows where a rule fired, where a deep evaluation ran and which
checkpoints failed. Hover titles give the exact numbers; nothing needs JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from markupsafe import Markup, escape

from tripwire.reports.model import RunReport, TrajectoryPoint

TASK_COLOURS = ("#2f6db5", "#3b8f86", "#7256a8", "#55677a", "#4a9fd8", "#2d4f7c", "#8e7cc3")
"""Calm task colours; red and amber are kept for verdicts."""
SEVERITY_COLOURS = {"critical": "#b42318", "alert": "#c4640a"}
MUTED = "#6b7280"
GRID = "#e5e7eb"
INK = "#1f2937"

WIDTH = 920
LEFT, RIGHT, TOP, BOTTOM = 60, 210, 52, 50
PLOT_HEIGHT = 300
LEGEND_LINE = 20
FIRED_ROW_Y, DEEP_ROW_Y = 16, 34


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _nice_step(span: float, target_ticks: int = 6) -> float:
    raw = span / target_ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _fmt_step(v: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.3g}{suffix}"
    return f"{v:g}"


def _f(v: float) -> str:
    return f"{v:.1f}"


class _Frame:
    """Maps data coordinates (x value, score in points) to SVG pixels."""

    def __init__(self, xs: list[float], height: int) -> None:
        lo, hi = min(xs), max(xs)
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        pad = (hi - lo) * 0.04
        self.lo, self.hi = lo - pad, hi + pad
        self.data_lo, self.data_hi = min(xs), max(xs)
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = height

    def x(self, v: float) -> float:
        return LEFT + (v - self.lo) / (self.hi - self.lo) * self.plot_w

    def y(self, points: float) -> float:
        clipped = min(100.0, max(0.0, points))
        return TOP + (1 - clipped / 100) * self.plot_h

    def x_ticks(self, integer: bool) -> list[float]:
        if self.data_lo == self.data_hi:
            return [self.data_lo]
        step = _nice_step(self.data_hi - self.data_lo)
        if integer:
            step = max(1.0, round(step))
        first = math.ceil(self.data_lo / step) * step
        ticks, v = [], first
        while v <= self.data_hi + 1e-9:
            ticks.append(v)
            v += step
        return ticks


def _x_values(points: list[TrajectoryPoint]) -> tuple[list[float], bool]:
    """Steps when every point has one, else positions (1-based); and whether steps were used."""
    steps = [p.step for p in points]
    if all(s is not None for s in steps):
        return [float(s) for s in steps if s is not None], True
    return [float(i + 1) for i in range(len(points))], False


def _series(task: str, i: int, points: list[TrajectoryPoint], xs: list[float], f: _Frame) -> str:
    colour = TASK_COLOURS[i % len(TASK_COLOURS)]
    dash = "" if i < len(TASK_COLOURS) else ' stroke-dasharray="6 3"'
    d: list[str] = []
    bars: list[str] = []
    marks: list[str] = []
    name = escape(task)
    for p, xv in zip(points, xs, strict=True):
        score = p.scores.get(task)
        if score is None or not math.isfinite(score):
            continue
        px, py, pts = f.x(xv), f.y(score * 100), score * 100
        d.append(f"{'L' if d else 'M'}{_f(px)} {_f(py)}")
        se = p.stderrs.get(task)
        label = f"{name} at {_step_label(p, xv)}: {pts:.1f}"
        if se is not None and math.isfinite(se) and se > 0:
            lo, hi = f.y(pts - se * 100), f.y(pts + se * 100)
            bars.append(
                f'<path d="M{_f(px)} {_f(lo)}V{_f(hi)}M{_f(px - 3)} {_f(lo)}h6'
                f'M{_f(px - 3)} {_f(hi)}h6"/>'
            )
            label += f" ± {se * 100:.1f}"
        marks.append(
            f'<circle cx="{_f(px)}" cy="{_f(py)}" r="3.5"><title>{label} points</title></circle>'
        )
    if not d:
        return ""
    return (
        f'<g class="task" data-task="{name}">'
        f'<g stroke="{colour}" stroke-opacity="0.55" stroke-width="1.2">{"".join(bars)}</g>'
        f'<path class="series" d="{" ".join(d)}" fill="none" stroke="{colour}" '
        f'stroke-width="2" stroke-linejoin="round"{dash}/>'
        f'<g fill="{colour}" stroke="#fff" stroke-width="1">{"".join(marks)}</g></g>'
    )


def _step_label(p: TrajectoryPoint, xv: float) -> str:
    return f"step {p.step}" if p.step is not None else f"checkpoint #{xv:g}"


def _status_markers(points: list[TrajectoryPoint], xs: list[float], f: _Frame) -> str:
    out: list[str] = []
    for p, xv in zip(points, xs, strict=True):
        px = f.x(xv)
        where = escape(_step_label(p, xv))
        if p.fired:
            colour = SEVERITY_COLOURS.get(p.fired_severity or "alert", SEVERITY_COLOURS["alert"])
            rules = escape(", ".join(p.fired_rules) or "a rule")
            out.append(
                f'<line class="fired-line" x1="{_f(px)}" x2="{_f(px)}" y1="{TOP}" '
                f'y2="{TOP + f.plot_h}" stroke="{colour}" stroke-opacity="0.35" '
                f'stroke-dasharray="3 3"/>'
                f'<path class="fired" d="M{_f(px - 6)} {FIRED_ROW_Y - 5}h12l-6 10z" '
                f'fill="{colour}"><title>{where}: fired {rules}</title></path>'
            )
        elif p.state == "failed":
            out.append(
                f'<path class="failed" d="M{_f(px - 4)} {FIRED_ROW_Y - 4}l8 8m0 -8l-8 8" '
                f'stroke="{MUTED}" stroke-width="2">'
                f"<title>{where}: evaluation failed</title></path>"
            )
        if p.deep_evaluated:
            why = " (the run's first baseline)" if p.baseline_evaluation else ""
            out.append(
                f'<path class="deep" d="M{_f(px)} {DEEP_ROW_Y - 6}l6 6l-6 6l-6 -6z" fill="{INK}">'
                f"<title>{where}: deep evaluation{why}</title></path>"
            )
    return "".join(out)


def _axes(f: _Frame, xs_are_steps: bool) -> str:
    bottom = TOP + f.plot_h
    parts = [
        f'<text x="{LEFT - 8}" y="{FIRED_ROW_Y + 4}" text-anchor="end" fill="{MUTED}">fired</text>',
        f'<text x="{LEFT - 8}" y="{DEEP_ROW_Y + 4}" text-anchor="end" fill="{MUTED}">deep</text>',
    ]
    for v in range(0, 101, 20):
        y = _f(f.y(v))
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + f.plot_w}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 8}" y="{y}" dy="4" text-anchor="end" fill="{MUTED}">{v}</text>'
        )
    for t in f.x_ticks(integer=not xs_are_steps):
        x = _f(f.x(t))
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}" stroke="{MUTED}"/>'
            f'<text x="{x}" y="{bottom + 18}" text-anchor="middle" fill="{MUTED}">'
            f"{_fmt_step(t) if xs_are_steps else f'#{t:g}'}</text>"
        )
    x_label = (
        "training step"
        if xs_are_steps
        else "checkpoint order (training step unknown for some checkpoints)"
    )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT + f.plot_w}" y1="{bottom}" y2="{bottom}" stroke="{MUTED}"/>'
        f'<text x="{LEFT + f.plot_w / 2:.1f}" y="{bottom + 40}" text-anchor="middle" '
        f'fill="{INK}">{x_label}</text>'
        f'<text transform="translate(16 {TOP + f.plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" fill="{INK}">score (points)</text>'
    )
    return "".join(parts)


def _legend(tasks: list[str], points: list[TrajectoryPoint]) -> tuple[str, int]:
    """The legend to the right of the plot, and the y where it ends."""
    x = WIDTH - RIGHT + 24
    rows: list[str] = []
    y = TOP + 4
    for i, task in enumerate(tasks):
        colour = TASK_COLOURS[i % len(TASK_COLOURS)]
        dash = "" if i < len(TASK_COLOURS) else ' stroke-dasharray="6 3"'
        label = task if len(task) <= 24 else task[:23] + "…"
        rows.append(
            f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/><circle cx="{x + 11}" cy="{y}" r="3.5" fill="{colour}"/>'
            f'<text x="{x + 30}" y="{y + 4}" fill="{INK}">{escape(label)}'
            f"<title>{escape(task)}</title></text>"
        )
        y += LEGEND_LINE
    y += 8
    for shape, text in _legend_keys(x + 11, points):
        rows.append(f'{shape(y)}<text x="{x + 30}" y="{y + 4}" fill="{INK}">{text}</text>')
        y += LEGEND_LINE
    return "".join(rows), y


def _legend_keys(cx: int, points: list[TrajectoryPoint]) -> list[tuple[Callable[[int], str], str]]:
    """Shapes (drawn centred on ``cx`` at a given y) and labels for the status markers."""

    def error_bar(y: int) -> str:
        return (
            f'<path d="M{cx} {y - 6}v12M{cx - 3} {y - 6}h6M{cx - 3} {y + 6}h6" stroke="{MUTED}"/>'
        )

    def triangle(colour: str) -> Callable[[int], str]:
        return lambda y: f'<path d="M{cx - 6} {y - 5}h12l-6 10z" fill="{colour}"/>'

    def diamond(y: int) -> str:
        return f'<path d="M{cx} {y - 6}l6 6l-6 6l-6 -6z" fill="{INK}"/>'

    def cross(y: int) -> str:
        return f'<path d="M{cx - 4} {y - 4}l8 8m0 -8l-8 8" stroke="{MUTED}" stroke-width="2"/>'

    keys: list[tuple[Callable[[int], str], str]] = [(error_bar, "±1 standard error")]
    severities = {p.fired_severity or "alert" for p in points if p.fired}
    keys += [
        (triangle(SEVERITY_COLOURS[sev]), f"rule fired ({sev})")
        for sev in ("critical", "alert")
        if sev in severities
    ]
    if any(p.deep_evaluated for p in points):
        keys.append((diamond, "deep evaluation"))
    if any(p.state == "failed" and not p.fired for p in points):
        keys.append((cross, "evaluation failed"))
    return keys


def trajectory_svg(report: RunReport) -> Markup:
    """The run's capability trajectory as an inline ``<svg>`` element."""
    points = report.points
    tasks = _ordered_tasks(report.tasks, points)
    legend, legend_bottom = _legend(tasks, points)
    height = max(TOP + PLOT_HEIGHT + BOTTOM, legend_bottom + 8)
    plot_h = height - TOP - BOTTOM
    title = escape(f"Capability trajectory of {report.run}")
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trajectory" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12" '
        f'aria-labelledby="traj-title"><title id="traj-title">{title}</title>'
    )
    if not points:
        return Markup(
            f'{head}<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" fill="{MUTED}">'
            "No checkpoints yet.</text></svg>"
        )
    xs, xs_are_steps = _x_values(points)
    frame = _Frame(xs, plot_h)
    series = "".join(_series(t, i, points, xs, frame) for i, t in enumerate(tasks))
    body = _axes(frame, xs_are_steps) + series + _status_markers(points, xs, frame) + legend
    return Markup(f"{head}{body}</svg>")


def _ordered_tasks(declared: Iterable[str], points: list[TrajectoryPoint]) -> list[str]:
    """Declared tasks first, then any task that appears in a point but was not declared."""
    tasks = list(dict.fromkeys(declared))
    for p in points:
        tasks.extend(t for t in p.scores if t not in tasks)
    return tasks
