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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from calendars import usercache
from calendars.export_forms import ExportsSpec, export_problems
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


class ProblemAt(ValueError):
    """A rule across sections broken at one place of the file: ``loc`` is its key path as the file
    writes it (``("stages", 2, "deadline", "after", "action")``), so the error names its line and
    key like a field's own error does, not "the whole file"."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


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
    # The action's label (退回修改 for return), filled in by the campaign that checked the action
    # against its kind: people read the label, the file names the id.
    _action_label: str | None = PrivateAttr(default=None)

    @property
    def action_label(self) -> str | None:
        return self._action_label or self.action

    @property
    def labelled(self) -> bool:
        return self._action_label is not None

    def label_action(self, label: str | None) -> None:
        """Name the action as its machine labels it (set once the machine is known)."""
        self._action_label = label

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
        what = f"环节 {anchor.stage}" if anchor.stage else f"本案件最近一次「{anchor.action_label}」"
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

# The kinds whose behaviour is the engine's, one case per city (its list, its staff roster): a
# file that has them copies their definitions from the built-in files (models.campaign_check).
ENGINE_KINDS = ("recommendation", "roster")

_NAME = r"^[a-z][a-z0-9_]*$"
_PREFIX = r"^[A-Z]{2,4}$"

# What the engine does at an action of each role, on its own (FORMAT.md §3): the only actions it
# knows. A file names its actions as its notice does (``action: tuijian, role: recommend``); an
# action whose id is a role's name has that role unless it says otherwise, so the files written
# before roles read the same. ``models.machines`` answers which actions have a role.
ACTION_ROLES: dict[str, str] = {
    "submit": "提交申报（推荐名单：报送省厅）：平台同步按「提交时间」判断是否逾期；推荐名单报送后才提交的申报，"
    "告知市和省；名单报送时，名单外待决定的申报自动不予推荐",
    "resubmit": "退回后重新提交（推荐名单：重新报送）：与 submit 相同",
    "recommend": "推荐：from 是推荐单位可推荐的状态，to 起是「在推荐名单上」；只有案件的推荐单位（或省）可做；"
    "guards: [quota] 只能写在它上面",
    "not_recommend": "不予推荐：推荐名单报送时，系统对仍在它的 from（不在名单上）的申报自动执行；to 是「未推荐」",
    "withdraw_recommendation": "撤销推荐：释放所占名额；只有案件的推荐单位（或省）可做",
    "report_none": "推荐名单报送「无推荐」（只用于 recommendation）：to 是「无推荐」",
    "lapse": "逾期关闭：by: [system]，截止时系统对环节 lapse_states 中的案件自动执行；to 是「逾期关闭」状态",
    "attach": "上传签章文件（推荐函、汇总表）：须随操作给出文件",
    "correct_lapse": "纠正逾期关闭（写在 corrections 中，by: [platform]）：平台记录按时提交的，同步撤销逾期关闭",
}
# Roles the engine performs or reports as one action of a kind: a window closing tells each
# organisation of its lapsed cases once, under one action's name and its notify:.
SINGLE_ACTION_ROLES = frozenset({"lapse"})
# Roles that live in a kind's corrections:, never among the actions people are offered.
CORRECTION_ROLES = frozenset({"correct_lapse"})


def roles_text() -> str:
    """The roles and what each means, as an error message lists them."""
    return "；".join(f"{role}（{meaning}）" for role, meaning in ACTION_ROLES.items())


class TransitionSpec(_Strict):
    """One action of a machine, one line in the file:
    ``{action: submit, label: 提交申报, from: [draft], to: submitted, by: [county], guards: [window]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action: str = Field(pattern=_NAME)
    # What the engine does at it (ACTION_ROLES); omitted: the action's id where that is a role.
    role: str | None = None
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

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str | None) -> str | None:
        if role is not None and role not in ACTION_ROLES:
            raise ValueError(f"未知的作用「{role}」；可用的作用：{roles_text()}")
        return role

    @model_validator(mode="after")
    def _own_role(self) -> TransitionSpec:
        if self.action in ACTION_ROLES and self.role not in (None, self.action):
            # The audit and older files read an action named after a role as that role.
            raise ProblemAt(
                ("role",),
                f"操作编号 {self.action} 是作用的名称，只能有作用 {self.action}（而不是 {self.role}）；"
                f"请给这个操作另起编号，如 action: {self.action}_2, role: {self.role}",
            )
        return self

    @property
    def engine_role(self) -> str | None:
        """The role the engine reads: the file's ``role:``, else the id where it is a role's name."""
        if self.role is not None:
            return self.role
        return self.action if self.action in ACTION_ROLES else None


class KindSpec(_Strict):
    """A case kind: its states and the actions between them."""

    label: str
    # Case numbers: prefix + year + serial, e.g. ZX26-00001.
    prefix: str = Field(pattern=_PREFIX)
    initial: str
    states: dict[str, str]
    # States in which nothing more is expected of anyone.
    final: tuple[str, ...] = ()
    transitions: tuple[TransitionSpec, ...]
    # The engine undoing its own transition that a source of truth proved wrong.
    corrections: tuple[TransitionSpec, ...] = ()
    # The states in which a case is on its recommender's list (counted on boards and in the
    # 推荐汇总表). Omitted: every state reachable from ``recommend``'s target until the case is
    # back where a recommender decides (models.machines derives it; FORMAT.md §3).
    uses_quota: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _states_exist(self) -> KindSpec:
        known = set(self.states)
        listed = "、".join(self.states)
        if self.initial not in known:
            raise ValueError(f"initial「{self.initial}」不在 states 中（已有：{listed}）")
        for key in ("final", "uses_quota"):
            for state in getattr(self, key) or ():
                if state not in known:
                    raise ValueError(f"{key} 中的「{state}」不在 states 中（已有：{listed}）")
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
        self._check_roles()
        return self

    def _check_roles(self) -> None:
        """Each role where the engine can act on it: one action of a role from a state (the engine
        picks it by role and state), one lapse, the lapse the engine's own, corrections apart."""
        for section in ("transitions", "corrections"):
            by_state: dict[tuple[str, str], str] = {}
            by_role: dict[str, str] = {}
            for i, t in enumerate(getattr(self, section)):
                role = t.engine_role
                if role is None:
                    continue
                key = "role" if t.role is not None else "action"
                if (role in CORRECTION_ROLES) != (section == "corrections"):
                    where = "corrections" if role in CORRECTION_ROLES else "transitions"
                    raise ProblemAt(
                        (section, i, key),
                        f"作用为 {role} 的操作 {t.action} 应写在 {where} 中，而不是 {section} 中",
                    )
                if role in SINGLE_ACTION_ROLES and by_role.setdefault(role, t.action) != t.action:
                    raise ProblemAt(
                        (section, i, key),
                        f"作用 {role} 只能由一个操作编号担任（已有 {by_role[role]}，这里又是 {t.action}）；"
                        f"把两行写成同一个 action: {by_role[role]}，各写自己的 from",
                    )
                for state in t.sources:
                    other = by_state.setdefault((role, state), t.action)
                    if other != t.action:
                        raise ProblemAt(
                            (section, i, key),
                            f"状态 {state} 下已有作用为 {role} 的操作 {other}，操作 {t.action} 不能再担任同一作用"
                            "（引擎按作用和状态找到唯一的操作）",
                        )
                if role == "lapse" and tuple(t.by) != ("system",):
                    raise ProblemAt(
                        (section, i, "by"),
                        f"作用为 lapse 的操作 {t.action} 由系统在截止时执行，by 应为 [system]"
                        f"（实际为 [{', '.join(t.by)}]）",
                    )


# -- the import form of a campaign's applications ---------------------------------------------

FieldType = Literal[
    "text", "integer", "number", "percent", "date", "yes_no", "choice", "email", "phone", "county"
]


# A choice field may take its values from a column of one of the file's ``tables:`` (附1-1's
# clusters, 附件2's categories), kept where the notice puts them rather than copied into the form.


class TableChoices(_Strict):
    """``{table: categories, value: id, label: name}``: one choice a row of ``tables.<table>``."""

    table: str
    value: str
    label: str | None = None  # the column people read; the value itself when absent


ChoiceSource = TableChoices
CaseColumn = Literal["track", "category", "zone_type", "external_id", "brand_aligned"]


class TableLookup(_Strict):
    """``{table: clusters, keys: [cluster, subtracks], value: cluster}``: every value of the
    ``keys`` columns (a list column gives each item) stands for that row's ``value``."""

    table: str
    keys: tuple[str, ...] = Field(min_length=1)
    value: str


