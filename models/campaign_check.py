"""``shenbao campaign validate``: everything wrong with a campaign file, before it is loaded.

The file's own structure is checked by ``calendars.campaign`` (with line numbers); here what
needs the engine: guards named by a machine exist in code, a kind the engine shares between
campaigns (``recommendation``, ``roster``) is defined as the engine runs it, the platform's
status words name states. Every problem names the line and the key and says what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from calendars.campaign import (
    ACTION_ROLES,
    ENGINE_KINDS,
    CampaignFileError,
    CampaignSpec,
    Problem,
    duplicate_keys,
    file_warnings,
    key_lines,
    line_at,
    load_campaign_text,
)
from calendars.campaign_calendar import calendar_findings, explain_findings
from calendars.workdays import WorkCalendar, load_default_calendar
from models.actions import GUARDS
from models.machines import machine_for, machine_of
from models.programs import ProgramName, builtin_programs, word_clashes
from models.reference import load_divisions

TIERS = frozenset(
    {"province", "city", "county", "park", "enterprise", "soe_group", "association", "system", "platform"}
)
TIER_WORDS = {"province": "省", "city": "设区市", "county": "县（市、区）"}
KIND_WORDS = {"recommendation": "设区市推荐名单", "roster": "工作人员信息汇总表"}
AUDIENCES = frozenset({"applicant", "county", "city", "recommender", "owner", "province"})


def _role_needs(spec: CampaignSpec, at: Callable[..., int | None]) -> list[Problem]:
    """What the campaign asks of the engine that its machines give no action for: a recommendation
    (the cities' lists) or quotas need an action of role recommend on the applications, a list
    that may go in as 无推荐 needs submit and report_none."""
    problems: list[Problem] = []
    kind = spec.application_kind
    declared = spec.kinds.get(kind)
    if declared is None:
        return problems
    roles = {t.engine_role for t in declared.transitions}
    if "recommend" not in roles:
        needs = [
            *(["推荐名单（kinds.recommendation）"] if "recommendation" in spec.kinds else []),
            *(["推荐名额（quotas）"] if spec.quotas else []),
        ]
        if needs:
            problems.append(
                Problem(
                    at("kinds", kind, "transitions"),
                    f"kinds.{kind}.transitions",
                    f"本批次有{'、'.join(needs)}，但「{declared.label}」没有作用为 recommend 的操作，"
                    "名单上永远没有申报；请给推荐操作写 role: recommend（或把它的编号写作 recommend）",
                )
            )
    if "not_recommend" not in roles and "recommendation" in spec.kinds:
        problems.append(
            Problem(
                at("kinds", kind, "transitions"),
                f"kinds.{kind}.transitions",
                f"本批次有推荐名单 recommendation，但「{declared.label}」没有作用为 not_recommend 的操作："
                "名单报送时未列入的申报无法自动记为不予推荐；请给不予推荐操作写 role: not_recommend",
            )
        )
    rec = spec.kinds.get("recommendation")
    if rec is not None:
        rec_roles = {t.engine_role for t in rec.transitions}
        for role in ("submit", "report_none"):
            if role not in rec_roles:
                problems.append(
                    Problem(
                        at("kinds", "recommendation", "transitions"),
                        "kinds.recommendation.transitions",
                        f"推荐名单须有作用为 {role} 的操作（{ACTION_ROLES[role]}）",
                    )
                )
    return problems


@dataclass(frozen=True)
class CampaignCheck:
    """A campaign file checked: its parse, what refuses it (problems), and what is allowed but
    likely not meant (warnings: the file loads, the author is told)."""

    spec: CampaignSpec | None
    problems: list[str]
    warnings: list[str]


def check_campaign_text(text: str, *, origin: str) -> tuple[CampaignSpec | None, list[str]]:
    """The parsed file and its problems (empty: it can be loaded)."""
    checked = check_campaign(text, origin=origin)
    return checked.spec, checked.problems


def check_campaign(
    text: str,
    *,
    origin: str,
    programs: Mapping[str, ProgramName] | None = None,
    calendar: WorkCalendar | None = None,
) -> CampaignCheck:
    """Everything validate says about a campaign file. ``programs``: the programs whose roster
    words this one's must not repeat (the loaded campaigns'; by default the built-in ones).
    ``calendar``: the working days its dates are judged by (calendars.campaign_calendar: a
    deadline in a year not loaded is refused, one on a day off is a warning); by default the
    packaged days, a home's own (with the years ``calendar load`` stored) where there is one."""
    try:
        spec = load_campaign_text(text, origin=origin)
    except CampaignFileError as exc:
        return CampaignCheck(None, [str(exc)], [])
    lines = key_lines(text)
    problems = duplicate_keys(text, origin=origin)
    problems += _engine_problems(spec, lines, origin, builtin_programs() if programs is None else programs)
    refused, date_warnings = explain_findings(
        calendar_findings(spec, calendar if calendar is not None else load_default_calendar()), text, origin
    )
    warnings = file_warnings(text, spec, origin=origin)
    return CampaignCheck(
        spec,
        [f"{origin}: {p}" for p in problems] + refused,
        [f"{origin}: {p}" for p in warnings] + date_warnings,
    )


