"""The JSON API's request and response models (they are what the OpenAPI schema documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Me(BaseModel):
    contact_id: int
    name: str
    email: str
    org_id: str
    org_name: str
    tier: str
    tier_label: str
    programs: list[str]
    token_expires_at: datetime


class StageOut(BaseModel):
    stage: str
    name: str
    actor: str
    actor_label: str
    subject: str
    opens_at: datetime | None
    due_at: datetime | None = Field(description="截止时刻（UTC）；null 表示另行通知")
    due_text: str = Field(description="北京时间，含星期，如 2026-06-25（周四）24:00")
    deadline_version: int
    deadline_text: str
    source: str
    pending: int = Field(description="本单位范围内尚待办理的数量（尚无申报到达的推荐单位不计）")
    idle_recommenders: int = Field(0, description="尚无申报到达、可报“无推荐”的推荐单位数（不计入待办）")
    units_without_contacts: int | None = Field(
        None, description="应办单位中没有本工作类别联系人、未能提醒的单位数；企业自身填报的环节为 null"
    )
    notes: list[str] = Field(
        default_factory=list, description="待办数的说明，如「2 个单位无联系人，未能提醒」"
    )
    working_days_left: int | None
    countdown: str
    overdue: bool


class CampaignOut(BaseModel):
    id: str
    program: str
    name: str
    notice: str
    now: datetime
    stages: list[StageOut]


class BoardRow(BaseModel):
    code: str
    name: str
    counts: dict[str, int]
    total: int


class BoardOut(BaseModel):
    campaign: str
    kind: str
    group_by: str = Field(description="city（按设区市）、county（按县）或 applicant（按申报单位）")
    states: list[str]
    state_labels: dict[str, str]
    overdue_states: list[str]
    rows: list[BoardRow]
    total: dict[str, int]


class AllowedAction(BaseModel):
    action: str
    label: str
    needs_reason: bool
    tiers: list[str]


class CaseSummary(BaseModel):
    ref: str
    campaign: str
    kind: str
    title: str
    state: str
    state_label: str
    state_since: datetime
    org_id: str
    city_code: str | None
    county_code: str | None
    track: str | None
    external_id: str | None


class CaseDetail(CaseSummary):
    kind_label: str
    org_name: str
    zone_type: str | None
    category: str | None
    recommender_id: str | None
    brand_aligned: bool
    quota_bucket: str | None
    defence_at: datetime | None
    letter: str | None
    version: int
    attrs: dict[str, Any]
    findings: list[dict[str, Any]]
    allowed_actions: list[AllowedAction]


class CaseList(BaseModel):
    total: int
    offset: int
    cases: list[CaseSummary]


class EventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    action_label: str
    what: str
    from_state: str | None
    to_state: str | None
    reason: str
    details: dict[str, Any]


class History(BaseModel):
    ref: str
    events: list[EventOut]


class ActionIn(BaseModel):
    """One action on a case, as a coordinator would take it in the page."""

    action: str = Field(
        description="如 submit、return、recommend、not_recommend、attach、schedule_defence、select",
        examples=["submit"],
    )
    reason: str = Field(default="", description="理由（退回、不予推荐、撤回、未入选等必填）")
    overrides: dict[str, str] = Field(
        default_factory=dict, description="对“原则上”条件说明理由：{规则编号: 理由}"
    )
    at: str | None = Field(
        default=None, description="现场答辩时间（schedule_defence），如 2026-08-10T09:00（北京时间）"
    )
    letter_sha256: str | None = Field(
        default=None,
        description="本案件已上传的签章文件的 SHA-256（报送时指明所附文件）；上传文件请用 POST /api/cases/{ref}/letter",
    )
    letter: str | None = Field(
        default=None,
        description="不再接受：文件名不是签章文件，给出即拒绝（422）；请上传文件（POST /api/cases/{ref}/letter）",
    )


class ActionOut(BaseModel):
    ok: bool
    audit_seq: int | None = Field(description="本次操作写入审计链的事件序号")
    case: CaseDetail


class Refusal(BaseModel):
    detail: str
    rule: str | None = None


class DeadlineIn(BaseModel):
    due: str | None = Field(
        description="新的截止时间，如 2026-07-10、2026-06-25 24:00；null 表示另行通知",
        examples=["2026-07-10 17:30"],
    )
    reason: str = Field(description="调整原因（必填，记入审计）")


class DeadlineOut(BaseModel):
    campaign: str
    stage: str
    due_at: datetime | None
    due_text: str
    version: int


class QuotaOut(BaseModel):
    bucket: str
    name: str
    limit: int | None
    used: int
    left: int | None
    refs: list[str]


class RecommendationOut(BaseModel):
    campaign: str
    city: str
    city_name: str
    recommendation: CaseSummary | None
    letter: str | None
    quotas: list[QuotaOut]
    candidates: list[CaseSummary]
    recommended: list[CaseSummary]


class ProgressPoint(BaseModel):
    day: str
    acted: int


class ProgressOut(BaseModel):
    stage: str
    name: str
    total: int
    acted: int
    due_at: datetime | None
    points: list[ProgressPoint]


class AttemptOut(BaseModel):
    at: datetime
    outcome: str
    outcome_label: str
    smtp_code: int | None
    detail: str


class EmailOut(BaseModel):
    id: int
    to_name: str
    to_addr: str
    org_name: str
    subject: str
    kinds: str
    status: str
    status_label: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    attempt_log: list[AttemptOut]


class ChannelAttemptOut(BaseModel):
    at: datetime
    outcome: str
    outcome_label: str
    code: str | None
    detail: str


class ChannelMessageOut(BaseModel):
    id: int
    channel: str
    channel_label: str
    to_name: str
    address: str
    title: str
    items: int
    status: str
    status_label: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    folded_into: int | None
    fallback_of: int | None
    attempt_log: list[ChannelAttemptOut]


class MailLogOut(BaseModel):
    total: int
    email_counts: dict[str, int]
    notification_counts: dict[str, int]
    emails: list[EmailOut]
    # 浙政钉 / robot / SMS: counts by channel and status (dead letters included), newest messages
    channel_counts: dict[str, dict[str, int]] = {}
    channel_messages: list[ChannelMessageOut] = []


class AuditProblemOut(BaseModel):
    seq: int
    kind: str
    message: str


class AuditOut(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    anchor_seq: int | None
    problems: list[AuditProblemOut] = Field(description="仅省级用户可见明细")
    problem_count: int


class PlatformSyncIn(BaseModel):
    """Rows a provincial platform pushes: the same columns as its list export (``shenbao sync``)."""

    rows: list[dict[str, Any]] = Field(
        description="每行一个对象，键为导出表头（如 申报编号、申报单位、细分赛道、申报状态、提交时间）"
        "或字段键（number、applicant、track、status、submitted_at …，见批次文件 platform: 一节）",
        examples=[
            [
                {
                    "申报编号": "SZJX-2026-0001",
                    "申报单位": "西湖区",
                    "细分赛道": "智能终端",
                    "申报状态": "已提交",
                }
            ]
        ],
    )
    source: str = Field(
        min_length=1, max_length=200, description="推送批次的名称（记入报告与审计，代替文件名）"
    )
    dry_run: bool = Field(default=False, description="只返回差异，不写入")


class SyncNewOut(BaseModel):
    ref: str
    title: str
    row: int
    state: str
    state_label: str


class SyncChangeOut(BaseModel):
    ref: str
    title: str
    row: int
    from_state: str
    to_state: str
    from_label: str
    to_label: str
    actions: list[str] = Field(description="依次执行的状态机操作，如 correct_lapse、submit")
    labels: list[str]
    effective_at: datetime | None = Field(description="平台记录的时间；null 表示按同步时")
    corrected_lapse: bool


class SyncUnplacedOut(BaseModel):
    file: str
    row: int | None
    why: str


class SyncConflictOut(BaseModel):
    ref: str
    row: int
    platform_says: str
    shenbao_has: str
    why: str


class SyncUnqualifiedOut(BaseModel):
    ref: str
    title: str
    row: int
    findings: list[str] = Field(description="不符合的申报条件（✗ 硬性条件，! 原则上条件）")


class SyncAbsentOut(BaseModel):
    ref: str
    title: str
    state_label: str
    last_file: str = Field(description="最近一次含有它的已同步导出")


class SyncRefusalOut(BaseModel):
    row: int
    ref: str
    action: str
    message: str
    rule: str
    advice: str = Field(description="再次同步前应做的处理（按被拒绝的规则）")


class PlatformSyncOut(BaseModel):
    ok: bool = Field(description="false：有冲突、无法对应的行或被拒绝的一步（HTTP 409）")
    campaign_id: str
    platform: str
    source: str
    digest: str = Field(description="推送内容的 SHA-256：同一内容再次推送不作任何改动")
    dry_run: bool
    rows: int
    new: list[SyncNewOut]
    changes: list[SyncChangeOut]
    unplaced: list[SyncUnplacedOut] = Field(description="无法对应到案件的行（未写入）")
    conflicts: list[SyncConflictOut] = Field(description="与 shenbao 记录矛盾的行（未写入，须人工核实）")
    unchanged: int
    unqualified: list[SyncUnqualifiedOut] = Field(
        description="平台已受理、不符合申报条件的申报（已按平台记录写入，附不符合的条件）"
    )
    placed: list[str] = Field(description="本次对应到（或新建）的案件编号")
    absent: list[SyncAbsentOut] = Field(
        description="此前的导出中有、本次没有的未办结申报（同一设区市范围内；仅提示，未作改动）"
    )
    refused: SyncRefusalOut | None = Field(description="被拒绝的一步：此时整批未写入")
    already_synced_at: datetime | None = Field(description="同一内容已于此时同步过，本次未作改动")
    applied: bool
    needs_attention: bool
