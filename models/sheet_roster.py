"""工作人员信息汇总表 (2026: 附件3, + 电子邮箱): the people of a city and its counties, per program.

The columns' words and the programs a 备注 may name are the campaign files' (RosterWords): a
city filling in the staff form a loaded file declares (``exports: roster:``) imports it as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache

from calendars.campaign import CampaignSpec
from models.programs import ALL_PROGRAMS_WORDS, ProgramName, builtin_programs, builtin_specs, programs_of
from models.sheet_reading import (
    CellValue,
    Column,
    ImportProblem,
    PathLike,
    _as_text,
    _header_key,
    _nfkc,
    read_sheet,
)
from models.sheet_values import (
    _Bad,
    _email,
    _finish,
    _norm_name,
    _phone,
    _RowReader,
    _text_value,
)

_BOTH_WORDS = ALL_PROGRAMS_WORDS


def _sms_mobile(value: CellValue) -> str:
    phone = _phone(value)
    if "-" in phone.normalized:
        raise _Bad(f"短信号码须为手机号：{phone.display}")
    return phone.normalized


def _robot_name(value: CellValue) -> str:
    name = _text_value(value)
    if len(name) > 60:
        raise _Bad(f"钉钉群机器人名称过长（最多 60 字）：{name[:20]}…")
    return name


def _prefers(value: CellValue) -> str:
    shown = _text_value(value)
    word = re.sub(r"\s+", "", _nfkc(shown))
    if word.lower() in ("email", "zzd", "sms", "robot"):
        return word.lower()
    if word in _PREFERS:
        return _PREFERS[word]
    raise _Bad(f"接收方式应为 邮件、浙政钉、短信 或 钉钉群，收到：{shown}")


def _programs_parser(programs: Mapping[str, ProgramName]) -> Callable[[CellValue], frozenset[str]]:
    """The 备注 column: the programs it names, by the words each campaign file gives its program."""
    names = "、".join(p.name for p in programs.values())
    # The loaded programs by name, so a city sees what it may write (a third campaign's included).
    expected = f"已加载的工作类别：{names}；可填一项或多项（用、分隔），都负责可填「全部」"

    def parse(value: CellValue) -> frozenset[str]:
        shown = _as_text(value)
        tokens = [t for t in re.split(r"[、,/;\s+&和及与]+", _nfkc(shown)) if t]
        found: set[str] = set()
        for token in tokens:
            if any(w in token for w in _BOTH_WORDS):
                found |= set(programs)
                continue
            named = next((p.id for p in programs.values() if any(w in token for w in p.words)), None)
            if named is None:
                where = shown if token == _nfkc(shown).strip() else f"{shown} 中的「{token}」"
                raise _Bad(f"无法识别的工作类别：{where}（{expected}）")
            found.add(named)
        if not found:
            raise _Bad(f"无法识别的工作类别：{shown}（{expected}）")
        return frozenset(found)

    return parse


# --------------------------------------------------------------------------------------------
# 附件3 工作人员信息汇总表 (+ 电子邮箱)
# --------------------------------------------------------------------------------------------

# The columns any roster has, by the words people use in any year. What a notice's own form calls
# them comes from the campaign files (RosterWords): the 备注 column's label is made of the loaded
# programs' names, and every header an ``exports: roster:`` declares is one more alias.
_ROSTER_COLUMNS: tuple[Column, ...] = (
    Column(
        "org",
        "市、县(市、区)",
        ("市县", "市、县", "县(市、区)", "地区", "单位", "单位名称", "所在地区", "所属单位"),
    ),
    Column("department", "处室/科室", ("处室", "科室", "部门", "处(科)室"), required=False),
    Column("name", "姓名", ("人员姓名", "工作人员", "联系人")),
    Column("title", "职务", ("职位", "职务/职称"), required=False),
    Column(
        "mobile",
        "手机号码(浙政钉号码)",
        ("手机号码", "手机", "手机号", "浙政钉号码", "浙政钉", "联系电话", "电话"),
    ),
    Column("programs", "备注", ("项目", "工作类别", "所属工作", "类别", "负责工作")),
    Column("email", "电子邮箱", ("邮箱", "电子邮件", "email", "e-mail", "邮件地址", "邮箱地址")),
    # Optional channels beside email and 浙政钉 (issue 11): a directory may say them.
    Column("sms", "短信号码", ("短信手机", "短信", "短信手机号"), required=False),
    Column("robot", "钉钉群机器人", ("群机器人", "工作群机器人", "钉钉群"), required=False),
    Column("prefers", "接收方式", ("通知方式", "首选渠道", "提醒方式"), required=False),
)

# An ``exports: roster:`` column's field (calendars/export_forms.ROSTER_FIELDS) → the column read
# back; the others have the same name.
_COLUMN_OF_FIELD = {"program": "programs"}


@dataclass(frozen=True)
class RosterWords:
    """The words a roster is read by, all from the campaign files loaded: the programs a 备注 may
    name, and the headers their official forms (``exports: roster:``) give each column."""

    programs: Mapping[str, ProgramName]
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # column key → headers

    def columns(self) -> tuple[Column, ...]:
        # A header a file declares for one column is never another's everyday word: a form whose
        # 处室 column is headed 单位 must not have it read as the 市、县 column.
        declared_for = {_header_key(h): key for key, hs in self.headers.items() for h in hs}
        out = []
        for column in _ROSTER_COLUMNS:
            label = column.label
            if column.key == "programs" and self.programs:
                # 备注(集群遴选/制造精品) in 2026: the form asks which of the programs a person works on.
                label = f"{column.label}({'/'.join(p.name for p in self.programs.values())})"
            everyday = (
                a
                for a in (column.label, *column.aliases)
                if declared_for.get(_header_key(a), column.key) == column.key
            )
            declared = self.headers.get(column.key, ())
            aliases = tuple(dict.fromkeys(a for a in (*declared, *everyday) if a != label))
            out.append(replace(column, label=label, aliases=aliases))
        return tuple(out)


def roster_words(
    specs: Iterable[CampaignSpec], programs: Mapping[str, ProgramName] | None = None
) -> RosterWords:
    """``programs``: by default those the ``specs`` name (models.imports.stored_programs adds the
    built-in ones and keeps their names)."""
    specs = list(specs)
    headers: dict[str, list[str]] = {}
    for spec in specs:
        form = spec.exports.roster
        for rc in form.columns if form is not None else ():
            headers.setdefault(_COLUMN_OF_FIELD.get(rc.field, rc.field), []).append(rc.header)
    return RosterWords(
        programs if programs is not None else programs_of(specs),
        {key: tuple(dict.fromkeys(h)) for key, h in headers.items()},
    )


@cache
def builtin_roster_words() -> RosterWords:
    return roster_words(builtin_specs(), builtin_programs())


# 接收方式 as people write it → the channel (notifications/channels/base.py names them)
_PREFERS = {
    "邮件": "email",
    "邮箱": "email",
    "电子邮件": "email",
    "浙政钉": "zzd",
    "钉钉": "zzd",
    "工作通知": "zzd",
    "短信": "sms",
    "钉钉群": "robot",
    "群机器人": "robot",
    "钉钉群机器人": "robot",
    "工作群": "robot",
}


@dataclass(frozen=True, slots=True)
class RosterRow:
    row: int  # row number in the file, as Excel shows it
    org: str  # 市、县(市、区) as typed: 杭州市 / 西湖区 / 省经信厅 / a park, SOE group or association
    department: str | None
    name: str
    title: str | None
    mobile: str  # normalised: 13812345678 or 0571-87058343
    mobile_display: str  # as typed
    programs: frozenset[str]  # program ids of the loaded campaigns (stored_programs), never empty
    email: str
    sms_mobile: str = ""  # 短信号码: an enterprise contact's mobile for SMS, 11 digits
    robot: str = ""  # 钉钉群机器人: the name of a work group's robot configured in settings
    prefers: str = "email"  # 接收方式: email | zzd | sms | robot

    @property
    def zzd_mobile(self) -> str:
        """The column is 手机号码（浙政钉号码）: a mobile is the 浙政钉 account; a landline is none."""
        return "" if "-" in self.mobile else self.mobile


def parse_roster(
    path: PathLike, *, sheet_name: str | None = None, words: RosterWords | None = None
) -> list[RosterRow]:
    """``words``: the campaigns' words for the columns and the programs a 备注 may name (those of
    the campaigns loaded, models.imports.stored_roster_words; by default the built-in campaign
    files'); 「全部」 means all of the programs."""
    words = words or builtin_roster_words()
    programs = words.programs
    program_label = {p.id: p.name for p in programs.values()}
    _programs = _programs_parser(programs)
    either = "」或「".join(program_label.values())
    sheet = read_sheet(path, words.columns(), sheet_name=sheet_name)
    problems: list[ImportProblem] = []
    rows: list[RosterRow] = []
    for row in sheet.rows:
        r = _RowReader(sheet, row, problems)
        org = r.get("org", _text_value)
        department = r.get("department", _text_value, required=False)
        name = r.get("name", _text_value)
        title = r.get("title", _text_value, required=False)
        phone = r.get("mobile", _phone)
        named = r.get("programs", _programs, empty_message=f"须注明「{either}」（都负责可填「全部」）")
        email = r.get("email", _email)
        sms = r.get("sms", _sms_mobile, required=False, default="")
        robot = r.get("robot", _robot_name, required=False, default="")
        prefers = r.get("prefers", _prefers, required=False, default="email")
        has = {
            "sms": bool(sms),
            "robot": bool(robot),
            "zzd": r.ok and "-" not in phone.normalized,
            "email": True,
        }
        if isinstance(prefers, str) and not has.get(prefers, True):
            r.problem("prefers", f"接收方式为「{prefers}」，但本行没有该渠道的号码或群机器人")
        if r.ok:
            rows.append(
                RosterRow(
                    row=row.number,
                    org=org,
                    department=department,
                    name=name,
                    title=title,
                    mobile=phone.normalized,
                    mobile_display=phone.display,
                    programs=named,
                    email=email,
                    sms_mobile=sms,
                    robot=robot,
                    prefers=prefers,
                )
            )

    # Same person listed twice for the same organisation and program: one row per program each.
    seen: dict[tuple[str, str, str], RosterRow] = {}
    for rr in rows:
        for program in sorted(rr.programs):
            k = (_norm_name(rr.name), _norm_name(rr.org), program)
            if k in seen:
                problems.append(
                    ImportProblem(
                        sheet.file,
                        rr.row,
                        sheet.label("name"),
                        f"「{rr.name}」（{rr.org}，{program_label.get(program, program)}）与第{seen[k].row}行重复",
                    )
                )
            else:
                seen[k] = rr
    # One mailbox for two different people would send one person's reminders to the other.
    by_email: dict[str, RosterRow] = {}
    for rr in rows:
        first = by_email.setdefault(rr.email.lower(), rr)
        if first is not rr and _norm_name(first.name) != _norm_name(rr.name):
            problems.append(
                ImportProblem(
                    sheet.file,
                    rr.row,
                    sheet.label("email"),
                    f"邮箱 {rr.email} 已用于第{first.row}行的「{first.name}」，不能再用于「{rr.name}」",
                )
            )
    return _finish(problems, rows)
