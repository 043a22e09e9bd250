"""Campaign schedule files: one YAML file per campaign describes its stages and rules.

A later year's batch is a new file, not new code. This module only reads and validates the
file into plain objects; it never touches the database or the clock. Deadlines are parsed the
way the notice writes them ("2026-06-25 24:00", a bare date meaning "by the end of that day")
and held as aware UTC instants; ``null`` means 另行通知 (to be announced).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calendars.timeutil import format_deadline, local_time_on, parse_deadline
from calendars.workdays import WorkCalendar

CAMPAIGN_DIR = Path(__file__).parent / "campaigns"

Program = Literal["cluster", "jingpin"]
Tier = Literal["province", "city", "county", "enterprise", "recommender"]
CaseKind = Literal["cluster_application", "jingpin_application", "recommendation", "roster"]
OffsetUnit = Literal["days", "working_days", "hours"]


class _TextDatesLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: "2026-07-32" stays text, so validation can report it
    with the file and the field instead of PyYAML failing deep inside the parser."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class CampaignFileError(ValueError):
    """A campaign file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReminderStep(_Strict):
    """One reminder before a deadline, e.g. 3 working days before, at 09:00 local time."""

    id: str
    before: int = Field(ge=0)
    unit: OffsetUnit = "days"
    # Local clock time the reminder goes out on the computed day (ignored for unit=hours).
    at: str = "09:00"
    # The last-day reminder may break quiet hours; the others wait for working hours.
    urgent: bool = False
    # "actor": whoever still has to act; "supervisor": one tier up, told who has not acted yet.
    audience: Literal["actor", "supervisor"] = "actor"


class EscalationPolicy(_Strict):
    """Who hears when the deadline passes with someone still to act, and how often again.

    Round 1 goes one tier up (county -> city, city -> province); from round ``ladder_after``
    on, the tier above that is copied too, so a city that ignores its counties' lateness is
    itself seen by the province.
    """

    first_after_hours: int = Field(default=1, ge=0)
    repeat_every_working_days: int = Field(default=2, ge=1)
    max_rounds: int = Field(default=6, ge=1)
    ladder_after: int = Field(default=3, ge=1)
    at: str = "09:30"
    # A case sitting in a pending state this long (working days) is "stuck" and escalated
    # even before the deadline; None disables it.
    stuck_after_working_days: int | None = None


class DeadlineAnchor(_Strict):
    """What a relative deadline counts from: another stage, or this case's last ``action``."""

    stage: str | None = None
    action: str | None = None

    @model_validator(mode="after")
    def _one(self) -> DeadlineAnchor:
        if (self.stage is None) == (self.action is None):
            raise ValueError("须写 {stage: 环节编号} 或 {action: 操作} 二者之一")
        return self


class RelativeDeadline(_Strict):
    """``deadline: {working_days: 5, after: {stage: publish}}`` and its kin.

    * ``after: {stage: S}``: N working days after S's deadline, or after S's completion event
      when S declares ``completed_by`` (a 公示 of 5 working days after the list is published);
    * ``before: {stage: S}``: N working days before S's deadline;
    * ``after: {action: A}``: per case, N working days after that case's last A (a returned
      application resubmitted within 5 working days of its return).

    Due at the end of the Nth working day (24:00 Asia/Shanghai) unless ``at`` gives a time.
    """

    working_days: int = Field(ge=1)
    after: DeadlineAnchor | None = None
    before: DeadlineAnchor | None = None
    at: str | None = None

    @model_validator(mode="after")
    def _check(self) -> RelativeDeadline:
        if (self.after is None) == (self.before is None):
            raise ValueError("相对截止时间须写 after 或 before 二者之一")
        if self.before is not None and self.before.stage is None:
            raise ValueError("before 只能相对另一环节：{stage: 环节编号}")
        if self.at is not None:
            try:
                hh, mm = (int(x) for x in self.at.split(":"))
                if not (0 <= hh < 24 and 0 <= mm < 60):
                    raise ValueError
            except ValueError:
                raise ValueError(f'at 应为当天时刻，例如 "17:00"（而不是 {self.at!r}）') from None
        return self

    @property
    def anchor(self) -> DeadlineAnchor:
        return self.after or self.before  # type: ignore[return-value]

    @property
    def per_case(self) -> bool:
        return self.anchor.action is not None

    def due(self, anchor_day: date, calendar: WorkCalendar) -> datetime:
        """The deadline counted from ``anchor_day`` (the anchor's last day, or the event's day)."""
        n = self.working_days if self.after is not None else -self.working_days
        day = calendar.add_working_days(anchor_day, n)
        if self.at is None:
            return local_time_on(day, 24, 0)
        hh, mm = (int(x) for x in self.at.split(":"))
        return local_time_on(day, hh, mm)

    def describe(self) -> str:
        anchor = self.anchor
        what = f"环节 {anchor.stage}" if anchor.stage else f"本案件最近一次「{anchor.action}」"
        side = "之后" if self.after is not None else "之前"
        return f"{what}{side}第 {self.working_days} 个工作日{self.at or '24:00'}"


