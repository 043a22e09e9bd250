"""Read-only queries behind the pages and the API, always narrowed to the viewer's scope.

``models.status`` answers for the whole province; a county must not even see provincial
totals, so the counts here take the scope filter of :mod:`dashboard.scope`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from calendars.timeutil import format_deadline, format_duration_zh, local_date
from calendars.workdays import WorkCalendar
from dashboard.scope import case_filter, email_filter, notification_filter, org_filter, program_filter
from models import quota as quotas
from models.actions import recommendation_case, the_citys
from models.audit import AuditEvent
from models.campaign import Campaign
from models.case import Case
from models.channels import ChannelAttempt, ChannelItem, ChannelMessage
from models.machines import machine_for
from models.org import Contact, Organisation
from models.outbox import DeliveryAttempt, Email, Notification
from models.reference import load_divisions
from models.status import StageView, stage_views

TIER_OF_ACTOR = {
    "province": "省级",
    "city": "设区市",
    "county": "县（市、区）",
    "enterprise": "企业",
    "recommender": "推荐单位",
}


def application_kind(campaign: Campaign) -> str:
    return campaign.spec().application_kind


# -- stages ------------------------------------------------------------------------------------


@dataclass
class StageStatus(StageView):
    """A stage as the dashboard shows it: :class:`models.status.StageView` (counted there, the one
    place) within the viewer's scope, with the countdown people read."""

    @classmethod
    def of(cls, view: StageView) -> StageStatus:
        return cls(**{f.name: getattr(view, f.name) for f in fields(StageView)})

    @property
    def per_case(self) -> bool:
        return self.stage.relative is not None and self.stage.relative.per_case

    @property
    def due_text(self) -> str:
        if self.per_case and self.stage.relative is not None:
            return f"按案件计算：{self.stage.relative.describe()}"
        return format_deadline(self.due_at) if self.due_at else "另行通知"

    @property
    def countdown(self) -> str:
        """Working days first (what coordinators plan by), then the exact time left."""
        if self.per_case:
            return "各案件截止时间不同（见案件）"
        if self.due_at is None:
            return f"截止时间另行通知（{self.waiting}）" if self.waiting else "截止时间另行通知"
        left = self.due_at - self.now
        if left <= timedelta(0):
            return f"已截止 {format_duration_zh(-left)}"
        days = self.working_days_left
        if days is None:
            waits = f"；{self.waiting}，提醒与督办暂缓" if self.waiting else ""
            return f"还剩 {format_duration_zh(left)}{waits}"
        if days == 0:
            return f"今天截止，还剩 {format_duration_zh(left)}"
        return f"还剩 {days} 个工作日（{format_duration_zh(left)}）"

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.id,
            "name": self.stage.name,
            "actor": self.stage.actor,
            "actor_label": TIER_OF_ACTOR.get(self.stage.actor, self.stage.actor),
            "subject": self.stage.subject,
            "opens_at": self.stage.opens,
            "due_at": self.due_at,
            "due_text": self.due_text,
            "deadline_version": self.version,
            "deadline_text": self.stage.deadline_text,
            "source": self.stage.source,
            "pending": self.pending,
            "idle_recommenders": self.idle,
            "units_without_contacts": self.unreached,
            "notes": self.notes,
            "working_days_left": self.working_days_left,
            "countdown": self.countdown,
            "overdue": self.overdue,
        }


def stage_statuses(
    session: Session, campaign: Campaign, org: Organisation, now: datetime, calendar: WorkCalendar | None
) -> list[StageStatus]:
    views = stage_views(session, campaign, now, calendar, scope=case_filter(org))
    return [StageStatus.of(v) for v in views]


def overdue_states(statuses: list[StageStatus], kind: str) -> set[str]:
    """States of ``kind`` that owe an action at a stage whose deadline has passed."""
    states: set[str] = set()
    for s in statuses:
        if s.stage.subject == kind and s.closed:
            states.update(s.stage.pending_states)
    return states


# -- cases -----------------------------------------------------------------------------------------