class Inference(_Strict):
    """``{field: subtrack, via: {table: clusters, keys: [subtracks], value: cluster}}``: an empty
    cell takes the value the other field's value stands for (附1-2 has no cluster column: the
    细分赛道 says which cluster)."""

    field: str
    via: TableLookup
    # The map itself, filled in from the file when it is loaded (a form reads without the file).
    values: dict[str, str] = {}


class FormField(_Strict):
    """One column of the application form, recognised by its label or any alias."""

    key: str = Field(pattern=_NAME)
    label: str
    aliases: tuple[str, ...] = ()
    type: FieldType = "text"
    required: bool = True
    # number: the unit(s) people may type after the figure (万元 in a 万元 column; nothing else).
    unit: str | tuple[str, ...] | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    # choice: the allowed values, a list or a mapping of stored value -> label shown to people;
    # each may have other spellings people type (synonyms), and values may come from a list
    # elsewhere in the file (choices_from, its entries first).
    choices: tuple[str, ...] = ()
    choice_labels: dict[str, str] = {}
    choices_from: ChoiceSource | None = None
    synonyms: dict[str, str] = {}
    # choice: words people add after the value ("人工智能产业集群" for 人工智能).
    suffixes: tuple[str, ...] = ()
    # choice: a cell that names one choice among other words is that choice ("申报核心区");
    # naming two is refused (限选1个).
    pick_one: bool = False
    # How messages call the field when its label is long (「集群赛道不在可选范围内」).
    called: str = ""
    max_length: int | None = Field(default=None, ge=1)
    # text: a regular expression the whole value must match (e.g. 统一社会信用代码), and how to say it.
    pattern: str | None = None
    pattern_hint: str = ""
    # Said in the error when the cell is empty.
    hint: str = ""
    # The value of an empty optional cell (yes_no: false).
    default: str | bool | None = None
    # Read only when this holds on the fields before it (else empty); a field whose condition
    # names a field that could not be read is not read either.
    when: Condition | None = None
    # Required except when this holds (附1-2 第4项: 人工智能、高端软件可不填).
    required_unless: Condition | None = None
    # An empty cell takes the value another field's value stands for.
    infer_from: Inference | None = None
    # Read from another field's column (one 集群名称 column: the cluster of a 核心区, the
    # 产业高地 of a 新星产业群); the field has no column of its own.
    column_of: str | None = None
    # The case's indexed column that holds the value too; ``in_attrs: false`` keeps it out of
    # the case's attributes (the eligibility rules read those).
    case_column: CaseColumn | None = None
    in_attrs: bool = True

    @model_validator(mode="before")
    @classmethod
    def _labelled_choices(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("choices"), dict):
            data = dict(data)
            data["choice_labels"] = {str(k): str(v) for k, v in data["choices"].items()}
            data["choices"] = list(data["choice_labels"])
        return data

    @model_validator(mode="after")
    def _choices(self) -> FormField:
        if self.type == "choice" and not self.choices and self.choices_from is None:
            raise ValueError(f"字段 {self.key} 的类型为 choice，须列出 choices（可选值）或 choices_from")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"字段 {self.key} 的 pattern 不是有效的正则表达式：{exc}") from None
        if self.type != "choice" and (self.choices or self.synonyms or self.choices_from):
            raise ValueError(f"字段 {self.key}：只有 type: choice 的字段可写 choices/choices_from/synonyms")
        if self.choices_from is None:
            self.check_synonyms()
        return self

    def check_synonyms(self) -> None:
        for alias, target in self.synonyms.items():
            if target not in self.choices:
                raise ValueError(f"字段 {self.key}：synonyms 中「{alias}」对应的「{target}」不在 choices 中")

    @property
    def units(self) -> tuple[str, ...]:
        if self.unit is None:
            return ()
        return (self.unit,) if isinstance(self.unit, str) else self.unit

    def choice_label(self, value: str) -> str:
        """How a stored choice is shown to people (the label the form gives it, else itself)."""
        return self.choice_labels.get(value, value)


class RecommenderSpec(_Strict):
    """Who recommends an application directly, when not its city (附2-3 推荐单位): the field that
    names it and the words of a name that make it a provincial SOE group or an association.
    ``recommender: recommender`` (the field alone) takes the words below."""

    field: str
    soe_group: tuple[str, ...] = Field(default=("集团", "控股", "国资委"), min_length=1)
    association: tuple[str, ...] = Field(default=("协会", "学会", "联合会"), min_length=1)

    def tier_of(self, name: str) -> str | None:
        """``soe_group``, ``association`` or None by the words in ``name``; an association's
        words first (浙江省企业集团协会 is an association)."""
        if any(word in name for word in self.association):
            return "association"
        if any(word in name for word in self.soe_group):
            return "soe_group"
        return None


class FormSpec(_Strict):
    """The import form: which kind it creates, which column says who applies, the fields."""

    kind: str
    # Who applies: "enterprise" (an enterprise in a county), "county" (the county itself) or
    # "county_or_park" (a county, or a park committee in it; the county field may be left empty
    # when the applicant is a county, and must be filled for a park).
    applicant_tier: Literal["enterprise", "county", "county_or_park"] = "enterprise"
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
    # The field naming who recommends the application directly, when not the city (附2-3 推荐单位:
    # a provincial SOE group or association), and the words that tell which.
    recommender: RecommenderSpec | None = None
    # How a row repeating an earlier one is named, from field keys (default: each unique field
    # with its label): "「{applicant}」申报细分赛道「{subtrack}」".
    duplicate: str = ""
    # Numbers stored as read ("260.50", "6.0" from an Excel float) instead of without trailing
    # zeros: the 2026 files' cases have always been stored so, and one campaign keeps one spelling.
    numbers_as_read: bool = False
    fields: tuple[FormField, ...] = Field(min_length=1)

    @field_validator("recommender", mode="before")
    @classmethod
    def _recommender_field(cls, value: Any) -> Any:
        return {"field": value} if isinstance(value, str) else value

    def field(self, key: str) -> FormField | None:
        return next((f for f in self.fields if f.key == key), None)

    @property
    def applicant_tier_label(self) -> str:
        """Who applies, as a reminder to a city says it (“本市暂无企业提交的申报”): the word for
        ``applicant_tier`` (a park applies within its county, so 县（市、区） covers both)."""
        return "企业" if self.applicant_tier == "enterprise" else "县（市、区）"

    def choice_label(self, key: str, value: str | None) -> str:
        """A stored value of a field as people read it (核心区 for core); itself otherwise."""
        if value is None:
            return ""
        f = self.field(key)
        return f.choice_label(value) if f is not None else value

    def column_field(self, column: str) -> FormField | None:
        """The field whose value a case's indexed column holds (zone_type, category, track …)."""
        return next((f for f in self.fields if case_column_of(f) == column), None)

    @model_validator(mode="after")
    def _keys(self) -> FormSpec:
        keys = [f.key for f in self.fields]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                # At the second one, as a duplicate stage id: the line copied and not renamed.
                raise ProblemAt(
                    ("fields", i, "key"),
                    f"字段编号重复：{key}（第 {keys.index(key) + 1} 个字段已用此编号；字段编号在申报表内须唯一）",
                )
        named = [self.applicant, self.county, *self.unique]
        named += [k for k in (self.contact_name, self.contact_phone, self.contact_email) if k]
        for key in named:
            if key not in keys:
                raise ValueError(f"表单引用的字段「{key}」不在 fields 中（已有：{'、'.join(keys)}）")
        county = self.field(self.county)
        if county is not None and county.type != "county":
            raise ValueError(f"county 指向的字段「{self.county}」的类型应为 county")
        for what, template in (("title", self.title), ("duplicate", self.duplicate)):
            for _text, name, _spec, _conv in string.Formatter().parse(template):
                if name and name not in keys:
                    raise ValueError(f"{what} 中的 {{{name}}} 不是表单字段（已有：{'、'.join(keys)}）")
        if self.recommender is not None and self.recommender.field not in keys:
            raise ValueError(
                f"recommender 指向的字段「{self.recommender.field}」不在 fields 中（已有：{'、'.join(keys)}）"
            )
        if self.recommender is not None and self.applicant_tier != "enterprise":
            raise ValueError("recommender（直接推荐单位）只用于 applicant_tier: enterprise 的申报表")
        for i, f in enumerate(self.fields):
            before = keys[:i]
            for what, cond in (("when", f.when), ("required_unless", f.required_unless)):
                if cond is not None and cond.field not in before:
                    raise ValueError(f"字段 {f.key} 的 {what} 引用的「{cond.field}」应为它之前的字段")
            if f.infer_from is not None and f.infer_from.field not in keys:
                raise ValueError(f"字段 {f.key} 的 infer_from 引用的「{f.infer_from.field}」不在 fields 中")
            if f.column_of is not None:
                owner = self.field(f.column_of)
                if owner is None or owner.column_of is not None:
                    raise ValueError(f"字段 {f.key} 的 column_of「{f.column_of}」应为有自己列的字段")
        columns = [case_column_of(f) for f in self.fields if case_column_of(f)]
        dupes = sorted({c for c in columns if c is not None and columns.count(c) > 1})
        if dupes:
            raise ValueError(f"多个字段写入同一案件列：{'、'.join(dupes)}")
        return self


