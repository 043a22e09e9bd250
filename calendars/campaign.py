"""Campaign schedule files: one YAML file per campaign describes its stages and rules.

A later year's batch is a new file, not new code. This module only reads and validates the
file into plain objects; it never touches the database or the clock. Deadlines are parsed the
way the notice writes them ("2026-06-25 24:00", a bare date meaning "by the end of that day")
and held as aware UTC instants; ``null`` means 另行通知 (to be announced).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calendars import usercache
from calendars.timeutil import format_deadline, local_time_on, parse_deadline
from calendars.workdays import WorkCalendar

CAMPAIGN_DIR = Path(__file__).parent / "campaigns"

# Which people a campaign concerns (contacts work on programs); free text, e.g. "cluster".
Program = str
Tier = Literal["province", "city", "county", "enterprise", "recommender"]
# A case kind is declared in the campaign file (``kinds:``); its name is an identifier.
CaseKind = str
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


# -- case kinds and their state machines ------------------------------------------------------

_NAME = r"^[a-z][a-z0-9_]*$"


class TransitionSpec(_Strict):
    """One action of a machine, one line in the file:
    ``{action: submit, label: 提交申报, from: [draft], to: submitted, by: [county], guards: [window]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action: str = Field(pattern=_NAME)
    label: str
    sources: tuple[str, ...] = Field(alias="from", min_length=1)
    # None: the case stays in its state (attaching a document).
    to: str | None = None
    # Who may do it: tiers (province, city, county, park, enterprise, soe_group, association),
    # "system" (the engine at a deadline) or "platform" (the platform sync).
    by: tuple[str, ...] = Field(min_length=1)
    reason: bool = False  # a reason must be given
    guards: tuple[str, ...] = ()
    # Who is told when it happens: applicant, county, city, recommender, province, owner.
    notify: tuple[str, ...] = ()


class KindSpec(_Strict):
    """A case kind: its states and the actions between them."""

    label: str
    # Case numbers: prefix + year + serial, e.g. ZX26-00001.
    prefix: str = Field(pattern=r"^[A-Z]{2,4}$")
    initial: str
    states: dict[str, str]
    # States in which nothing more is expected of anyone.
    final: tuple[str, ...] = ()
    transitions: tuple[TransitionSpec, ...]
    # The engine undoing its own transition that a source of truth proved wrong.
    corrections: tuple[TransitionSpec, ...] = ()

    @model_validator(mode="after")
    def _states_exist(self) -> KindSpec:
        known = set(self.states)
        listed = "、".join(self.states)
        if self.initial not in known:
            raise ValueError(f"initial「{self.initial}」不在 states 中（已有：{listed}）")
        for state in self.final:
            if state not in known:
                raise ValueError(f"final 中的「{state}」不在 states 中（已有：{listed}）")
        for t in (*self.transitions, *self.corrections):
            for state in (*t.sources, *((t.to,) if t.to else ())):
                if state not in known:
                    raise ValueError(f"操作 {t.action} 用到的状态「{state}」不在 states 中（已有：{listed}）")
        seen: dict[tuple[str, str], str] = {}
        for t in self.transitions:
            for state in t.sources:
                if (t.action, state) in seen:
                    raise ValueError(f"操作 {t.action} 在状态 {state} 下定义了两次")
                seen[(t.action, state)] = t.action
        return self


# -- the import form of a campaign's applications ---------------------------------------------

FieldType = Literal[
    "text", "integer", "number", "percent", "date", "yes_no", "choice", "email", "phone", "county"
]


class FormField(_Strict):
    """One column of the application form, recognised by its label or any alias."""

    key: str = Field(pattern=_NAME)
    label: str
    aliases: tuple[str, ...] = ()
    type: FieldType = "text"
    required: bool = True
    # number: the unit people may type after the figure (万元 in a 万元 column; nothing else).
    unit: str | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    # choice: the allowed values; each may list other spellings people type.
    choices: tuple[str, ...] = ()
    synonyms: dict[str, str] = {}
    max_length: int | None = Field(default=None, ge=1)
    # text: a regular expression the whole value must match (e.g. 统一社会信用代码), and how to say it.
    pattern: str | None = None
    pattern_hint: str = ""
    # Said in the error when the cell is empty.
    hint: str = ""

    @model_validator(mode="after")
    def _choices(self) -> FormField:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"字段 {self.key} 的类型为 choice，须列出 choices（可选值）")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"字段 {self.key} 的 pattern 不是有效的正则表达式：{exc}") from None
        if self.type != "choice" and (self.choices or self.synonyms):
            raise ValueError(f"字段 {self.key}：只有 type: choice 的字段可写 choices/synonyms")
        for alias, target in self.synonyms.items():
            if target not in self.choices:
                raise ValueError(f"字段 {self.key}：synonyms 中「{alias}」对应的「{target}」不在 choices 中")
        return self