def list_cases(
    session: Session,
    org: Organisation,
    campaign_id: str | None,
    *,
    programs: Collection[str],
    kind: str | None = None,
    city: str | None = None,
    county: str | None = None,
    state: str | None = None,
    applicant: str | None = None,
    q: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[Case], int]:
    filters = [case_filter(org), program_filter(programs)]
    if campaign_id:
        filters.append(Case.campaign_id == campaign_id)
    if kind:
        filters.append(Case.kind == kind)
    if city:
        filters.append(Case.city_code == city)
    if county:
        filters.append(Case.county_code == county)
    if state:
        filters.append(Case.state == state)
    if applicant:
        filters.append(Case.org_id == applicant)
    if q:
        like = f"%{q.strip()}%"
        filters.append(Case.title.like(like) | Case.ref.like(like) | Case.external_id.like(like))  # type: ignore[attr-defined,union-attr]
    total = session.exec(select(func.count()).select_from(Case).where(*filters)).one()
    rows = session.exec(select(Case).where(*filters).order_by(Case.ref).offset(offset).limit(limit)).all()
    return list(rows), int(total)


def org_names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.exec(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(list(ids)))
    ).all()  # type: ignore[attr-defined]
    names = dict(rows)
    divisions = load_divisions()
    for code in ids:
        if code not in names:
            d = divisions.by_code(code)
            names[code] = d.name if d else code
    return names


def quota_label(session: Session, spec: CampaignSpec, bucket: str | None) -> str:
    """``rising_star:330100`` → 杭州市“新星”产业群推荐数量不超过3个: the campaign file's name of the
    quota a case's Case.quota_bucket records (its ``quotas:`` id, then whose slots)."""
    if not bucket:
        return ""
    kind, _, owner = bucket.partition(":")
    name = org_names(session, {owner}).get(owner, owner)
    quota = next((q for q in spec.quotas if q.id == kind), None)
    if quota is None:  # "open:…", or a quota the file no longer has
        return f"{name}推荐（不限数量）" if kind == "open" else f"{name}（名额 {kind}）"
    return quotas.declared(session, quota, owner, name).name


def division_name(code: str | None) -> str:
    if not code:
        return "市本级"
    d = load_divisions().by_code(code)
    return d.name if d else code


# -- progress (charts) ----------------------------------------------------------------------------


@dataclass
class Progress:
    stage: Stage
    due_at: datetime | None
    total: int
    acted_by_day: list[tuple[date, int]]  # cumulative, one point per local day
    today: date

    @property
    def acted(self) -> int:
        return self.acted_by_day[-1][1] if self.acted_by_day else 0


def stage_progress(
    session: Session,
    campaign: Campaign,
    stage: Stage,
    due_at: datetime | None,
    org: Organisation,
    now: datetime,
) -> Progress:
    """How many of the cases this stage waits for have acted, day by day.

    "Acted" is the first change out of the stage's pending states made by a person; the
    engine's own lapses and cascades are not somebody acting. The total is every case that is
    still pending plus every one that has acted, so a case returned for revision and submitted
    again counts once.
    """
    pending = tuple(stage.pending_states)
    first_acts = (
        select(AuditEvent.case_id, func.min(AuditEvent.at).label("at"))
        .join(Case, Case.id == AuditEvent.case_id)  # type: ignore[arg-type]
        .where(
            AuditEvent.campaign_id == campaign.id,
            AuditEvent.action == "state_change",
            AuditEvent.actor != "system",
            AuditEvent.from_value.in_(pending),  # type: ignore[union-attr]
            AuditEvent.to_value.not_in(pending),  # type: ignore[union-attr]
            Case.kind == stage.subject,
            case_filter(org),
        )
        .group_by(AuditEvent.case_id)
    )
    acted_rows = session.exec(first_acts).all()
    acted_ids = [cid for cid, _at in acted_rows]
    pending_total = session.exec(
        select(func.count())
        .select_from(Case)
        .where(
            Case.campaign_id == campaign.id,
            Case.kind == stage.subject,
            case_filter(org),
            Case.state.in_(pending),
        )  # type: ignore[attr-defined]
    ).one()
    pending_acted = 0
    for start in range(0, len(acted_ids), 900):  # SQLite's bound-parameter limit
        chunk = acted_ids[start : start + 900]
        pending_acted += session.exec(
            select(func.count()).select_from(Case).where(Case.id.in_(chunk), Case.state.in_(pending))  # type: ignore[union-attr,attr-defined]
        ).one()
    total = int(pending_total) - int(pending_acted) + len(acted_ids)

    spec: CampaignSpec = campaign.spec()
    today = local_date(now)
    start = local_date(stage.opens) if stage.opens else spec.issued
    firsts = sorted(local_date(at) for _cid, at in acted_rows)
    if firsts:
        start = min(start, firsts[0])
    end = today
    if due_at is not None:
        end = max(end, local_date(due_at - timedelta(microseconds=1)))
    end = min(end, start + timedelta(days=400))  # a mistyped date must not draw years of days
    series: list[tuple[date, int]] = []
    i, count, day = 0, 0, start
    while day <= end:
        while i < len(firsts) and firsts[i] <= day:
            count += 1
            i += 1
        series.append((day, count))
        day += timedelta(days=1)
    return Progress(stage, due_at, total, series, today)


