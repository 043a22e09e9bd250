"""Campaigns as loaded into the database, and their stage deadlines.

The campaign file is stored whole (``spec_text``) so that the database alone says what rules
a case was judged by. A stage's deadline lives in its own row because it moves: an extension
or a date announced later is an event with a version number, and reminders are keyed by that
version so that a move re-plans them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel, select

from calendars.campaign import CampaignFileError, CampaignSpec, Stage, load_campaign_text
from models.types import UTCDateTime


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"

    id: str = Field(primary_key=True, max_length=60)
    program: str = Field(max_length=20)
    name: str = Field(max_length=200)
    spec_text: str = Field(sa_column=Column(Text, nullable=False))
    spec_digest: str = Field(max_length=64)
    loaded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    def spec(self) -> CampaignSpec:
        try:
            return _parse_cached(self.spec_text, self.id)
        except CampaignFileError as exc:
            # A text stored by an earlier release, in a format this one no longer reads: say how
            # to bring it up to date instead of failing on a key name.
            raise CampaignFileError(
                f"{exc}\n数据库中保存的批次 {self.id} 的文件是旧版本格式，本版本无法读取；"
                f"内置批次请运行 shenbao init 按新文件重新加载，其他批次请用 shenbao campaign load 新文件"
            ) from exc

    def stored_spec(self) -> CampaignSpec | None:
        """The stored text's parse, or None when it is in a format this release no longer reads."""
        try:
            return _parse_cached(self.spec_text, self.id)
        except CampaignFileError:
            return None


@lru_cache(maxsize=64)
def _parse_cached(text: str, origin: str) -> CampaignSpec:
    from models.machines import register  # machines build on the campaign files, not on this table

    spec = load_campaign_text(text, origin=f"campaign {origin}")
    register(spec)  # its kinds are known from now on, in this process
    return spec


def learn_kinds(session: Session) -> None:
    """Make the kinds of every campaign in the database known to this process: a campaign loaded
    from a file of its own (not built in) is seen by a command that never parsed it."""
    from calendars.campaign import builtin_campaign_files, spec_digest
    from models.machines import register

    builtin = {spec_digest(p.read_text(encoding="utf-8")) for p in builtin_campaign_files()}
    for cid, text, digest in session.exec(select(Campaign.id, Campaign.spec_text, Campaign.spec_digest)):
        if digest not in builtin:
            register(_parse_cached(text, cid))  # parsed before (cached) or not: known again


class StageDeadline(SQLModel, table=True):
    """The deadline now in force for one stage; its history is in the audit log."""

    __tablename__ = "stage_deadline"

    campaign_id: str = Field(foreign_key="campaign.id", primary_key=True, max_length=60)
    stage_id: str = Field(primary_key=True, max_length=60)
    due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    version: int = 1
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = Field(default="", max_length=500)
    # When the stage's completion event (``completed_by`` in its file) last happened: the anchor
    # of deadlines written "N working days after" this stage.
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class CaseDeadline(SQLModel, table=True):
    """A deadline of one case at one stage, "N working days after that case's last ACTION" (a
    returned application resubmitted within 5 working days of its return). Versioned like a
    stage's: each re-plan (returned again, working days reloaded) is one more, in the audit."""

    __tablename__ = "case_deadline"

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    stage_id: str = Field(primary_key=True, max_length=60)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=60, index=True)
    # None: counted into a year whose working days are not loaded yet (planned when they are).
    due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    anchor_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    version: int = 1
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def deadlines_of(session: Session, campaign_id: str) -> dict[str, StageDeadline]:
    rows = session.exec(select(StageDeadline).where(StageDeadline.campaign_id == campaign_id)).all()
    return {row.stage_id: row for row in rows}


@dataclass(frozen=True)
class Deadline:
    """The deadline in force for one stage: the moved one if the province moved it, else the file's.

    The one place that rule lives: guards, lapses, reminders, wake-ups, status boards and
    calendar feeds all ask here, so none of them can disagree about which date counts.
    """

    stage_id: str
    due_at: datetime | None
    version: int = 1
    reason: str = ""
    changed_at: datetime | None = None

    @property
    def announced(self) -> bool:
        return self.due_at is not None