class FormSpec(_Strict):
    """The import form: which kind it creates, which column says who applies, the fields."""

    kind: str
    # Who applies: "enterprise" (an enterprise in a county) or "county" (the county itself).
    applicant_tier: Literal["enterprise", "county"] = "enterprise"
    applicant: str  # key of the field naming the applicant
    county: str  # key of the county field (type county)
    # The case's title, from field keys: "{enterprise}：{product}".
    title: str
    # One application per these fields in a campaign (a second row or import is refused).
    unique: tuple[str, ...]
    # Fields stored in the case's indexed columns too, when present: track, category, external_id.
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    fields: tuple[FormField, ...] = Field(min_length=1)

    def field(self, key: str) -> FormField | None:
        return next((f for f in self.fields if f.key == key), None)

    @model_validator(mode="after")
    def _keys(self) -> FormSpec:
        keys = [f.key for f in self.fields]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"字段编号重复：{'、'.join(dupes)}")
        named = [self.applicant, self.county, *self.unique]
        named += [k for k in (self.contact_name, self.contact_phone, self.contact_email) if k]
        for key in named:
            if key not in keys:
                raise ValueError(f"表单引用的字段「{key}」不在 fields 中（已有：{'、'.join(keys)}）")
        county = self.field(self.county)
        if county is not None and county.type != "county":
            raise ValueError(f"county 指向的字段「{self.county}」的类型应为 county")
        for _text, name, _spec, _conv in string.Formatter().parse(self.title):
            if name and name not in keys:
                raise ValueError(f"title 中的 {{{name}}} 不是表单字段（已有：{'、'.join(keys)}）")
        return self


# -- eligibility rules, written as data -------------------------------------------------------

Severity = Literal["block", "in_principle", "info"]