# -- recommendation and quota -----------------------------------------------------------------------


@dataclass
class QuotaLine:
    bucket: str
    name: str
    limit: int | None
    used: int
    refs: list[str] = field(default_factory=list)

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return min(100, round(100 * self.used / self.limit))


@dataclass
class CityRecommendation:
    campaign: Campaign
    city: Organisation
    recommendation: Case | None
    quotas: list[QuotaLine]
    candidates: list[Case]
    recommended: list[Case]
    not_recommended: list[Case]


def city_recommendation(session: Session, campaign: Campaign, city: Organisation) -> CityRecommendation:
    spec = campaign.spec()
    usage = quotas.usage(session, campaign.id)
    lines: list[QuotaLine] = []

    def line(bucket: str, name: str, limit: int | None) -> None:
        lines.append(
            QuotaLine(bucket, name, limit, usage.get(bucket, 0), quotas.used(session, campaign.id, bucket))
        )

    for quota in quotas.lines_for(session, spec, city):
        line(quota.bucket, quota.name, quota.limit)
    kind = spec.application_kind
    machine = machine_for(kind, campaign.id)
    base = select(Case).where(Case.campaign_id == campaign.id, Case.kind == kind, Case.city_code == city.id)
    base = base.where(the_citys(spec, city.id))
    cases = list(session.exec(base.order_by(Case.ref)).all())
    # The columns are the machine's roles: where the city may recommend, on its list, declined.
    return CityRecommendation(
        campaign=campaign,
        city=city,
        recommendation=recommendation_case(session, campaign.id, city.id),
        quotas=lines,
        candidates=[c for c in cases if c.state in machine.candidates],
        recommended=[c for c in cases if c.state in machine.on_list],
        not_recommended=[c for c in cases if c.state in machine.declined],
    )


# -- notifications ----------------------------------------------------------------------------------

EMAIL_STATUS = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "retry": "等待重试",
    "dead": "发送失败",
    "cancelled": "已取消",
}
NOTIFICATION_STATUS = {"pending": "待合并发送", "queued": "已装入邮件", "cancelled": "已取消"}
NOTIFICATION_KINDS = {
    "reminder": "截止提醒",
    "supervisor_reminder": "督促提醒",
    "escalation": "逾期督办",
    "notice": "状态通知",
    "lapse_notice": "逾期关闭通知",
    "deadline_notice": "截止时间变更",
    "audit_checkpoint": "审计检查点",
    "receipt": "审计回执",
}
ATTEMPT_OUTCOMES = {
    "sent": "成功",
    "temporary": "暂时失败（将重试）",
    "permanent": "永久失败",
    "cancelled": "已取消",
    "unknown": "结果未知",
    "rate_limited": "平台限流",
    "folded": "并入汇总",
    "fallback": "转其他渠道",
    "duplicate": "今日已发相同内容",
}
CHANNEL_STATUS = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "retry": "待重试",
    "dead": "死信",
    "cancelled": "已取消",
    "folded": "已并入汇总",
}


