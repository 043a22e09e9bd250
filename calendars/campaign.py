"""Campaign schedule files: one YAML file per campaign describes its stages and rules.

A later year's batch is a new file, not new code. This module only reads and validates the
file into plain objects; it never touches the database or the clock. Deadlines are parsed the
way the notice writes them ("2026-06-25 24:00", a bare date meaning "by the end of that day")
and held as aware UTC instants; ``null`` means 另行通知 (to be announced).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calendars.timeutil import format_deadline, parse_deadline

CAMPAIGN_DIR = Path(__file__).parent / "campaigns"

Program = Literal["cluster", "jingpin"]
Tier = Literal["province", "city", "county", "enterprise", "recommender"]
CaseKind = Literal["cluster_application", "jingpin_application", "recommendation", "roster"]
OffsetUnit = Literal["days", "working_days", "hours"]


class _TextDatesLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML without implicit timestamps: "2026-07-32" stays text, so validation can report it
    with the file and the field instead of PyYAML failing deep inside the parser.

    On libyaml's parser where PyYAML has it (10x faster: every cold `shenbao status` reads
    both campaign files), with the same safe constructor and resolvers."""


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


class Stage(_Strict):
    """A 环节: who acts, on which cases, by when."""

    id: str
    name: str
    actor: Tier
    subject: CaseKind
    # Cases of ``subject`` in these states still owe an action at this stage.
    pending_states: tuple[str, ...]
    deadline: datetime | None = None
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

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        known = "、".join(s.id for s in self.stages)
        raise KeyError(f"批次 {self.id} 没有环节 {stage_id}（已有：{known}）")

    def stages_for(self, subject: str) -> list[Stage]:
        return [s for s in self.stages if s.subject == subject]

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


def reminder_offset(step: ReminderStep) -> timedelta | None:
    """The plain-time offset of an hour-based step; calendar steps need the work calendar."""
    return timedelta(hours=step.before) if step.unit == "hours" else None