def _engine_problems(
    spec: CampaignSpec, lines: dict[tuple[Any, ...], int], origin: str, programs: Mapping[str, ProgramName]
) -> list[Problem]:
    problems: list[Problem] = []

    def at(*path: object) -> int | None:
        return line_at(lines, tuple(path))

    others = [p for p in programs.values() if p.id != spec.program]
    for word, message in word_clashes(spec, others):
        if word in spec.program_words:
            written_at: tuple[Any, ...] = ("program_words", spec.program_words.index(word))
        else:  # the default word: the program's name
            written_at = ("program_name",)
        problems.append(
            Problem(
                at(*written_at),
                f"{written_at[0]}[{word}]" if len(written_at) > 1 else str(written_at[0]),
                message,
            )
        )
    problems += _quota_unit_problems(spec, at)

    kind_names = list(spec.kinds)
    for kind, declared in spec.kinds.items():
        for engine_kind in ENGINE_KINDS:
            # Every campaign has its cities' lists and rosters, declared in the file or not.
            if engine_kind not in spec.kinds and declared.prefix == machine_for(engine_kind).prefix:
                problems.append(
                    Problem(
                        at("kinds", kind, "prefix"),
                        f"kinds.{kind}.prefix",
                        f"案件编号前缀 {declared.prefix} 是引擎内置的{KIND_WORDS[engine_kind]}（{engine_kind}）的前缀，"
                        "请另选 2–4 个大写字母",
                    )
                )
    for kind, declared in spec.kinds.items():
        for i, t in enumerate(declared.transitions):
            where = f"kinds.{kind}.transitions[{t.action}]"
            # Each name a transition lists must be one the engine knows: (key, known names, what).
            for key, known, what in (
                ("guards", GUARDS, "检查"),
                ("by", TIERS, "办理方"),
                ("notify", AUDIENCES, "通知对象"),
            ):
                for name in getattr(t, key):
                    if name not in known:
                        problems.append(
                            Problem(
                                at("kinds", kind, "transitions", i, key),
                                f"{where}.{key}",
                                f"未知的{what}「{name}」（可用：{'、'.join(sorted(known))}）",
                            )
                        )
        for i, t in enumerate(declared.transitions):
            role = t.engine_role
            if kind not in ENGINE_KINDS and "quota" in t.guards and role != "recommend":
                # The engine knows the list by recommend (FORMAT.md §3): a quota on another action
                # would count cases no board, cascade or release ever sees.
                problems.append(
                    Problem(
                        at("kinds", kind, "transitions", i, "guards"),
                        f"kinds.{kind}.transitions[{t.action}].guards",
                        f"guards: [quota] 只能用于作用为 recommend 的推荐操作（{t.action} 的作用为 "
                        f"{role or '无'}）；是推荐操作的，加 role: recommend",
                    )
                )
            if kind not in ENGINE_KINDS and role == "report_none":
                problems.append(
                    Problem(
                        at("kinds", kind, "transitions", i, "role" if t.role else "action"),
                        f"kinds.{kind}.transitions[{t.action}]",
                        "作用 report_none（报送无推荐）只用于推荐名单 recommendation；申报类型中的这个操作引擎不会读到",
                    )
                )
        if kind in ENGINE_KINDS:
            engine = machine_for(kind)
            mine = machine_of(kind, declared)
            if (mine.states, mine.transitions, mine.final) != (
                engine.states,
                engine.transitions,
                engine.final,
            ):
                problems.append(
                    Problem(
                        at("kinds", kind),
                        f"kinds.{kind}",
                        f"{kind} 是引擎内置的案件类型（设区市的推荐名单/工作人员表），须与内置批次文件中的定义一致；"
                        "请从 calendars/campaigns/2026-jingpin.yaml 原样复制",
                    )
                )
    problems += _role_needs(spec, at)
    if spec.kinds:
        for i, stage in enumerate(spec.stages):
            if stage.subject not in spec.kinds:
                problems.append(
                    Problem(
                        at("stages", i, "subject"),
                        f"stages[{stage.id}].subject",
                        f"应为 kinds 中的类型之一：{'、'.join(kind_names)}",
                    )
                )
    if spec.form is None:  # the 2026 files' cluster:/jingpin: figures no longer read a file
        problems.append(Problem(None, "form", "缺少申报表 form:（字段、类型与必填），无法导入申报"))
    if spec.form is not None:
        # A field has one name on screens, its form label: a second one in labels: would drift
        # (the 2026 files had two, worded differently). labels: names fields the form lacks.
        for key in spec.labels:
            field = spec.form.field(key)
            if field is not None:
                problems.append(
                    Problem(
                        at("labels", key),
                        f"labels.{key}",
                        f"「{key}」是申报表字段，页面显示其 form 中的 label「{field.label}」；"
                        "请删去此行（labels 只写申报表中没有的字段）",
                    )
                )
    from models.sync import unknown_statuses

    for word, message in unknown_statuses(spec):
        problems.append(Problem(at("platform", "statuses", word), f"platform.statuses.{word}", message))
    return problems


