"""Inline SVG drawn on the server: the campaign timeline and each stage's progress.

SVG written by hand needs no JavaScript, no chart library and no network, prints well and can
be read by screen readers through its <title>. Every text is escaped; nothing from a user is
placed in an attribute without quoting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

from markupsafe import Markup

from calendars.timeutil import WEEKDAYS_ZH, local_date
from dashboard.queries import Progress, StageStatus

_FONT = "font-family=\"'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif\""


def _md(d: date) -> str:
    return f"{d.month}/{d.day}"


def _last_day(due: datetime) -> date:
    # A deadline at 00:00 belongs to the day before ("6月25日24:00").
    return local_date(due - timedelta(microseconds=1))


@dataclass(frozen=True)
class _Axis:
    start: date
    end: date
    left: float
    width: float

    def x(self, d: date) -> float:
        span = max((self.end - self.start).days, 1)
        return self.left + self.width * (d - self.start).days / span


def _day_ticks(start: date, end: date, max_ticks: int = 10) -> list[date]:
    span = (end - start).days
    step = max(1, -(-span // max_ticks))
    # Weekly steps read better than, say, every 9 days.
    if step > 7:
        step = 7 * -(-step // 7)
    elif step > 1:
        step = 7 if step > 3 else step
    return [start + timedelta(days=i) for i in range(0, span + 1, step)]


def progress_chart(p: Progress, *, width: int = 560, height: int = 220) -> Markup:
    """Cumulative cases acted, day by day, against the total and the deadline."""
    left, right, top, bottom = 44, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    days = [d for d, _n in p.acted_by_day]
    if not days:
        days = [p.today]
    axis = _Axis(days[0], days[-1], left, plot_w)
    ymax = max(p.total, p.acted, 1)

    def y(n: int) -> float:
        return top + plot_h - plot_h * n / ymax

    title = f"{p.stage.name}：已办 {p.acted} / {p.total}"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" {_FONT} font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfe" stroke="#d8dee8"/>',
    ]
    # Y grid: 0, half, total.
    for n in sorted({0, ymax // 2, ymax}):
        yy = y(n)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6eaf0"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#5b6678">{n}</text>')
    for d in _day_ticks(axis.start, axis.end):
        xx = axis.x(d)
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#9aa5b5"/>'
        )
        parts.append(
            f'<text x="{xx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#5b6678">{_md(d)}</text>'
        )
    # The goal: everyone pending at this stage has acted.
    if p.total:
        yy = y(p.total)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#2f7d4f" '
            'stroke-dasharray="5 4"/>'
        )
        parts.append(f'<text x="{left + 4}" y="{yy - 5:.1f}" fill="#2f7d4f">应办 {p.total}</text>')
    if p.due_at is not None:
        last = _last_day(p.due_at)
        if axis.start <= last <= axis.end:
            xx = axis.x(last)
            parts.append(
                f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#c0392b" '
                'stroke-width="1.5"/>'
            )
            parts.append(
                f'<text x="{xx - 4:.1f}" y="{top - 8}" text-anchor="end" fill="#c0392b">截止 {_md(last)}</text>'
            )
    if axis.start <= p.today <= axis.end:
        xx = axis.x(p.today)
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#1f5fbf" '
            'stroke-dasharray="2 3"/>'
        )
        near_right = xx > left + plot_w - 40
        parts.append(
            f'<text x="{xx + (-4 if near_right else 4):.1f}" y="{top + 14}" '
            f'text-anchor="{"end" if near_right else "start"}" fill="#1f5fbf">今天</text>'
        )
    # Cumulative line up to today only: the future has not happened.
    points = [(axis.x(d), y(n)) for d, n in p.acted_by_day if d <= p.today]
    if points:
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in points)
        area = f"{points[0][0]:.1f},{y(0):.1f} {path} {points[-1][0]:.1f},{y(0):.1f}"
        parts.append(f'<polygon points="{area}" fill="#1f5fbf" fill-opacity="0.10"/>')
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f5fbf" stroke-width="2"/>')
        lx, ly = points[-1]
        parts.append(f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="3.5" fill="#1f5fbf"/>')
        # Above the point, on the side with room: the axis labels are below it.
        anchor, dx = ("end", -6) if lx > left + plot_w / 2 else ("start", 6)
        parts.append(
            f'<text x="{lx + dx:.1f}" y="{max(ly - 8, top + 26):.1f}" text-anchor="{anchor}" '
            f'fill="#1f5fbf" font-weight="bold">已办 {p.acted}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def campaign_timeline(
    statuses: list[StageStatus], issued: date, now: datetime, *, width: int = 960
) -> Markup:
    """One row per stage: its window as a bar ending at the deadline, today as a vertical line."""
    row_h, top, left, right = 30, 34, 300, 24
    # The rows, then a band for the 今天 label under them: a label whose baseline sat on the
    # bottom edge lost the lower part of its glyphs.
    rows_bottom = top + row_h * len(statuses) + 8
    height = rows_bottom + 24
    today = local_date(now)
    dates = [issued, today]
    for s in statuses:
        if s.due_at is not None:
            dates.append(_last_day(s.due_at))
    start = min(dates) - timedelta(days=2)
    end = max(dates) + timedelta(days=7)
    axis = _Axis(start, end, left, width - left - right)
    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" {_FONT} font-size="12">',
        "<title>各环节时间轴</title>",
    ]
    for d in _day_ticks(start, end, 12):
        xx = axis.x(d)
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top - 6}" y2="{height - 10}" stroke="#eef1f5"/>'
        )
        parts.append(f'<text x="{xx:.1f}" y="{top - 12}" text-anchor="middle" fill="#5b6678">{_md(d)}</text>')
    for i, s in enumerate(statuses):
        y = top + i * row_h
        label = s.stage.name if len(s.stage.name) <= 22 else s.stage.name[:21] + "…"
        parts.append(
            f'<text x="{left - 10}" y="{y + 19}" text-anchor="end" fill="#1d2633">{escape(label)}</text>'
        )
        if s.due_at is None:
            parts.append(f'<text x="{left + 6}" y="{y + 19}" fill="#8a94a6">截止时间另行通知</text>')
            continue
        last = _last_day(s.due_at)
        opens = local_date(s.stage.opens) if s.stage.opens else issued
        x0, x1 = axis.x(max(opens, start)), axis.x(last)
        colour = "#c0392b" if s.overdue else ("#8a94a6" if s.closed else "#1f5fbf")
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 7}" width="{max(x1 - x0, 3):.1f}" height="16" rx="3" '
            f'fill="{colour}" fill-opacity="0.22" stroke="{colour}"/>'
        )
        parts.append(f'<circle cx="{x1:.1f}" cy="{y + 15}" r="5" fill="{colour}"/>')
        tag = f"{_md(last)}（{WEEKDAYS_ZH[last.weekday()]}）"
        parts.append(f'<text x="{x1 + 9:.1f}" y="{y + 19}" fill="{colour}">{escape(tag)}</text>')
    xx = axis.x(today)
    parts.append(
        f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top - 4}" y2="{rows_bottom}" stroke="#e67e22" '
        'stroke-width="2"/>'
    )
    # Centred under the line, unless that would run past either edge of the drawing.
    anchor = "end" if xx > width - 30 else ("start" if xx < 30 else "middle")
    parts.append(
        f'<text x="{xx:.1f}" y="{rows_bottom + 17}" text-anchor="{anchor}" fill="#e67e22" '
        'font-weight="bold">今天</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