class Condition(_Strict):
    """``{field: track, in: [人工智能, 高端软件]}``: true when the case's field is one of those values
    (``not_in`` for the opposite; ``equals`` for one value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None
    equals: str | bool | None = None
    # Numbers: true when the field is at least / below this.
    at_least: Decimal | None = None
    below: Decimal | None = None

    def holds(self, attrs: dict[str, Any]) -> bool:
        value = attrs.get(self.field)
        if value in (None, ""):
            return False
        if self.equals is not None:
            return value == self.equals or str(value) == str(self.equals)
        if self.in_ is not None:
            return str(value) in self.in_
        if self.not_in is not None:
            return str(value) not in self.not_in
        if self.at_least is not None or self.below is not None:
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                return False
            return (self.at_least is None or number >= self.at_least) and (
                self.below is None or number < self.below
            )
        return True


class ByField(_Strict):
    """A threshold that depends on another field: ``{by: category, values: {先进制造类: 800}}``."""

    by: str
    values: dict[str, Decimal]


class EligibilityRule(_Strict):
    """One condition of the notice on one field.

    Exactly one test: ``min``/``max`` (numbers, with ``mountain_island`` for 山区海岛县),
    ``in`` (allowed values), ``from``/``to`` (dates), or ``required`` alone (must be filled).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_NAME)
    field: str
    severity: Severity = "block"
    min: Decimal | ByField | None = None
    max: Decimal | ByField | None = None
    # 山区海岛县: a factor on min (0.7 = 30% lower) or its own threshold (a number or by-table).
    mountain_island_factor: Decimal | None = None
    mountain_island_min: Decimal | ByField | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    # yes/no fields: the answer required (true: 须为「是」).
    equals: bool | None = None
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    # Said when the field is empty; the rule id with _missing is the finding's rule.
    required: bool = True
    # Applies only when this holds / not when that holds (an exemption).
    when: Condition | None = None
    unless: Condition | None = None
    # The finding's text: {value} the case's value, {limit} the threshold in force,
    # {basis} "山区海岛县" or "", {label} the field's label.
    message: str
    source: str = ""

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _text_date(cls, value: Any) -> Any:
        return date.fromisoformat(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_test(self) -> EligibilityRule:
        tests = [
            self.min is not None or self.max is not None,
            self.in_ is not None,
            self.date_from is not None or self.date_to is not None,
            self.equals is not None,
        ]
        if sum(tests) > 1:
            raise ValueError(f"规则 {self.id} 只能有一种检查：min/max、in、equals 或 from/to")
        if (
            self.mountain_island_factor is not None or self.mountain_island_min is not None
        ) and self.min is None:
            raise ValueError(f"规则 {self.id}：mountain_island_factor/mountain_island_min 须与 min 一起使用")
        if self.mountain_island_factor is not None and self.mountain_island_min is not None:
            raise ValueError(f"规则 {self.id}：mountain_island_factor 与 mountain_island_min 只能写一个")
        return self


# -- quotas, written as data --------------------------------------------------------------------


class QuotaSpec(_Strict):
    """A 名额: how many applications one recommender may recommend.

    ``limit`` is the same for every recommender of ``tiers``; ``limits`` gives one per
    organisation code (附2-2 style), ``default`` for those not listed (none: not limited).
    ``when`` restricts the quota to some applications (e.g. only 新星).
    """

    id: str = Field(pattern=_NAME)
    name: str  # for people; {recommender} is the recommending organisation's name
    tiers: tuple[str, ...] = ("city",)
    limit: int | None = Field(default=None, ge=0)
    limits: dict[str, int] = {}
    default: int | None = Field(default=None, ge=0)
    when: Condition | None = None

    def limit_for(self, org_id: str) -> int | None:
        if self.limits:
            return self.limits.get(org_id, self.default)
        return self.limit


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
    # 附1-2 第4项 (创新平台数量) need not be filled in by applicants of these clusters.
    platforms_optional_for: tuple[str, ...] = ()


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
    # The program as people call it (roster 备注, mails); the 2026 programs have theirs built in.
    program_name: str = ""
    # Words that name the program in a roster's 备注 (default: program_name).
    program_words: tuple[str, ...] = ()
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
    # The case kinds of this campaign and their state machines.
    kinds: dict[str, KindSpec] = {}
    # The application import form, its eligibility rules and quotas, as data (a campaign without
    # ``cluster:``/``jingpin:`` rules describes its applications with these).
    form: FormSpec | None = None
    # How a case's fields (its attrs keys) are called for people, where no form names them.
    labels: dict[str, str] = {}
    eligibility: tuple[EligibilityRule, ...] = ()
    quotas: tuple[QuotaSpec, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        ids = [s.id for s in self.stages]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"环节编号重复：{', '.join(sorted(dupes))}")
        self._check_relative_deadlines()
        for name in self.kinds:
            if not re.match(_NAME, name):
                raise ValueError(f"案件类型名「{name}」应为小写字母、数字和下划线")
        for stage in self.stages:
            if self.kinds and stage.subject not in self.kinds:
                raise ValueError(
                    f"环节 {stage.id} 的 subject「{stage.subject}」不在 kinds 中（已有：{'、'.join(self.kinds)}）"
                )
            kind = self.kinds.get(stage.subject)
            if kind is not None:
                for key in ("pending_states", "lapse_states"):
                    for state in getattr(stage, key):
                        if state not in kind.states:
                            raise ValueError(
                                f"环节 {stage.id} 的 {key} 中「{state}」不是「{kind.label}」的状态"
                                f"（已有：{'、'.join(kind.states)}）"
                            )
                actions = {t.action for t in kind.transitions}
                for action in stage.window_actions:
                    if action not in actions:
                        raise ValueError(
                            f"环节 {stage.id} 的 window_actions 中「{action}」不是「{kind.label}」的操作"
                            f"（已有：{'、'.join(sorted(actions))}）"
                        )
            if stage.relative is not None:
                anchor = stage.relative.anchor
                if anchor.action is not None and kind is not None:
                    if anchor.action not in {t.action for t in kind.transitions}:
                        raise ValueError(
                            f"环节 {stage.id} 的相对截止时间指向的操作「{anchor.action}」不是「{kind.label}」的操作"
                        )
        if self.form is not None:
            if self.kinds and self.form.kind not in self.kinds:
                raise ValueError(f"form.kind「{self.form.kind}」不在 kinds 中")
            keys = {f.key for f in self.form.fields}
            for rule in self.eligibility:
                for key in (rule.field, *(c.field for c in (rule.when, rule.unless) if c)):
                    if key not in keys:
                        raise ValueError(f"资格规则 {rule.id} 引用的字段「{key}」不在 form.fields 中")
                for threshold in (rule.min, rule.max, rule.mountain_island_min):
                    if isinstance(threshold, ByField) and threshold.by not in keys:
                        raise ValueError(f"资格规则 {rule.id} 的 by「{threshold.by}」不在 form.fields 中")
            for quota in self.quotas:
                if quota.when is not None and quota.when.field not in keys:
                    raise ValueError(
                        f"名额 {quota.id} 的 when 引用的字段「{quota.when.field}」不在 form.fields 中"
                    )
        elif self.eligibility:
            raise ValueError("eligibility 规则检查的是 form 的字段：须同时写 form")
        if self.program == "cluster" and self.cluster is None and self.form is None:
            raise ValueError("program 为 cluster 的批次必须有 cluster: 规则（赛道与门槛）")
        if self.program == "jingpin" and self.jingpin is None and self.form is None:
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

    def field_label(self, key: str) -> str:
        """The one name of a case field shown to people (CLI, dashboard): the form's, else ``labels``."""
        field = self.form.field(key) if self.form is not None else None
        return field.label if field is not None else self.labels.get(key, key)

    @property
    def application_kind(self) -> str:
        """The kind applicants file (the one that is neither a city's roster nor its list)."""
        if self.form is not None:
            return self.form.kind
        for stage in self.stages:
            if stage.subject not in ("roster", "recommendation"):
                return stage.subject
        return next((k for k in self.kinds if k not in ("roster", "recommendation")), "")

    def window_stage_for(self, action: str, subject: str) -> Stage | None:
        for stage in self.stages:
            if stage.subject == subject and action in stage.window_actions:
                return stage
        return None


def load_campaign_text(text: str, *, origin: str) -> CampaignSpec:
    """Parse and validate a campaign file's text; errors name ``origin``, the line and the key."""
    raw = _load_yaml(text, origin)
    try:
        return CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        problems = explain(text, raw, exc)
        raise CampaignFileError(
            f"{origin}: 批次文件有 {len(problems)} 处错误：\n" + "\n".join(f"  {p}" for p in problems)
        ) from exc


def _load_yaml(text: str, origin: str) -> dict[str, Any]:
    # PyYAML's resolvers (Python, one regex walk per scalar) were most of what reading both
    # campaign files cost a cold `shenbao status`: the parse of a text is kept in the user's
    # cache under the text's digest (and the parser's version), so it is read back as JSON.
    entry = (
        f"campaigns/{hashlib.sha256(text.encode('utf-8')).hexdigest()[:40]}-"
        f"yaml{yaml.__version__}-textdates1.json"
    )
    cached = usercache.read_json(entry)
    if isinstance(cached, dict):
        return cached
    try:
        raw = yaml.load(text, Loader=_TextDatesLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"第{mark.line + 1}行" if mark is not None else ""
        raise CampaignFileError(f"{origin}: {line} YAML 格式错误：{exc}") from exc
    if not isinstance(raw, dict):
        raise CampaignFileError(f"{origin}: 顶层应为映射（id、name、stages …）")
    try:
        same = json.loads(json.dumps(raw)) == raw  # e.g. a number as a key would come back as text
    except (TypeError, ValueError):
        same = False
    if same:
        usercache.write_json(entry, raw)
    return raw


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a campaign file: where (line, key path) and what was expected."""

    line: int | None
    key: str
    message: str

    def where(self) -> str:
        return self.key or "（整个文件）"

    def __str__(self) -> str:
        # The key first (what a maintainer searches for), then the line, then what was expected.
        return f"{self.where()}: " + (f"第{self.line}行：" if self.line else "") + self.message


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Every key path of the YAML text to its 1-based line (lists by index), from the parser's marks."""
    out: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=_TextDatesLoader)
    except yaml.YAMLError:
        return out

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                out[(*path, k)] = key.start_mark.line + 1
                walk(value, (*path, k))
                out[(*path, k)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return out


# What pydantic's error types mean, said the way a campaign file's maintainer reads it.
_EXPECTED = {
    "missing": "缺少必填项",
    "extra_forbidden": "未知的键（拼写错误？本处不能写这个键）",
    "string_type": "应为文字",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "dict_type": "应为映射（键: 值）",
    "list_type": "应为列表（[a, b] 或每行一个 - ）",
    "tuple_type": "应为列表（[a, b] 或每行一个 - ）",
    "date_from_datetime_parsing": "应为日期，如 2026-07-03",
    "date_parsing": "应为日期，如 2026-07-03",
    "date_type": "应为日期，如 2026-07-03",
    "too_short": "不能为空",
    "model_type": "应为映射（键: 值）",
    "model_attributes_type": "应为映射（键: 值）",
}


def _say(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or kind == "missing" else f"，实际为「{got}」"
    if kind == "literal_error":
        return f"应为以下之一：{ctx.get('expected', '')}{shown}"
    if kind == "string_pattern_mismatch":
        return f"格式不符（应匹配 {ctx.get('pattern', '')}）{shown}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"应不小于 {ctx.get('ge', ctx.get('gt'))}{shown}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    if kind in _EXPECTED:
        return _EXPECTED[kind] + shown
    return f"{err['msg']}{shown}"


def explain(text: str, raw: Any, exc: ValidationError) -> list[Problem]:
    lines = key_lines(text)
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and "[" in k))
        # The file's spelling: a relative ``deadline:`` is held as ``relative``; aliases as written.
        spelled = {"relative": "deadline", "sources": "from", "in_": "in"}
        loc = tuple(spelled.get(k, k) if isinstance(k, str) else k for k in loc)
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        where = ".".join(_path_label(raw, loc))
        problems.append(Problem(line, where, _say(err)))
    return problems


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