def deadline_in_force(stage: Stage, row: StageDeadline | None) -> Deadline:
    """``row`` (the stage's StageDeadline, None when it has none yet) if there is one, else the file."""
    if row is None:
        return Deadline(stage.id, stage.deadline)
    return Deadline(stage.id, row.due_at, row.version, row.reason, row.changed_at)


def stage_deadline(session: Session, campaign_id: str, stage: Stage) -> Deadline:
    """The deadline in force for one stage (one primary-key read)."""
    return deadline_in_force(stage, session.get(StageDeadline, (campaign_id, stage.id)))


def deadlines_in_force(session: Session, campaign_id: str, spec: CampaignSpec) -> dict[str, Deadline]:
    """Every stage's deadline in force, by stage id, in one query."""
    rows = deadlines_of(session, campaign_id)
    return {stage.id: deadline_in_force(stage, rows.get(stage.id)) for stage in spec.stages}


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        known = (
            "、".join(session.exec(select(Campaign.id)).all())
            or "（尚未加载任何批次，请先运行 shenbao init）"
        )
        raise LookupError(f"未知的批次：{campaign_id}（已有：{known}）")
    return campaign


def campaign_kinds(spec: CampaignSpec) -> list[str]:
    """The case kinds a campaign has: its file's ``kinds:``, else the ones its stages and form
    name (a file that keeps the built-in machines)."""
    if spec.kinds:
        return list(spec.kinds)
    named = [s.subject for s in spec.stages] + ([spec.form.kind] if spec.form is not None else [])
    return list(dict.fromkeys(named))


def loaded_kinds(session: Session, campaign_id: str | None = None) -> dict[str, str]:
    """Kind → label of every case kind of the campaigns in the database (or of one): what a
    ``--kind`` may name, read from the loaded files rather than from a list fixed in code."""
    from models.machines import machine_for

    campaigns = (
        [get_campaign(session, campaign_id)]
        if campaign_id
        else session.exec(select(Campaign).order_by(Campaign.id)).all()
    )
    found: dict[str, str] = {}
    for c in campaigns:
        for kind in campaign_kinds(c.spec()):
            found.setdefault(kind, machine_for(kind, c.id).label)
    return found


def resolve_kind(session: Session, text: str, campaign_id: str | None = None) -> str:
    """The kind ``text`` names, by its id or its label (集群申报); LookupError listing the valid
    kinds of the loaded campaigns (or of ``campaign_id``) otherwise."""
    kinds = loaded_kinds(session, campaign_id)
    if text in kinds:
        return text
    by_label = [k for k, label in kinds.items() if label == text]
    if len(by_label) == 1:
        return by_label[0]
    where = f"批次 {campaign_id} 的" if campaign_id else "已加载批次的"
    listed = "、".join(f"{k}（{label}）" for k, label in kinds.items()) or "无，请先加载批次"
    raise LookupError(f"没有案件类型「{text}」：{where}案件类型为 {listed}")


def resolve_state(session: Session, text: str, kind: str | None, campaign_id: str | None = None) -> str:
    """The state ``text`` names (its id, or its label such as 已提交), of ``kind`` or of any kind
    of the loaded campaigns (or of ``campaign_id``); LookupError listing the states otherwise."""
    from models.machines import machine_for

    campaigns = (
        [get_campaign(session, campaign_id)]
        if campaign_id
        else session.exec(select(Campaign).order_by(Campaign.id)).all()
    )
    states: dict[str, str] = {}
    for c in campaigns:
        for k in campaign_kinds(c.spec()):
            if kind is None or k == kind:
                for state, label in machine_for(k, c.id).states.items():
                    states.setdefault(state, label)
    if text in states:
        return text
    by_label = sorted({s for s, label in states.items() if label == text})
    if len(by_label) == 1:
        return by_label[0]
    where = f"案件类型 {kind} 的状态" if kind else "已加载批次的状态"
    listed = "、".join(f"{s}（{label}）" for s, label in states.items())
    raise LookupError(f"没有状态「{text}」：{where}为 {listed}")
