"""A contact's deadline calendar: the stages that concern them, with alarms before each deadline.

The UID of a stage's event never changes and its SEQUENCE is the deadline's version, so when the
province moves a deadline, subscribed calendars move the event instead of adding a second one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import quote

from sqlmodel import Session, select

from calendars.campaign import CampaignSpec, Stage
from calendars.ics import IcsAlarm, IcsEvent, render_calendar
from calendars.timeutil import to_local
from models.campaign import Campaign, deadlines_in_force
from models.deadlines import open_case_deadlines
from models.org import Organisation
from notifications.audience import lookup_keys
from notifications.schedule import last_day

# Which stages (by their actor) concern an organisation of each tier: its own, and for the
# supervising tiers those of the tier below, whom they are expected to chase.
STAGE_ACTORS = {
    "province": {"province", "city", "county", "enterprise", "recommender"},
    "city": {"city", "county", "enterprise"},
    "county": {"county", "enterprise"},
    "park": {"county"},
    "enterprise": {"enterprise"},
    "soe_group": {"city", "enterprise", "recommender"},
    "association": {"city", "enterprise", "recommender"},
}
ALARMS = ((timedelta(days=3), "3天后截止"), (timedelta(days=1), "明天截止"))
# A "24:00" deadline is an all-day event on its last day (an instant at 00:00 would be shown on
# the next day). Its alarms count from 00:00 of that day and ring at 09:00, not at midnight: two
# days before the last day, and on it.
LAST_DAY_ALARMS = (
    (timedelta(days=2) - timedelta(hours=9), "还有3天截止（最后一天24:00）"),
    (-timedelta(hours=9), "今天24:00截止"),
)


def deadline_span(due: datetime) -> tuple[datetime | date, tuple[tuple[timedelta, str], ...]]:
    """When the deadline's event starts (an instant, or the last day of a 24:00 deadline), and its alarms."""
    local = to_local(due)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return last_day(due), LAST_DAY_ALARMS
    return due, ALARMS


def concerns(tier: str, stage_actor: str) -> bool:
    """Whether a stage acted on by ``stage_actor`` concerns an organisation of ``tier``."""
    return stage_actor in STAGE_ACTORS.get(tier, set())


def contact_events(
    session: Session, org: Organisation, programs: set[str], *, base_url: str, now: datetime
) -> list[IcsEvent]:
    events: list[IcsEvent] = []
    for campaign in session.exec(select(Campaign).order_by(Campaign.id)).all():
        if campaign.program not in programs:
            continue
        spec = campaign.spec()
        deadlines = deadlines_in_force(session, campaign.id, spec)
        for stage in spec.stages:
            if stage.relative is not None and stage.relative.per_case:
                events += _case_events(session, org, campaign, spec, stage, base_url=base_url)
                continue
            if not concerns(org.tier, stage.actor):
                continue
            deadline = deadlines[stage.id]
            due, version = deadline.due_at, deadline.version
            if due is None:
                continue  # 另行通知: appears once the province sets a date (SEQUENCE goes up then)
            start, alarms = deadline_span(due)
            own = stage.actor == org.tier or (org.tier == "park" and stage.actor == "county")
            summary = f"【{'截止' if own else '督办'}】{stage.name}"
            description = "\n".join(
                x
                for x in (
                    f"{spec.name}（{spec.notice}）",
                    stage.deadline_text,
                    f"依据：{stage.source}" if stage.source else "",
                    f"截止时间第 {version} 版"
                    + (f"，调整原因：{deadline.reason}" if deadline.reason and version > 1 else ""),
                )
                if x
            )
            events.append(
                IcsEvent(
                    uid=f"{campaign.id}.{stage.id}@shenbao",
                    summary=summary,
                    start=start,
                    description=description,
                    url=f"{base_url}/campaigns/{campaign.id}",
                    sequence=version,
                    alarms=tuple(IcsAlarm(before, f"{stage.name}：{text}") for before, text in alarms),
                    last_modified=deadline.changed_at,
                    status="CONFIRMED",
                )
            )
    return events


def _case_events(
    session: Session,
    org: Organisation,
    campaign: Campaign,
    spec: CampaignSpec,
    stage: Stage,
    *,
    base_url: str,
) -> list[IcsEvent]:
    """Each case's own deadline at a per-case stage (resubmit within 5 working days of its return),
    in the calendar of the organisation that owes the action on it, on its own day (a 24:00
    deadline on its last day). One event per case and stage: its UID stays, SEQUENCE is the
    deadline's version, so a case returned again moves its event."""
    events: list[IcsEvent] = []
    for case, row in open_case_deadlines(session, campaign.id, stage):
        if row.due_at is None or org.id not in lookup_keys(
            stage, case.org_id, case.county_code, case.city_code
        ):
            continue
        start, alarms = deadline_span(row.due_at)
        label = f"{stage.name}（{case.ref} {case.title}）"
        description = "\n".join(
            x
            for x in (
                f"{spec.name}（{spec.notice}）",
                f"案件 {case.ref}：{case.title}",
                stage.deadline_text,
                f"依据：{stage.source}" if stage.source else "",
                f"本案件截止时间第 {row.version} 版",
            )
            if x
        )
        events.append(
            IcsEvent(
                uid=f"{campaign.id}.{stage.id}.{case.ref}@shenbao",
                summary=f"【截止】{label}",
                start=start,
                description=description,
                url=f"{base_url}/cases/{quote(case.ref)}",
                sequence=row.version,
                alarms=tuple(IcsAlarm(before, f"{label}：{text}") for before, text in alarms),
                last_modified=row.changed_at,
                status="CONFIRMED",
            )
        )
    return events


def contact_calendar(
    session: Session, org: Organisation, programs: set[str], *, name: str, base_url: str, now: datetime
) -> str:
    events = contact_events(session, org, programs, base_url=base_url, now=now)
    # DTSTAMP from the newest change, not the clock: the same data gives the same bytes.
    stamp = max((e.last_modified for e in events if e.last_modified), default=None) or now
    return render_calendar(events, name=name, stamp=stamp)