class Stage(_Strict):
    """A 环节: who acts, on which cases, by when."""

    id: str
    name: str
    actor: Tier
    subject: CaseKind
    # Cases of ``subject`` in these states still owe an action at this stage.
    pending_states: tuple[str, ...]
    deadline: datetime | None = None
    # Written as ``deadline: {working_days: N, after|before: …}``: planned from its anchor by
    # models.deadlines, never a date in the file (``deadline`` is None then).
    relative: RelativeDeadline | None = None
    # The action on this stage's cases whose last occurrence completes the stage (the list is
    # published): stages "N working days after" this one count from it, not from the deadline.
    completed_by: str | None = None
    deadline_text: str = ""
    opens: datetime | None = None
    # Actions refused once the deadline has passed ("逾期申报系统将自动关闭").
    window_actions: tuple[str, ...] = ()
    # At the deadline, cases still in these states lapse by themselves (recorded in the audit).
    lapse_states: tuple[str, ...] = ()
    # After this instant nobody is chased any more for this stage (e.g. the province has
    # started its review); None = until every case is resolved.
    closes: datetime | None = None
    source: str = ""
    # What the people who still have to act should do, quoted in reminders.
    instructions: str = ""
    reminders: tuple[ReminderStep, ...] = ()
    escalation: EscalationPolicy | None = None

    def basis(self, due: datetime | None) -> str:
        """The notice's wording of this deadline, saying so when the province has moved it: quoted
        as is, "申报系统截止时间为2026年6月25日24:00" would contradict the 06-30 printed beside it."""
        if self.deadline_text and self.deadline is not None and due is not None and due != self.deadline:
            return f"{self.deadline_text}（原定；现已调整为{format_deadline(due)}）"
        return self.deadline_text

    @model_validator(mode="before")
    @classmethod
    def _relative_deadline(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("deadline"), dict):
            if "relative" in raw:
                raise ValueError("deadline 写成相对形式时不能再写 relative")
            raw = {**raw, "relative": raw["deadline"], "deadline": None}
        return raw

    @field_validator("deadline", "opens", "closes", mode="before")
    @classmethod
    def _parse_deadline(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, (str, date)):
            return parse_deadline(value)
        raise ValueError(f"无法识别的时间：{value!r}")

    @model_validator(mode="after")
    def _opens_before_deadline(self) -> Stage:
        if self.opens is not None and self.deadline is not None and self.opens >= self.deadline:
            raise ValueError(f"环节 {self.id} 的开放时间（opens）应早于截止时间（deadline）")
        if self.closes is not None and self.deadline is not None and self.closes < self.deadline:
            raise ValueError(f"环节 {self.id} 的停止督办时间（closes）不应早于截止时间（deadline）")
        return self

    @property
    def announced(self) -> bool:
        return self.deadline is not None