@dataclass
class MailLog:
    emails: list[tuple[Email, Contact, Organisation]]
    attempts: dict[int, list[DeliveryAttempt]]
    email_counts: dict[str, int]
    notification_counts: dict[str, int]
    total: int
    # 浙政钉, robot and SMS messages (newest first) with their attempts, and each channel's
    # counts by status (the dead letters among them).
    channel_messages: list[ChannelMessage] = field(default_factory=list)
    channel_attempts: dict[int, list[ChannelAttempt]] = field(default_factory=dict)
    channel_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def mail_log(
    session: Session,
    org: Organisation,
    *,
    programs: Collection[str],
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> MailLog:
    scope = [org_filter(org), email_filter(session, programs)]
    notices = [org_filter(org), notification_filter(programs)]
    base = (
        select(Email, Contact, Organisation)
        .join(Contact, Contact.id == Email.contact_id)  # type: ignore[arg-type]
        .join(Organisation, Organisation.id == Contact.org_id)
        .where(*scope)
    )
    counted = (
        select(Email.status, func.count())
        .join(Contact, Contact.id == Email.contact_id)  # type: ignore[arg-type]
        .join(Organisation, Organisation.id == Contact.org_id)
        .where(*scope)
        .group_by(Email.status)
    )
    email_counts = dict(session.exec(counted).all())
    notification_counts = dict(
        session.exec(
            select(Notification.status, func.count())
            .join(Contact, Contact.id == Notification.contact_id)  # type: ignore[arg-type]
            .join(Organisation, Organisation.id == Contact.org_id)
            .where(*notices)
            .group_by(Notification.status)
        ).all()
    )
    if status:
        base = base.where(Email.status == status)
    total = sum(email_counts.get(status, 0) for status in ([status] if status else email_counts))
    rows = list(
        session.exec(
            base.order_by(Email.created_at.desc(), Email.id.desc())  # type: ignore[attr-defined,union-attr]
            .offset(offset)
            .limit(limit)
        ).all()
    )
    ids = [e.id for e, _c, _o in rows]
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if ids:
        for a in session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.email_id.in_(ids))  # type: ignore[attr-defined]
            .order_by(DeliveryAttempt.id)
        ).all():
            attempts.setdefault(a.email_id, []).append(a)
    log = MailLog(rows, attempts, email_counts, notification_counts, int(total))
    _channel_log(session, log, org, programs, limit)
    return log


def _channel_log(
    session: Session, log: MailLog, org: Organisation, programs: Collection[str], limit: int
) -> None:
    """The other channels' messages within the viewer's reach: by the people whose items they
    carry (a robot's message reaches a group; it is shown to whoever sees one of them)."""
    reach = (
        select(ChannelItem.message_id)
        .join(Notification, Notification.id == ChannelItem.notification_id)  # type: ignore[arg-type]
        .join(Contact, Contact.id == Notification.contact_id)  # type: ignore[arg-type]
        .join(Organisation, col(Organisation.id) == Contact.org_id)
        .where(org_filter(org), notification_filter(programs))
    )
    visible = col(ChannelMessage.id).in_(reach)
    for channel, status, n in session.exec(
        select(ChannelMessage.channel, ChannelMessage.status, func.count())
        .where(visible)
        .group_by(col(ChannelMessage.channel), col(ChannelMessage.status))
    ).all():
        log.channel_counts.setdefault(channel, {})[status] = n
    log.channel_messages = list(
        session.exec(
            select(ChannelMessage).where(visible).order_by(col(ChannelMessage.id).desc()).limit(limit)
        ).all()
    )
    ids = [m.id for m in log.channel_messages]
    if ids:
        for a in session.exec(
            select(ChannelAttempt)
            .where(col(ChannelAttempt.message_id).in_(ids))
            .order_by(col(ChannelAttempt.id))
        ).all():
            log.channel_attempts.setdefault(a.message_id, []).append(a)