def case_column_of(f: FormField) -> str | None:
    """The case column a field fills: its case_column, else track/category/external_id by key."""
    if f.case_column is not None:
        return f.case_column
    return f.key if f.key in ("track", "category", "external_id") else None


# -- eligibility rules, written as data -------------------------------------------------------

Severity = Literal["block", "in_principle", "info"]


class ListRef(_Strict):
    """``in: {field: track.subtracks}``: the allowed values are a list the case's facts hold
    (a column of the table row a ``derive:`` found), not written out in the rule."""

    field: str


class Condition(_Strict):
    """``{field: track, in: [人工智能, 高端软件]}``: true when the case's field is one of those values
    (``not_in`` for the opposite; ``equals`` for one value).

    ``field`` names a field of the case or a ``derive:`` value; ``row.column`` reads a column of a
    table row found by ``derive:``. An empty field satisfies nothing but ``empty: true`` and
    ``not_in`` (an empty value is in no list)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str
    in_: tuple[str, ...] | ListRef | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | ListRef | None = None
    equals: str | bool | None = None
    # Numbers: true when the field is at least / below this.
    at_least: Decimal | None = None
    below: Decimal | None = None
    # true: the field is empty (a lookup that found no row); false: it is filled.
    empty: bool | None = None
    # The field's value is not that of another field (a 细分赛道 of another cluster than the one named).
    differs_from: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [
            self.in_ is not None,
            self.not_in is not None,
            self.equals is not None,
            self.at_least is not None or self.below is not None,
            self.empty is not None,
            self.differs_from is not None,
        ]
        if sum(tests) > 1:
            raise ValueError(
                f"条件（field: {self.field}）只能有一种判断：in、not_in、equals、at_least/below、empty 或 differs_from"
            )
        return self

    def refs(self) -> tuple[str, ...]:
        """Every field this condition reads (for validation)."""
        lists = [x.field for x in (self.in_, self.not_in) if isinstance(x, ListRef)]
        return (self.field, *lists, *((self.differs_from,) if self.differs_from else ()))

    def holds(self, facts: dict[str, Any]) -> bool:
        value = fact(facts, self.field)
        if self.empty is not None:
            return _blank(value) == self.empty
        if _blank(value):
            return self.not_in is not None
        if self.equals is not None:
            return value == self.equals or str(value) == str(self.equals)
        if self.in_ is not None:
            return str(value) in allowed_values(self.in_, facts)
        if self.not_in is not None:
            return str(value) not in allowed_values(self.not_in, facts)
        if self.differs_from is not None:
            other = fact(facts, self.differs_from)
            return str(value) != ("" if _blank(other) else str(other))
        if self.at_least is not None or self.below is not None:
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                return False
            return (self.at_least is None or number >= self.at_least) and (
                self.below is None or number < self.below
            )
        return True


class Scope(dict[str, Any]):
    """Some names (a table row's columns, a message's {value}) over the facts beneath: only
    ``get`` is used, so the facts' derived values stay computed on demand."""

    def __init__(self, names: dict[str, Any], base: dict[str, Any]) -> None:
        super().__init__(names)
        self._base = base

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return self._base.get(key, default)


class Facts(dict[str, Any]):
    """An application's fields with its ``derive:`` values, each computed when first read: a
    list of valid choices joined from a table is only needed by the message of a failed rule."""

    def __init__(
        self,
        fields: dict[str, Any],
        derive: tuple[DeriveSpec, ...],
        tables: dict[str, tuple[dict[str, Any], ...]],
    ) -> None:
        super().__init__(fields)
        self._pending = {d.key: d for d in derive}
        self._tables = tables

    def get(self, key: str, default: Any = None) -> Any:
        pending = self._pending.pop(key, None)
        if pending is not None:
            # Popped first: a derive of a field's own key (a default) reads the field itself.
            self[key] = pending.compute(self, self._tables)
        return super().get(key, default)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == () or value == [] or value == {}


def fact(facts: dict[str, Any], ref: str) -> Any:
    """A case field or derived value, ``row.column`` reading into a table row."""
    head, _, rest = ref.partition(".")
    value = facts.get(head)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def allowed_values(allowed: tuple[str, ...] | ListRef, facts: dict[str, Any]) -> tuple[str, ...]:
    if isinstance(allowed, ListRef):
        found = fact(facts, allowed.field)
        if _blank(found):
            return ()
        return tuple(str(x) for x in (found if isinstance(found, (list, tuple)) else (found,)))
    return allowed


# ``when:``/``unless:`` take one condition or a list (when: all must hold; unless: any exempts).
Conditions = Condition | tuple[Condition, ...]


def conditions(value: Conditions | None) -> tuple[Condition, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def shown(value: Any) -> str:
    """How a fact reads in a message: lists joined with 、, numbers without trailing zeros."""
    if _blank(value):
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (list, tuple)):
        return "、".join(shown(v) for v in value)
    return str(value)


def render(template: Any, facts: dict[str, Any]) -> Any:
    """A template on the facts: ``"{track}"`` alone is the fact itself (a row, a list, a number);
    text with placeholders is text. Anything else (a number written in the file) is itself."""
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return fact(facts, whole.group(1))
    return render_text(template, facts)


def render_text(template: str, facts: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: shown(fact(facts, m.group(1))), template)


class LookupMatch(_Strict):
    """A table row matches when its ``column`` equals the case's ``field`` (or, for a list
    column, contains it)."""

    column: str
    field: str


class Lookup(_Strict):
    """``{table: clusters, match: [{column: subtracks, field: subtrack}]}``: the first row that
    matches, trying each ``match`` over the whole table before the next."""

    table: str
    match: tuple[LookupMatch, ...] = Field(min_length=1)

    def find(self, rows: tuple[dict[str, Any], ...], facts: dict[str, Any]) -> dict[str, Any] | None:
        for m in self.match:
            wanted = fact(facts, m.field)
            if _blank(wanted):
                continue
            for row in rows:
                cell = row.get(m.column)
                if isinstance(cell, (list, tuple)):
                    if str(wanted) in (str(c) for c in cell):
                        return row
                elif cell is not None and str(cell) == str(wanted):
                    return row
        return None


class Join(_Strict):
    """``{table: clusters, where: {field: open, equals: true}, item: "{cluster}：{subtracks}", sep: "；"}``:
    one text from the rows of a table (a list of the valid choices, for a message)."""

    table: str
    where: Conditions | None = None
    item: str
    sep: str = "、"


class DeriveCase(_Strict):
    when: Conditions | None = None
    value: Any


