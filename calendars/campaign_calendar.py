"""A campaign file's dates against China's working days, before it is loaded.

Two findings, one concept (what the working-day calendar says about the dates an author wrote):

* a **fixed deadline in a year whose arrangement is not loaded** (2027 before its notice is
  loaded) is refused: no countdown, reminder or escalation could be counted for it, and the
  engine would carry it silently. The remedy is named: ``shenbao calendar load`` first, or
  ``null`` (另行通知) until then. A deadline *counted* into such a year from the file's own dates
  (``{working_days: 2, after: {stage: …}}`` from a 12-31 anchor) is legal and stays 另行通知,
  saying why, until the year is loaded (README); it is a warning here, loud but not a refusal.
* a **fixed deadline on a day off** (a weekend, 中秋节) is legal, notices do say "9月25日前",
  but it is often a slip: a warning with the weekday and the holiday's name.

Pure: the caller passes the calendar (the packaged one with the arrangements loaded into the
database), so ``campaign validate`` and ``campaign load`` judge against the same days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import WEEKDAYS_ZH, format_deadline, local_date
from calendars.workdays import UnknownYearError, WorkCalendar

__all__ = ["DateFinding", "calendar_findings", "explain_findings"]


@dataclass(frozen=True)
class DateFinding:
    """One date of the file the calendar has something to say about."""

    loc: tuple[str | int, ...]  # key path in the file, for the line: ("stages", 3, "deadline")
    key: str  # as messages name it: stages[city_recommendation].deadline
    message: str
    refused: bool  # True: the file cannot be loaded as written; False: a warning


def _last_day(due: datetime) -> date:
    # "09-30 24:00" falls due on 09-30.
    return local_date(due - timedelta(microseconds=1))


def _not_loaded(stage: Stage, due: datetime, exc: UnknownYearError) -> str:
    year = exc.year
    return (
        f"「{stage.name}」截止时间 {format_deadline(due)} 在{year}年，{year}年的节假日安排尚未加载，"
        "剩余工作日、提醒与督办都无法计算。请先用 shenbao calendar load 加载国务院办公厅的"
        f"{year}年节假日安排通知，再加载本文件；日期尚难确定的，可先写 deadline: null（另行通知），"
        "加载后用 shenbao deadline set 设定"
    )


def calendar_findings(spec: CampaignSpec, calendar: WorkCalendar) -> list[DateFinding]:
    """Every fixed deadline in a year not loaded (refused), every one on a day off and every
    relative deadline counted into a year not loaded (warnings), in the file's order."""
    findings: list[DateFinding] = []
    # The file's own dates, fixed or counted from them, as the first load plans them.
    planned: dict[str, datetime | None] = {}
    index = {s.id: i for i, s in enumerate(spec.stages)}
    for stage in _in_anchor_order(spec):
        i = index[stage.id]
        loc: tuple[str | int, ...] = ("stages", i, "deadline")
        key = f"stages[{stage.id}].deadline"
        rule = stage.relative
        if rule is None:
            planned[stage.id] = stage.deadline
            if stage.deadline is None:
                continue
            day = _last_day(stage.deadline)
            try:
                working = calendar.is_working_day(day)
                holiday = calendar.holiday_name(day)
            except UnknownYearError as exc:
                findings.append(DateFinding(loc, key, _not_loaded(stage, stage.deadline, exc), True))
                continue
            if not working:
                what = f"{holiday}假期" if holiday else f"{WEEKDAYS_ZH[day.weekday()]}（休息日）"
                findings.append(
                    DateFinding(
                        loc,
                        key,
                        f"「{stage.name}」截止时间 {format_deadline(stage.deadline)} 是{what}，不是工作日；"
                        "通知确写此日的可不改，否则请核对日期",
                        False,
                    )
                )
            continue
        planned[stage.id] = None
        anchor_id = rule.anchor.stage
        if anchor_id is None:
            continue  # per case: counted from each case's own action
        anchor = spec.stage(anchor_id)
        anchor_due = planned.get(anchor_id)
        if anchor_due is None or (rule.after is not None and anchor.completed_by):
            continue  # 另行通知, or counted from the anchor's completion: nothing to count yet
        try:
            planned[stage.id] = rule.due(_last_day(anchor_due), calendar)
        except UnknownYearError as exc:
            findings.append(
                DateFinding(
                    loc,
                    key,
                    f"「{stage.name}」的截止时间（{rule.describe()}，从「{anchor.name}」截止 "
                    f"{format_deadline(anchor_due)} 起算）要数到{exc.year}年，{exc.year}年的节假日安排尚未加载："
                    f"加载前显示为“另行通知”并注明原因，用 shenbao calendar load 加载{exc.year}年的节假日安排后自动计算",
                    False,
                )
            )
    return sorted(findings, key=lambda f: index[f.key[len("stages[") : f.key.index("]")]])


def _in_anchor_order(spec: CampaignSpec) -> list[Stage]:
    """Stages after the stage they count from (the file's references are checked: no loops)."""
    done: list[Stage] = []
    seen: set[str] = set()
    pending = list(spec.stages)
    while pending:
        progressed = False
        for stage in list(pending):
            anchor = stage.relative.anchor.stage if stage.relative else None
            if anchor is None or anchor in seen:
                done.append(stage)
                seen.add(stage.id)
                pending.remove(stage)
                progressed = True
        if not progressed:  # a loop the reference check reports; nothing to count here
            break
    return done


def explain_findings(findings: list[DateFinding], text: str, origin: str) -> tuple[list[str], list[str]]:
    """(refusals, warnings) as validate and load print them: file, key, line, what to do."""
    from calendars.campaign import Problem, key_lines

    lines = key_lines(text)

    def line_of(loc: tuple[str | int, ...]) -> int | None:
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                return lines[loc[:cut]]
        return None

    said = [(f.refused, f"{origin}: {Problem(line_of(f.loc), f.key, f.message)}") for f in findings]
    return [s for refused, s in said if refused], [s for refused, s in said if not refused]