class ClusterTrack(_Strict):
    """A 省级重点产业集群 row of 附1-1: its 细分赛道 and revenue thresholds in 亿元."""

    highland: str
    cluster: str
    open: bool
    subtracks: tuple[str, ...] = ()
    # "模具、增材制造等": the list is open-ended, other subtracks of the cluster are allowed.
    open_ended: bool = False
    core_threshold: Decimal | None = None
    collaborative_threshold: Decimal | None = None


class RisingStarHighland(_Strict):
    """The 新星 column of 附1-1 per 产业高地 ("包括但不限于以下具体赛道")."""

    highland: str
    subtracks: tuple[str, ...]
    threshold: Decimal


class ClusterRules(_Strict):
    tracks: tuple[ClusterTrack, ...]
    rising_star: tuple[RisingStarHighland, ...]
    mountain_island_factor: Decimal = Decimal("0.7")
    rising_star_quota_per_city: int = 3
    x_systems: tuple[str, ...]


class JingpinCategory(_Strict):
    id: Literal["advanced", "digital", "consumer"]
    name: str
    min_sales: Decimal  # 万元, three-year average
    min_sales_mountain_island: Decimal


class JingpinRules(_Strict):
    categories: tuple[JingpinCategory, ...]
    tracks: tuple[str, ...]
    launch_from: date
    launch_to: date
    min_rd_ratio: Decimal  # percent
    city_quotas: dict[str, int]  # city code -> 名额 (附2-2)
    brand_county_extra: int = 2
    brand_counties: tuple[str, ...] = ()  # county codes; the notice names none
    soe_group_limit: int = 5
    association_limit: int = 10


class ProvinceContact(_Strict):
    role: str
    name: str
    phone: str
    email: str | None = None


# What a platform export's columns can mean; which of them a campaign's export has is data.
PlatformField = Literal[
    "number",  # 申报编号 on the platform (Case.external_id)
    "applicant",  # 申报单位 / 企业名称
    "county",  # 所在县（市、区）
    "track",  # 细分赛道 (cluster)
    "product",  # 产品名称及型号 (精品)
    "zone_type",  # 申报类型: 核心区 / 协同区 / “新星”产业群 (cluster)
    "status",  # the platform's status word, mapped by ``statuses``
    "status_at",  # when the platform recorded that status (审核时间 / 状态时间)
    "submitted_at",  # when the applicant submitted on the platform (提交时间)
]


class PlatformColumn(_Strict):
    """One column of a platform's list export, recognised like an import form's columns."""

    label: str
    aliases: tuple[str, ...] = ()
    required: bool = True


class PlatformSpec(_Strict):
    """Where the applications are really filed, and how to read its list export.

    A changed export layout or a new status word is an edit of this section, not of code.
    ``statuses`` maps each word the platform shows to a state of the campaign's application
    machine; several words may mean one state. The state names are checked against the machine
    by ``models.sync`` (this module knows no machines).
    """

    name: str
    columns: dict[PlatformField, PlatformColumn]
    statuses: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> PlatformSpec:
        if "status" not in self.columns:
            raise ValueError("platform.columns 须有 status（平台状态列）")
        if "number" not in self.columns and "applicant" not in self.columns:
            raise ValueError(
                "platform.columns 须有 number（平台编号）或 applicant（申报单位）之一，用于匹配案件"
            )
        if not self.statuses:
            raise ValueError("platform.statuses 不能为空：须列出平台的状态用语及其对应状态")
        blank = [word for word in self.statuses if not word.strip()]
        if blank:
            raise ValueError("platform.statuses 含空白的状态用语")
        return self