class DeriveSpec(_Strict):
    """A value computed from the case's fields before the rules run, usable in rules and messages.

    One of: ``lookup`` (a table row), ``first`` (the first filled of several fields), ``join``
    (text from a table), ``cases`` (the first whose ``when`` holds, else ``else``), ``value``;
    none: the field itself. ``default`` when the result is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str = Field(pattern=_NAME)
    lookup: Lookup | None = None
    first: tuple[str, ...] | None = None
    join: Join | None = None
    cases: tuple[DeriveCase, ...] | None = None
    else_: Any = Field(default=None, alias="else")
    value: Any = None
    default: Any = None

    @model_validator(mode="after")
    def _one(self) -> DeriveSpec:
        ops = [x is not None for x in (self.lookup, self.first, self.join, self.cases, self.value)]
        if sum(ops) > 1:
            raise ValueError(f"derive {self.key}：lookup、first、join、cases、value 只能写一个")
        if self.else_ is not None and self.cases is None:
            raise ValueError(f"derive {self.key}：else 须与 cases 一起使用")
        return self

    def compute(self, facts: dict[str, Any], tables: dict[str, tuple[dict[str, Any], ...]]) -> Any:
        if self.lookup is not None:
            result: Any = self.lookup.find(tables.get(self.lookup.table, ()), facts)
        elif self.first is not None:
            result = next((v for v in (fact(facts, r) for r in self.first) if not _blank(v)), None)
        elif self.join is not None:
            join = self.join
            rows = [r for r in tables.get(join.table, ()) if all(c.holds(r) for c in conditions(join.where))]
            result = join.sep.join(render_text(join.item, Scope(r, facts)) for r in rows)
        elif self.cases is not None:
            chosen = next((c for c in self.cases if all(w.holds(facts) for w in conditions(c.when))), None)
            result = render(chosen.value if chosen is not None else self.else_, facts)
        elif self.value is not None:
            result = render(self.value, facts)
        else:
            result = facts.get(self.key)
        return self.default if _blank(result) and self.default is not None else result


FormField.model_rebuild()
FormSpec.model_rebuild()


class ByField(_Strict):
    """A threshold that depends on another field: ``{by: category, values: {先进制造类: 800}}``."""

    by: str
    values: dict[str, Decimal]


class FieldValue(_Strict):
    """A threshold held by a field or a derived value: ``min: {field: threshold}`` (a column of
    the table row of the case's track, e.g.)."""

    field: str


Threshold = Decimal | ByField | FieldValue


class MissingSpec(_Strict):
    """What an empty field is called when the notice words it its own way:
    ``missing: {id: launch_missing, message: 未填报产品上市日期}``."""

    id: str | None = Field(default=None, pattern=_NAME)
    severity: Severity | None = None
    message: str | None = None


class EligibilityRule(_Strict):
    """One condition of the notice on one field.

    Exactly one test: ``min``/``max`` (numbers, with ``mountain_island`` for 山区海岛县),
    ``in`` (allowed values), ``from``/``to`` (dates), or ``required`` alone (must be filled).
    Without ``field`` the rule is a finding whenever ``when`` holds (a closed track).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_NAME)
    field: str | None = None
    severity: Severity = "block"
    min: Threshold | None = None
    max: Threshold | None = None
    # 山区海岛县: a factor on min (0.7 = 30% lower) or its own threshold (a number or by-table).
    mountain_island_factor: Decimal | None = None
    mountain_island_min: Threshold | None = None
    # What {basis} says when the 山区海岛县 threshold applies (a template: {limit} {threshold}).
    basis: str = "山区海岛县"
    in_: tuple[str, ...] | ListRef | None = Field(default=None, alias="in")
    # yes/no fields: the answer required (true: 须为「是」).
    equals: bool | None = None
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    # Said when the field is empty; the rule id with _missing is the finding's rule.
    required: bool = True
    missing: MissingSpec | None = None
    # Applies only when this holds / not when that holds (an exemption).
    when: Conditions | None = None
    unless: Conditions | None = None
    # A finding of this rule ends the check: the rules after it would only say the same thing
    # worse (no threshold to compare with once the track is unknown).
    stop: bool = False
    # The finding's text: {value} the case's value, {limit} the threshold in force,
    # {basis} "山区海岛县" or "", {label} the field's label, {any_field} any field or derived value.
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
        if self.field is None and (any(tests) or self.missing is not None):
            raise ValueError(
                f"规则 {self.id}：没有 field 的规则在 when 成立时即给出结论，不能写检查或 missing"
            )
        if self.field is None and self.when is None:
            raise ValueError(f"规则 {self.id}：须写 field（检查哪个字段）或 when（何时给出结论）")
        if (
            self.mountain_island_factor is not None or self.mountain_island_min is not None
        ) and self.min is None:
            raise ValueError(f"规则 {self.id}：mountain_island_factor/mountain_island_min 须与 min 一起使用")
        if self.mountain_island_factor is not None and self.mountain_island_min is not None:
            raise ValueError(f"规则 {self.id}：mountain_island_factor 与 mountain_island_min 只能写一个")
        return self

    def refs(self) -> list[str]:
        """Every field or derived value the rule reads (for validation)."""
        return [ref for _key, ref in self.refs_at()]

    def refs_at(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every field or derived value the rule reads, with the key it is written under."""
        out: list[tuple[tuple[str | int, ...], str]] = [(("field",), self.field)] if self.field else []
        for key in ("when", "unless"):
            value = getattr(self, key)
            for j, cond in enumerate(conditions(value)):
                at: tuple[str | int, ...] = (key, j) if isinstance(value, tuple) else (key,)
                out += [((*at, "field"), ref) for ref in cond.refs()]
        for key in ("min", "max", "mountain_island_min"):
            t = getattr(self, key)
            if isinstance(t, ByField):
                out.append(((key, "by"), t.by))
            elif isinstance(t, FieldValue):
                out.append(((key, "field"), t.field))
        if isinstance(self.in_, ListRef):
            out.append((("in", "field"), self.in_.field))
        return out


# -- quotas, written as data --------------------------------------------------------------------


class QuotaSpec(_Strict):
    """A 名额: how many applications one recommender may recommend.

    ``limit`` is the same for every recommender of ``tiers``; ``limits`` gives one per
    organisation code (附2-2 style), ``default`` for those not listed (none: not limited).
    ``when`` restricts the quota to some applications (e.g. only 新星). ``per: county`` counts
    the slots of the application's county instead of the recommender's (a 品牌县's extra 2),
    ``only`` limits it to those units, ``overflow: true`` lets a full quota pass to the next.
    """

    id: str = Field(pattern=_NAME)
    # For people; {recommender} is the recommending organisation's name, {unit} the name of
    # whose slots these are (the county for per: county), {limit} the limit.
    name: str
    tiers: tuple[str, ...] = ("city",)
    per: Literal["recommender", "county"] = "recommender"
    only: tuple[str, ...] | None = None
    limit: int | None = Field(default=None, ge=0)
    limits: dict[str, int] = {}
    default: int | None = Field(default=None, ge=0)
    when: Conditions | None = None
    overflow: bool = False

    @model_validator(mode="after")
    def _check(self) -> QuotaSpec:
        if self.limit is not None and (self.limits or self.default is not None):
            raise ValueError(f"名额 {self.id}：limit 与 limits/default 只能写一种")
        return self

    def limit_for(self, org_id: str) -> int | None:
        if self.limits or self.default is not None:
            return self.limits.get(org_id, self.default)
        return self.limit

    def covers(self, unit_id: str | None) -> bool:
        return self.only is None or (unit_id is not None and unit_id in self.only)


class ProvinceContact(_Strict):
    role: str
    name: str
    phone: str
    email: str | None = None


# What a platform export's columns can mean; which of them a campaign's export has is data.
# The columns of a platform export every campaign reads the same way. Any other column names
# what was applied for: a form field by its key or by the case column it fills (``track`` for
# 附1-2's 细分赛道), so a row is matched by the form's ``unique`` fields (see ``platform_column``).
PLATFORM_FIELDS = (
    "number",  # 申报编号 on the platform (Case.external_id)
    "applicant",  # 申报单位 / 企业名称 (the form's ``applicant`` field)
    "county",  # 所在县（市、区）
    "zone_type",  # 申报类型: 核心区 / 协同区 / “新星”产业群, read as the form's zone_type field
    "status",  # the platform's status word, mapped by ``statuses``
    "status_at",  # when the platform recorded that status (审核时间 / 状态时间)
    "submitted_at",  # when the applicant submitted on the platform (提交时间)
)


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
    columns: dict[str, PlatformColumn]
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
    # The provincial platform the applications are filed on; None: nothing to sync from.
    platform: PlatformSpec | None = None
    # Working hours for non-urgent mail, local time.
    working_hours: tuple[str, str] = ("08:30", "17:30")
    # The case kinds of this campaign and their state machines.
    kinds: dict[str, KindSpec] = {}
    # The application import form (the 2026 files have none yet: their importer is code that
    # reads ``cluster:``/``jingpin:`` and ``tables.clusters``).
    form: FormSpec | None = None
    # How a case's fields (its attrs keys) are called for people, where no form names them.
    labels: dict[str, str] = {}
    # The notice's tables (附1-1's clusters and thresholds), rows of columns, read by ``derive:``.
    tables: dict[str, tuple[dict[str, Any], ...]] = {}
    # Values computed from an application's fields before its rules run, in order.
    derive: tuple[DeriveSpec, ...] = ()
    eligibility: tuple[EligibilityRule, ...] = ()
    quotas: tuple[QuotaSpec, ...] = ()
    # The official forms a city sends up (附2-3 推荐汇总表, 附件3 工作人员信息汇总表), if any.
    exports: ExportsSpec = ExportsSpec()

    def facts(self, fields: dict[str, Any]) -> dict[str, Any]:
        """An application's fields with the ``derive:`` values added, as the rules see them."""
        return Facts(fields, self.derive, self.tables)

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        ids = [s.id for s in self.stages]
        for i, stage_id in enumerate(ids):
            if stage_id in ids[:i]:
                # At the second one: that is the line the author copied and forgot to rename.
                raise ProblemAt(
                    ("stages", i, "id"),
                    f"环节编号重复：{stage_id}（第 {ids.index(stage_id) + 1} 个环节已用此编号；环节编号在本文件内须唯一）",
                )
        self._check_relative_deadlines()
        for name in self.kinds:
            if not re.match(_NAME, name):
                raise ValueError(f"案件类型名「{name}」应为小写字母、数字和下划线")
        prefixes: dict[str, str] = {}
        # The engine's own kinds first: their prefixes are copied as they are, so a clash is the
        # other kind's to change.
        engine_first = sorted(self.kinds.items(), key=lambda item: item[0] not in ENGINE_KINDS)
        for name, declared in engine_first:
            other = prefixes.setdefault(declared.prefix, name)
            if other != name:
                # Two kinds numbered alike would share one serial (RC26-00001 could be either).
                raise ProblemAt(
                    ("kinds", name, "prefix"),
                    f"案件编号前缀 {declared.prefix} 已由 kinds.{other} 使用；每类案件的前缀须不同"
                    f"（已用：{'、'.join(prefixes)}）",
                )
        for i, stage in enumerate(self.stages):
            if self.kinds and stage.subject not in self.kinds:
                raise ProblemAt(
                    ("stages", i, "subject"),
                    f"环节 {stage.id} 的 subject「{stage.subject}」不在 kinds 中（已有：{'、'.join(self.kinds)}）",
                )
            kind = self.kinds.get(stage.subject)
            if kind is None:
                continue
            for key in ("pending_states", "lapse_states"):
                for state in getattr(stage, key):
                    if state not in kind.states:
                        raise ProblemAt(
                            ("stages", i, key),
                            f"环节 {stage.id} 的 {key} 中「{state}」不是「{kind.label}」的状态"
                            f"（已有：{'、'.join(kind.states)}）",
                        )
            actions = sorted({t.action for t in kind.transitions})
            for action in stage.window_actions:
                if action not in actions:
                    raise ProblemAt(
                        ("stages", i, "window_actions"),
                        f"环节 {stage.id} 的 window_actions 中「{action}」不是「{kind.label}」的操作"
                        f"（已有：{'、'.join(actions)}）",
                    )
            lapsing = {s for t in kind.transitions if t.engine_role == "lapse" for s in t.sources}
            for state in stage.lapse_states:
                if state not in lapsing:
                    # Without it nothing would lapse at the deadline, silently.
                    raise ProblemAt(
                        ("stages", i, "lapse_states"),
                        f"环节 {stage.id} 的 lapse_states 中「{state}」须是「{kind.label}」作用为 lapse 的操作"
                        f"（by: [system]）的 from 状态之一（现有：{'、'.join(sorted(lapsing)) or '无 lapse 操作'}）",
                    )
            if stage.completed_by is not None and stage.completed_by not in actions:
                # Else the stage never completes and what counts from it stays 另行通知, silently.
                raise ProblemAt(
                    ("stages", i, "completed_by"),
                    f"环节 {stage.id} 的 completed_by「{stage.completed_by}」不是「{kind.label}」的操作"
                    f"（应为 kinds.{stage.subject}.transitions 中的 action 之一：{'、'.join(actions)}）",
                )
            relative = stage.relative
            anchor = relative.anchor.action if relative is not None else None
            if relative is not None and anchor is not None and anchor not in actions:
                raise ProblemAt(
                    ("stages", i, "deadline", "after" if relative.after is not None else "before", "action"),
                    f"环节 {stage.id} 的相对截止时间指向的操作「{anchor}」不是「{kind.label}」的操作"
                    f"（应为 kinds.{stage.subject}.transitions 中的 action 之一：{'、'.join(actions)}）",
                )
            if relative is not None and anchor is not None:
                relative.anchor.label_action(next(t.label for t in kind.transitions if t.action == anchor))
        if self.form is not None:
            self._resolve_choices()
            if self.kinds and self.form.kind not in self.kinds:
                raise ValueError(f"form.kind「{self.form.kind}」不在 kinds 中")
        if self.form is None:
            # Whatever the program: applications come from somewhere.
            raise ValueError("缺少申报表 form:（每一列、类型与是否必填，见 FORMAT.md 第 4 节）")
        if self.platform is not None:
            self._check_platform(self.platform)
        return self

    def _check_platform(self, platform: PlatformSpec) -> None:
        form = self.form
        if form is None:
            raise ValueError("有 platform: 的批次须有 form:（平台导出表按申报表的字段匹配案件）")
        for key in platform.columns:
            if key not in PLATFORM_FIELDS and form.field(key) is None and form.column_field(key) is None:
                known = "、".join([*PLATFORM_FIELDS, *(f.key for f in form.fields)])
                raise ValueError(
                    f"platform.columns 中的「{key}」既不是平台列，也不是申报表字段（可用：{known}）"
                )
        if "applicant" not in platform.columns:
            return
        # The export must say what was applied for, or a row without a number matches nothing.
        missing = [k for k in self.match_fields if self.platform_column(k) is None]
        if missing:
            names = "、".join(f"{k}（{self.field_label(k)}）" for k in missing)
            raise ValueError(
                f"platform.columns 有 applicant 时须有 form.unique 中的 {names}（与申报单位一起匹配案件）"
            )

    @property
    def match_fields(self) -> tuple[str, ...]:
        """What tells one application of an applicant from another: the form's ``unique`` fields
        but the applicant (细分赛道; 产品名称及型号; 统一社会信用代码). Empty without a form."""
        if self.form is None:
            return ()
        return tuple(k for k in self.form.unique if k != self.form.applicant)

    def platform_column(self, key: str) -> str | None:
        """The platform export column holding form field ``key``: named by the key itself or by
        the case column the field fills (``track`` for 细分赛道); None if the export lacks it."""
        if self.platform is None:
            return None
        if key in self.platform.columns:
            return key
        field = self.form.field(key) if self.form is not None else None
        column = case_column_of(field) if field is not None else None
        return column if column is not None and column in self.platform.columns else None

    def _table(self, name: str) -> tuple[dict[str, Any], ...]:
        if name not in self.tables:
            raise ValueError(f"tables: 中没有表「{name}」（有：{'、'.join(self.tables) or '无'}）")
        return self.tables[name]

    def choice_source(self, source: ChoiceSource) -> dict[str, str]:
        """A list of this file a form's choices come from: value -> label."""
        rows = self._table(source.table)
        return {
            str(row[source.value]): str(row.get(source.label or source.value) or row[source.value])
            for row in rows
            if row.get(source.value) not in (None, "")
        }

    def lookup(self, via: TableLookup) -> dict[str, str]:
        """A map a form field fills an empty cell from (``infer_from``); the first row wins."""
        found: dict[str, str] = {}
        for row in self._table(via.table):
            target = row.get(via.value)
            if target in (None, ""):
                continue
            for key in via.keys:
                cell = row.get(key)
                for name in cell if isinstance(cell, (list, tuple)) else (cell,):
                    if name not in (None, ""):
                        found.setdefault(str(name), str(target))
        return found

    def _resolve_choices(self) -> None:
        """Fields with ``choices_from`` get that list's values (first) and labels, once: the
        form a reader gets is complete without the rest of the file."""
        assert self.form is not None
        fields: list[FormField] = []
        for f in self.form.fields:
            if f.infer_from is not None:
                f = f.model_copy(
                    update={
                        "infer_from": f.infer_from.model_copy(
                            update={"values": self.lookup(f.infer_from.via)}
                        )
                    }
                )
            if f.choices_from is None:
                fields.append(f)
                continue
            listed = self.choice_source(f.choices_from)
            choices = (*listed, *(c for c in f.choices if c not in listed))
            resolved = f.model_copy(
                update={"choices": choices, "choice_labels": listed | dict(f.choice_labels)}
            )
            resolved.check_synonyms()
            fields.append(resolved)
        object.__setattr__(self, "form", self.form.model_copy(update={"fields": tuple(fields)}))

    def _check_relative_deadlines(self) -> None:
        by_id = {s.id: s for s in self.stages}
        for i, stage in enumerate(self.stages):
            rule = stage.relative
            if rule is None or rule.anchor.stage is None:
                continue
            if rule.anchor.stage not in by_id:
                raise ProblemAt(
                    ("stages", i, "deadline", "after" if rule.after is not None else "before", "stage"),
                    f"环节 {stage.id} 的 deadline 相对的环节 {rule.anchor.stage} 不存在（已有：{'、'.join(by_id)}）",
                )
            seen = [stage.id]
            anchor: str | None = rule.anchor.stage
            while anchor is not None:
                if anchor in seen:
                    raise ProblemAt(
                        ("stages", i, "deadline"), f"相对截止时间循环引用：{' → '.join([*seen, anchor])}"
                    )
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
        """The one name of a case field shown to people (CLI, dashboard, findings): the form's
        label; ``labels`` only names fields the form does not have (kept by an earlier import)."""
        field = self.form.field(key) if self.form is not None else None
        if field is not None:
            return field.label
        return self.labels.get(key, key)

    def column_name(self, column: str) -> str | None:
        """What people call a case's indexed column (细分赛道 for track): the label of the form's
        field that fills it; None when the form has no such field (nothing to show)."""
        field = self.form.column_field(column) if self.form is not None else None
        return field.label if field is not None else None

    def shown_value(self, key: str, value: Any) -> Any:
        """A case field's stored value as people read it: a choice by its label (创建类 for
        create), anything else as stored."""
        if not isinstance(value, str) or self.form is None:
            return value
        return self.form.choice_label(key, value)

    def column_label(self, column: str, value: str | None) -> str:
        """A case's indexed column (zone_type, category …) as people read it: the label the
        form gives that choice (核心区 for core), else the value itself."""
        if not value:
            return ""
        field = self.form.column_field(column) if self.form is not None else None
        return field.choice_label(value) if field is not None else value

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


# The forms of a key with several (unions): pydantic names each in an error's location.
_SCALAR_MEMBERS = frozenset({"decimal", "str", "bool", "int", "float", "none"})
_UNION_MEMBERS = _SCALAR_MEMBERS | frozenset(
    {"ByField", "FieldValue", "ListRef", "Condition", "TableChoices"}
)


def load_campaign_text(text: str, *, origin: str) -> CampaignSpec:
    """Parse and validate a campaign file's text; errors name ``origin``, the line and the key."""
    raw = _load_yaml(text, origin)
    try:
        spec = CampaignSpec.model_validate(raw)
    except ValidationError as exc:
        problems = explain(text, raw, exc)
        raise CampaignFileError(
            f"{origin}: 批次文件有 {len(problems)} 处错误：\n" + "\n".join(f"  {p}" for p in problems)
        ) from exc
    spec, choices = with_choice_values(spec)
    found = reference_problems(spec) + choices
    if found:
        problems = located(text, raw, found)
        raise CampaignFileError(
            f"{origin}: 批次文件有 {len(problems)} 处错误：\n" + "\n".join(f"  {p}" for p in problems)
        )
    return spec


def located(text: str, raw: Any, found: list[tuple[tuple[Any, ...], str]]) -> list[Problem]:
    """Problems found at key paths of the file, with their lines and keys as the file writes them."""
    lines = key_lines(text)
    return [Problem(line_at(lines, loc), ".".join(_path_label(raw, loc)), msg) for loc, msg in found]


def file_warnings(text: str, spec: CampaignSpec, *, origin: str) -> list[Problem]:
    """``campaign_warnings`` of a file's spec, at their lines."""
    return located(text, _load_yaml(text, origin), campaign_warnings(spec))


def line_at(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


# Every case has these besides its form's fields (Case columns the rules and quotas may read).
CASE_COLUMNS = ("zone_type", "category", "track", "brand_aligned")
# Who recommends within a quota (a city, or a body that recommends directly to the province).
RECOMMENDER_TIERS = ("city", "county", "soe_group", "association")
# What every eligibility message may say besides the facts.
MESSAGE_WORDS = ("value", "limit", "threshold", "basis", "label", "choices", "date_from", "date_to")


def reference_problems(spec: CampaignSpec) -> list[tuple[tuple[Any, ...], str]]:
    """Names in ``derive:``, ``eligibility:`` and ``quotas:`` that name nothing: each with where
    it is written (a key path) and what it could have named."""
    out: list[tuple[tuple[Any, ...], str]] = []
    base = {f.key for f in spec.form.fields} if spec.form is not None else set(spec.labels)
    known = base | set(CASE_COLUMNS)
    where_known = "form.fields" if spec.form is not None else "labels"

    # derive keys that hold a table row (lookup:): ``row.column`` must name one of its columns.
    rows_of = {d.key: d.lookup.table for d in spec.derive if d.lookup is not None}

    def check(loc: tuple[Any, ...], ref: str, names: set[str], what: str) -> None:
        head, _, rest = ref.partition(".")
        if head not in names:
            out.append(
                (
                    loc,
                    f"{what}「{ref}」不是已知的字段（{where_known} 中的字段、derive 中在此之前的 key、"
                    f"或 {'、'.join(CASE_COLUMNS)}）",
                )
            )
            return
        table = rows_of.get(head)
        column = rest.split(".", 1)[0]
        if table is None or not column or table not in spec.tables:
            return
        have = list(dict.fromkeys(c for r in spec.tables[table] for c in r))
        if column not in have:
            # A misspelt column reads as empty on every case: the rule would never apply.
            out.append(
                (
                    loc,
                    f"{what}「{ref}」：{head} 是 derive 按表 {table} 查到的行，表 {table} 没有列「{column}」"
                    f"（有：{'、'.join(have)}）",
                )
            )

    def check_table(loc: tuple[Any, ...], table: str, columns: tuple[str, ...]) -> None:
        rows = spec.tables.get(table)
        if rows is None:
            out.append((loc, f"表「{table}」不在 tables 中（已有：{'、'.join(spec.tables) or '无'}）"))
            return
        have = {c for r in rows for c in r}
        for column in columns:
            if column not in have:
                out.append((loc, f"表「{table}」没有列「{column}」（已有：{'、'.join(sorted(have))}）"))

    for i, d in enumerate(spec.derive):
        loc = ("derive", i)
        if d.lookup is not None:
            check_table((*loc, "lookup"), d.lookup.table, tuple(m.column for m in d.lookup.match))
            for m in d.lookup.match:
                check((*loc, "lookup"), m.field, known, "match 的 field")
        if d.join is not None:
            check_table((*loc, "join"), d.join.table, ())
        for ref in d.first or ():
            check((*loc, "first"), ref, known, "first 中")
        for j, case in enumerate(d.cases or ()):
            for cond in conditions(case.when):
                for ref in cond.refs():
                    check((*loc, "cases", j, "when"), ref, known, "条件的字段")
            if isinstance(case.value, str):
                for ref in placeholders(case.value):
                    check((*loc, "cases", j, "value"), ref, known, "value 中的")
        for key in ("else_", "value"):
            template = getattr(d, key)
            if isinstance(template, str):
                for ref in placeholders(template):
                    check((*loc, key.rstrip("_")), ref, known, f"{key.rstrip('_')} 中的")
        known = known | {d.key}
    for i, rule in enumerate(spec.eligibility):
        loc = ("eligibility", i)
        for at, ref in rule.refs_at():
            check((*loc, *at), ref, known, "引用的字段")
        for key, template in (("message", rule.message), ("basis", rule.basis)):
            for ref in placeholders(template):
                if ref not in MESSAGE_WORDS:
                    check((*loc, key), ref, known, f"{key} 中的")
    for i, quota in enumerate(spec.quotas):
        for tier in quota.tiers:
            if tier not in RECOMMENDER_TIERS:
                out.append(
                    (
                        ("quotas", i, "tiers"),
                        f"「{tier}」不是推荐单位的类别（可用：{'、'.join(RECOMMENDER_TIERS)}）",
                    )
                )
        for cond in conditions(quota.when):
            for ref in cond.refs():
                check(("quotas", i, "when"), ref, known, "when 引用的字段")
        for ref in placeholders(quota.name):
            if ref not in ("recommender", "unit", "limit"):
                out.append(
                    (
                        ("quotas", i, "name"),
                        f"name 中的「{{{ref}}}」应为 {{recommender}}、{{unit}} 或 {{limit}}",
                    )
                )
    out.extend(export_problems(spec.exports, base | set(CASE_COLUMNS), where_known))
    return out


# -- choices as rules write them --------------------------------------------------------------
# A rule on a choice field compares the value a case stores (create), but people write what they
# read: the label (创建类), as the notices and FORMAT.md's own examples do. Both are accepted and
# the label is mapped to its value when the file is loaded; anything else would compare with no
# case ever, so it is refused with the field's choices.

Loc = tuple[str | int, ...]


def choice_field(spec: CampaignSpec, ref: str) -> FormField | None:
    """The form's choice field a rule's ``field:`` (or ``by:``) names, if it names one."""
    if spec.form is None or "." in ref:
        return None
    f = spec.form.field(ref) or spec.form.column_field(ref)
    return f if f is not None and f.type == "choice" else None


def choice_value(f: FormField, written: str) -> str | None:
    """The stored value a rule means by ``written``: the value itself, or the value of that label."""
    if written in f.choices:
        return written
    return next((value for value, label in f.choice_labels.items() if label == written), None)


def choices_text(f: FormField) -> str:
    return "、".join(v if f.choice_label(v) == v else f"{v}（{f.choice_label(v)}）" for v in f.choices)


def _not_a_choice(f: FormField, written: str) -> str:
    said = f"「{written}」不是字段 {f.key}（{f.label}）的选项，按它比较的条件永远不成立（可写：{choices_text(f)}）"
    target = f.synonyms.get(written)
    if target is not None:
        # Synonyms are what people type in a sheet; a rule names the choice itself.
        said += f"；「{written}」是导入时认得的其他写法（synonyms），条件中请写 {target} 或「{f.choice_label(target)}」"
    return said


class _ChoiceWords:
    """Rewrites the rules of one file with choices by their stored values, noting what is not one."""

    def __init__(self, spec: CampaignSpec) -> None:
        self.spec = spec
        self.problems: list[tuple[Loc, str]] = []

    def values(self, f: FormField, written: tuple[str, ...], loc: Loc) -> tuple[str, ...]:
        out = []
        for j, word in enumerate(written):
            value = choice_value(f, word)
            if value is None:
                self.problems.append(((*loc, j), _not_a_choice(f, word)))
            out.append(value or word)
        return tuple(out)

    def condition(self, cond: Condition, loc: Loc) -> Condition:
        f = choice_field(self.spec, cond.field)
        if f is None:
            return cond
        update: dict[str, Any] = {}
        if isinstance(cond.equals, str):
            value = choice_value(f, cond.equals)
            if value is None:
                self.problems.append(((*loc, "equals"), _not_a_choice(f, cond.equals)))
            update["equals"] = value or cond.equals
        for key, attr in (("in", "in_"), ("not_in", "not_in")):
            written = getattr(cond, attr)
            if isinstance(written, tuple):
                update[attr] = self.values(f, written, (*loc, key))
        return cond.model_copy(update=update)

    def conditions(self, value: Conditions | None, loc: Loc) -> Conditions | None:
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(self.condition(c, (*loc, j)) for j, c in enumerate(value))
        return self.condition(value, loc)

    def threshold(self, t: Threshold | None, loc: Loc) -> Threshold | None:
        if not isinstance(t, ByField):
            return t
        f = choice_field(self.spec, t.by)
        if f is None:
            return t
        values: dict[str, Decimal] = {}
        for word, limit in t.values.items():
            value = choice_value(f, word)
            if value is None:
                self.problems.append(((*loc, "values", word), _not_a_choice(f, word)))
                continue
            if value in values:
                self.problems.append(
                    (
                        (*loc, "values", word),
                        f"选项 {value}（{f.choice_label(value)}）写了两次（按值和按名称各一次）",
                    )
                )
            values[value] = limit
        return t.model_copy(update={"values": values})

    def rule(self, rule: EligibilityRule, loc: Loc) -> EligibilityRule:
        update: dict[str, Any] = {
            key: self.threshold(getattr(rule, key), (*loc, key))
            for key in ("min", "max", "mountain_island_min")
        }
        update["when"] = self.conditions(rule.when, (*loc, "when"))
        update["unless"] = self.conditions(rule.unless, (*loc, "unless"))
        f = choice_field(self.spec, rule.field) if rule.field else None
        if f is not None and isinstance(rule.in_, tuple):
            update["in_"] = self.values(f, rule.in_, (*loc, "in"))
        return rule.model_copy(update=update)

    def resolved(self) -> CampaignSpec:
        spec = self.spec
        update: dict[str, Any] = {
            "eligibility": tuple(self.rule(r, ("eligibility", i)) for i, r in enumerate(spec.eligibility)),
            "quotas": tuple(
                q.model_copy(update={"when": self.conditions(q.when, ("quotas", i, "when"))})
                for i, q in enumerate(spec.quotas)
            ),
            "derive": tuple(
                d.model_copy(
                    update={
                        "cases": tuple(
                            c.model_copy(
                                update={"when": self.conditions(c.when, ("derive", i, "cases", j, "when"))}
                            )
                            for j, c in enumerate(d.cases)
                        )
                    }
                )
                if d.cases is not None
                else d
                for i, d in enumerate(spec.derive)
            ),
        }
        if spec.form is not None:
            fields = tuple(
                f.model_copy(
                    update={
                        key: self.conditions(getattr(f, key), ("form", "fields", i, key))
                        for key in ("when", "required_unless")
                    }
                )
                for i, f in enumerate(spec.form.fields)
            )
            update["form"] = spec.form.model_copy(update={"fields": fields})
        return spec.model_copy(update=update)


def with_choice_values(spec: CampaignSpec) -> tuple[CampaignSpec, list[tuple[Loc, str]]]:
    """``spec`` with every rule's choices written as stored values (labels mapped), and the
    choices that are neither, each at its key path."""
    words = _ChoiceWords(spec)
    return words.resolved(), words.problems


def campaign_warnings(spec: CampaignSpec) -> list[tuple[Loc, str]]:
    """What is allowed but likely not meant: a by-table that leaves out a choice (those cases are
    not checked by the rule), a state no action leads to (no case can ever be in it)."""
    out: list[tuple[Loc, str]] = []
    for i, rule in enumerate(spec.eligibility):
        for key in ("min", "max", "mountain_island_min"):
            t = getattr(rule, key)
            f = choice_field(spec, t.by) if isinstance(t, ByField) else None
            if f is None or not isinstance(t, ByField):
                continue
            missing = [c for c in f.choices if c not in t.values]
            if missing:
                names = "、".join(
                    c if f.choice_label(c) == c else f"{c}（{f.choice_label(c)}）" for c in missing
                )
                out.append(
                    (
                        ("eligibility", i, key, "values"),
                        f"按 {t.by} 取值的门槛没有列出 {names}：这些申报不检查规则 {rule.id}；"
                        "若是有意不设门槛，可不理会此提示",
                    )
                )
    for name, kind in spec.kinds.items():
        reached = {kind.initial} | {t.to for t in (*kind.transitions, *kind.corrections) if t.to}
        for state, label in kind.states.items():
            if state not in reached:
                out.append(
                    (
                        ("kinds", name, "states", state),
                        f"状态 {state}（{label}）既不是 initial，也不是任何操作的 to：没有案件能进入这个状态"
                        "（是否漏写了一个操作，或某个操作的 to 写错了？）",
                    )
                )
    return out


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
        raise CampaignFileError(f"{origin}: {yaml_problem(exc, text)}") from exc
    if not isinstance(raw, dict):
        raise CampaignFileError(f"{origin}: 顶层应为映射（id、name、stages …）")
    try:
        same = json.loads(json.dumps(raw)) == raw  # e.g. a number as a key would come back as text
    except (TypeError, ValueError):
        same = False
    if same:
        usercache.write_json(entry, raw)
    return raw


def yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """A YAML syntax error as the file's maintainer reads it: line and column, the line itself,
    and what is wrong in Chinese (PyYAML's and libyaml's wordings both), where the block, quote
    or bracket it broke began."""
    problem = str(getattr(exc, "problem", None) or exc)
    mark = getattr(exc, "problem_mark", None)
    context = str(getattr(exc, "context", None) or "")
    began = getattr(exc, "context_mark", None)
    since = f"第{began.line + 1}行" if began is not None else "上文"
    opened = {
        "block collection": f"从{since}开始的列表",
        "block mapping": f"从{since}开始的一组「键: 值」",
        "flow mapping": f"从{since}开始的 {{ … }}",
        "flow sequence": f"从{since}开始的 [ … ]",
    }
    block = next((v for k, v in opened.items() if k in context), "同一层")
    if "expected '-' indicator" in problem or "expected <block end>" in problem or "expected key" in problem:
        what = (
            f"缩进不一致：这一行的缩进与{block}中的其他行不同"
            "（同一层的键须左端对齐，列表各项以同样缩进的「- 」开头；缩进只用空格）"
        )
    elif "mapping values are not allowed" in problem:
        what = (
            "此处不能写「键: 值」：检查这一行的缩进（是否比上一行多缩进了）；"
            '若这是一段含冒号的文字，要加英文双引号，如 message: "须满足：……"'
        )
    elif "cannot start any token" in problem:
        what = "此处的字符不能开始一个值：缩进请用空格而不是 Tab；以 @、`、% 开头的文字要加英文双引号"
    elif "end of stream" in problem and "quoted scalar" in context:
        what = f"{since}开始的引号没有闭合（少了另一个引号）"
    elif "',' or '}'" in problem or "',' or ']'" in problem:
        what = f"{block}没有闭合，或其中两项之间缺少英文逗号"
    elif "expected ':'" in problem:
        what = f"{since}应为「键: 值」（缺少英文冒号和空格，或上一行的引号、括号没有闭合）"
    elif "undefined alias" in problem:
        what = "引用了没有定义的锚点（*名称）：锚点 &名称 须写在引用之前，且拼写一致"
    elif "duplicate anchor" in context or "duplicate anchor" in problem:
        what = "锚点（&名称）重复：同一文件中每个锚点名称只能定义一次"
    else:
        what = f"无法解析（{problem}）"
    if mark is None:
        return f"YAML 格式错误：{what}"
    lines = text.splitlines()
    shown = f"「{lines[mark.line].strip()}」" if mark.line < len(lines) else ""
    return f"第{mark.line + 1}行第{mark.column + 1}列{shown}：YAML 格式错误：{what}"


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


def duplicate_keys(text: str, *, origin: str) -> list[Problem]:
    """Keys written twice in one mapping: YAML keeps the last silently (a stage's second
    ``deadline:`` would replace the first without a word), so validate names both lines."""
    found: list[tuple[Loc, str]] = []
    try:
        root = yaml.compose(text, Loader=_TextDatesLoader)
    except yaml.YAMLError:
        return []

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                k, line = str(key.value), key.start_mark.line + 1
                if k in first and k != "<<":
                    found.append(
                        ((*path, k), f"键 {k} 在第{first[k]}行已写过；同一处只能写一次（后写的会覆盖先写的）")
                    )
                first.setdefault(k, line)
                walk(value, (*path, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    # key_lines keeps a key's last line: the duplicate's, where the problem is named.
    return located(text, _load_yaml(text, origin), found) if found else []


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
    "string_too_short": "不能为空",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "int_parsing_size": "数字过大",
    "datetime_parsing": "应为时间，如 2026-07-03 17:30",
    "datetime_type": "应为时间，如 2026-07-03 17:30",
    "datetime_from_date_parsing": "应为时间，如 2026-07-03 17:30",
    "time_parsing": "应为时刻，如 17:30",
    "time_type": "应为时刻，如 17:30",
    "none_required": "此处应不填（null）",
    "set_type": "应为列表（[a, b] 或每行一个 - ）",
    "finite_number": "应为有限的数字",
    "decimal_max_digits": "数字位数过多",
    "decimal_max_places": "小数位数过多",
    "model_type": "应为映射（键: 值）",
    "model_attributes_type": "应为映射（键: 值）",
}


# What each word a key may be limited to means (the Literal types above), so a wrong one is
# answered with the choices and their meaning: 「应为 days（自然日）、working_days（工作日）或 hours（小时）之一」.
_WORD_MEANINGS = {
    "days": "自然日",
    "working_days": "工作日",
    "hours": "小时",
    "province": "省",
    "city": "设区市",
    "county": "县（市、区）",
    "enterprise": "企业",
    "recommender": "推荐单位",
    "county_or_park": "县（市、区）或园区",
    "actor": "应办单位",
    "supervisor": "上一级",
    "block": "不符合则不能提交",
    "in_principle": "原则上，须记录理由",
    "info": "仅提示",
    "text": "文字",
    "integer": "整数",
    "number": "数字",
    "percent": "百分比",
    "date": "日期",
    "yes_no": "是/否",
    "choice": "选项",
    "email": "邮箱",
    "phone": "电话",
    "track": "赛道",
    "category": "类别",
    "zone_type": "申报类型",
    "external_id": "平台编号",
    "brand_aligned": "品牌产品",
}


# The file's own patterns (ids, prefixes) said in words.
_PATTERN_WORDS = {
    _NAME: "应为小写英文字母开头，只含小写字母、数字和下划线，如 city_review",
    _PREFIX: "应为 2–4 个大写英文字母，如 ZX",
}


def word_meaning(word: str) -> str:
    """A word of the file format (a field type, a tier, a unit) in Chinese: number → 数字."""
    return _WORD_MEANINGS.get(word, word)


def one_of(words: list[str]) -> str:
    """「应为 a（…）、b（…）或 c（…）之一」 for the words a key may take."""
    shown = [f"{w}（{_WORD_MEANINGS[w]}）" if w in _WORD_MEANINGS else w for w in words]
    if len(shown) == 1:
        return f"应为 {shown[0]}"
    return f"应为 {'、'.join(shown[:-1])}或 {shown[-1]}之一"


def _say(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or kind == "missing" else f"，实际为「{got}」"
    if kind == "string_type" and isinstance(got, (int, float)) and not isinstance(got, bool):
        return f'应为文字：数字写成的编号、代码要加英文引号，如 "{got}"{shown}'
    if kind == "literal_error":
        return one_of(re.findall(r"'([^']*)'", str(ctx.get("expected", "")))) + shown
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"格式不符（{_PATTERN_WORDS.get(pattern, f'应匹配 {pattern}')}）{shown}"
    if kind == "greater_than_equal":
        return f"应不小于 {ctx.get('ge')}{shown}"
    if kind == "greater_than":
        return f"应大于 {ctx.get('gt')}{shown}"
    if kind == "less_than_equal":
        return f"应不大于 {ctx.get('le')}{shown}"
    if kind == "less_than":
        return f"应小于 {ctx.get('lt')}{shown}"
    if kind in ("string_too_short", "too_short") and ctx.get("min_length", 1) > 1:
        return f"至少应有 {ctx['min_length']} 项（个字）{shown}"
    if kind in ("string_too_long", "too_long"):
        return f"最多 {ctx.get('max_length')} 项（个字）{shown}"
    if kind == "enum":
        return one_of(re.findall(r"'([^']*)'", str(ctx.get("expected", "")))) + shown
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    if kind in _EXPECTED:
        return _EXPECTED[kind] + shown
    return f"不符合要求（{err['msg']}）{shown}"


def explain(text: str, raw: Any, exc: ValidationError) -> list[Problem]:
    lines = key_lines(text)
    errors = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # The file's spelling: a relative ``deadline:`` is held as ``relative``; aliases as written.
        spelled = {"relative": "deadline", "sources": "from", "in_": "in", "else_": "else"}
        loc = tuple(spelled.get(k, k) if isinstance(k, str) else k for k in loc)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ProblemAt):
            loc = (*loc, *cause.loc)
        errors.append((loc, err))
    problems: list[Problem] = []
    for loc, said in _one_form(raw, errors):
        # A rule of the whole file has no line of its own: the first key's line would point at
        # whatever the file happens to start with.
        problems.append(Problem(line_at(lines, loc) if loc else None, ".".join(_path_label(raw, loc)), said))
    return problems


def _union_member(key: Any) -> bool:
    """A name pydantic puts in an error's location for one form of a key that has several
    (``min`` is a number, ``{by: …}`` or ``{field: …}``), or for a validator: never a key a file
    writes."""
    return isinstance(key, str) and (key in _UNION_MEMBERS or "[" in key)


def _one_form(raw: Any, errors: list[tuple[tuple[Any, ...], Any]]) -> list[tuple[tuple[Any, ...], str]]:
    """Errors as the file's author reads them: where a key may take several forms, a value that
    is a mapping is told what is wrong in the form it is closest to (fewest errors); any other
    value is told every form it could take, in one problem."""
    out: list[tuple[tuple[Any, ...], str]] = []
    groups: dict[tuple[Any, ...], dict[str, list[tuple[tuple[Any, ...], Any]]]] = {}
    for loc, err in errors:
        at = next((i for i, k in enumerate(loc) if _union_member(k)), None)
        if at is None:
            out.append((loc, _say(err)))
            continue
        groups.setdefault(loc[:at], {}).setdefault(loc[at], []).append((loc[:at] + loc[at + 1 :], err))
    for base, members in groups.items():
        if len(members) == 1:  # a validator's wrapper, not a choice of forms
            out += _one_form(raw, next(iter(members.values())))
            continue
        value = _value_at(raw, base)
        if isinstance(value, (dict, list)):
            # A form the value's shape is not at all (a list is no single condition) says nothing.
            shaped = {
                m: e
                for m, e in members.items()
                if m not in _SCALAR_MEMBERS and not all(len(loc) == len(base) for loc, _err in e)
            } or members
            out += _one_form(raw, min(shaped.values(), key=len))
            continue
        heads: list[str] = []
        got = ""
        for member_errors in members.values():
            for _loc, err in member_errors:
                head, _, rest = _say(err).partition("，实际为")
                got = got or rest
                head = head.removeprefix("应为")
                if head not in heads:
                    heads.append(head)
        out.append((base, "应为" + "；或".join(heads) + (f"，实际为{got}" if got else "")))
    return out


def _value_at(raw: Any, loc: tuple[Any, ...]) -> Any:
    node = raw
    for key in loc:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def _path_label(raw: Any, loc: tuple[Any, ...]) -> list[str]:
    """Render a pydantic error location, naming stages by id rather than list index."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            item = node[key]
            label = (
                (item.get("id") or item.get("key") or item.get("action")) if isinstance(item, dict) else None
            )
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