def _quota_unit_problems(spec: CampaignSpec, at: Callable[..., int | None]) -> list[Problem]:
    """A quota's ``limits:`` and ``only:`` are keyed by division codes of the units they count
    (cities, or counties for ``per: county``): a name or a code of nothing would never match a
    recommender, and the unit would silently get the default."""
    divisions = load_divisions()
    problems: list[Problem] = []
    for i, quota in enumerate(spec.quotas):
        tier = "county" if quota.per == "county" or set(quota.tiers) == {"county"} else "city"
        if quota.per != "county" and not set(quota.tiers) <= {"city", "county"}:
            continue  # an SOE group or association is an organisation of its own, not a division
        word = "设区市" if tier == "city" else "县（市、区）"
        where = f"quotas[{quota.id}]"
        written = [("limits", key, key) for key in quota.limits] + [
            ("only", j, key) for j, key in enumerate(quota.only or ())
        ]
        for section, loc_key, key in written:
            unit = divisions.by_code(key) if key.isdigit() else None
            if unit is not None and unit.tier == tier:
                continue
            named = unit or (divisions.resolve(key) if not key.isdigit() else None)
            if named is not None and named.tier == tier:
                said = f'「{key}」应写{word}代码 "{named.code}"（{named.name}）：名额按单位代码'
            elif named is not None:
                said = f"「{key}」是{named.name}（{TIER_WORDS[named.tier]}）的代码或名称，本名额按{word}计，应写{word}代码"
            else:
                said = f"「{key}」不是{word}代码（代码见 models/data/zhejiang.yaml"
                if tier == "city":
                    said += "：" + "、".join(f"{c.code} {c.name}" for c in divisions.cities)
                said += "）"
            problems.append(Problem(at("quotas", i, section, loc_key), f"{where}.{section}", said))
    return problems