class CampaignSpec(_Strict):
    id: str
    program: Program
    name: str
    notice: str
    issued: date
    source: str = ""
    province_contacts: tuple[ProvinceContact, ...] = ()
    stages: tuple[Stage, ...]
    cluster: ClusterRules | None = None
    jingpin: JingpinRules | None = None
    # The provincial platform the applications are filed on; None: nothing to sync from.
    platform: PlatformSpec | None = None
    # Working hours for non-urgent mail, local time.
    working_hours: tuple[str, str] = ("08:30", "17:30")

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        ids = [s.id for s in self.stages]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"环节编号重复：{', '.join(sorted(dupes))}")
        self._check_relative_deadlines()
        if self.program == "cluster" and self.cluster is None:
            raise ValueError("program 为 cluster 的批次必须有 cluster: 规则（赛道与门槛）")
        if self.program == "jingpin" and self.jingpin is None:
            raise ValueError("program 为 jingpin 的批次必须有 jingpin: 规则（类别、门槛与名额）")
        if self.platform is not None:
            # The export must say what was applied for, or a row without a number matches nothing.
            item = "track" if self.program == "cluster" else "product"
            if "applicant" in self.platform.columns and item not in self.platform.columns:
                raise ValueError(
                    f"platform.columns 有 applicant 时须有 {item}（申报单位与{'细分赛道' if item == 'track' else '产品'}一起匹配案件）"
                )
        return self

    def _check_relative_deadlines(self) -> None:
        by_id = {s.id: s for s in self.stages}
        for stage in self.stages:
            rule = stage.relative
            if rule is None or rule.anchor.stage is None:
                continue
            if rule.anchor.stage not in by_id:
                raise ValueError(
                    f"环节 {stage.id} 的 deadline 相对的环节 {rule.anchor.stage} 不存在（已有：{'、'.join(by_id)}）"
                )
            seen = [stage.id]
            anchor: str | None = rule.anchor.stage
            while anchor is not None:
                if anchor in seen:
                    raise ValueError(f"相对截止时间循环引用：{' → '.join([*seen, anchor])}")
                seen.append(anchor)
                nxt = by_id[anchor].relative
                anchor = nxt.anchor.stage if nxt is not None else None

    def dependents(self, stage_id: str) -> list[Stage]:
        """Stages whose deadline counts from ``stage_id``'s, directly or through others, in order."""
        out: list[Stage] = []
        frontier = [stage_id]
        while frontier:
            current = frontier.pop(0)
            for s in self.stages:
                if s.relative is not None and s.relative.anchor.stage == current and s not in out:
                    out.append(s)
                    frontier.append(s.id)
        return out

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        known = "、".join(s.id for s in self.stages)
        raise KeyError(f"批次 {self.id} 没有环节 {stage_id}（已有：{known}）")

    def window_stage_for(self, action: str, subject: str) -> Stage | None:
        for stage in self.stages:
            if stage.subject == subject and action in stage.window_actions:
                return stage
        return None


def load_campaign_text(text: str, *, origin: str) -> CampaignSpec:
    """Parse and validate a campaign file's text; errors name ``origin`` and the field path."""
    try:
        raw = yaml.load(text, Loader=_TextDatesLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise CampaignFileError(f"{origin}: YAML 格式错误：{exc}") from exc
    if not isinstance(raw, dict):
        raise CampaignFileError(f"{origin}: 顶层应为映射（id、name、stages …）")
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(_path_label(raw, err["loc"])) or "（整个文件）"
            lines.append(f"  {where}: {err['msg']}")
        raise CampaignFileError(f"{origin}: 批次文件有 {len(lines)} 处错误：\n" + "\n".join(lines)) from exc


def _path_label(raw: Any, loc: tuple[Any, ...]) -> list[str]:
    """Render a pydantic error location, naming stages by id rather than list index."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            item = node[key]
            label = item.get("id") if isinstance(item, dict) else None
            parts[-1:] = [f"{parts[-1]}[{label or key}]"] if parts else [f"[{key}]"]
            node = item
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return parts


def load_campaign_file(path: str | Path) -> CampaignSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CampaignFileError(f"{path}: 无法读取：{exc.strerror}") from exc
    return load_campaign_text(text, origin=str(path))


def builtin_campaign_files() -> list[Path]:
    return sorted(CAMPAIGN_DIR.glob("*.yaml"))


def spec_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
