"""The official forms a city sends up the tiers, as a campaign file declares them (``exports:``).

A notice prints its own forms: the 2026 精品 notice's 附2-3 推荐汇总表 (one line per recommended
product, sealed by the city) and its 附件3 工作人员信息汇总表. What each form is called, its
columns and the notes under it are the notice's words, so they are data of the campaign file;
``dashboard/exports.py`` lays any of them out the same way (fonts, borders, print setup).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

# What a roster column can show: a contact of a city or county and the program it works on.
ROSTER_FIELDS = ("org", "department", "name", "title", "mobile", "email", "program")


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SummaryColumn(_Strict):
    """One column of a recommendation summary: a form field of the application, or a template
    (``"{n}"`` the line's number)."""

    header: str
    field: str | None = None
    value: str | None = None
    # A choice field as people read it (先进制造类), not as stored (advanced).
    label: bool = False
    width: float = Field(default=16, gt=0)

    @model_validator(mode="after")
    def _one(self) -> SummaryColumn:
        if (self.field is None) == (self.value is None):
            raise ValueError(f'列「{self.header}」须写 field（申报表字段）或 value（如 "{{n}}" 序号）之一')
        return self


class RecommendationSummary(_Strict):
    """附2-3-like: the applications on a city's recommendation list, one line each."""

    annex: str
    title: str  # {year}: the notice's year
    sheet: str = "推荐汇总表"
    # The line under the title (填报单位（盖章）：…); {city}: the city's name.
    heading: str
    columns: tuple[SummaryColumn, ...] = Field(min_length=1)
    # Lines under the table; {filler} and {phone}: the city's contact for this program.
    footer: tuple[str, ...] = ()
    note: str = ""


class RosterColumn(_Strict):
    header: str
    field: str
    width: float = Field(default=16, gt=0)


class RosterForm(_Strict):
    """附件3-like: the city's and its counties' contacts who work on the campaign's program."""

    annex: str
    title: str
    sheet: str = ""  # default: the title
    heading: str  # the line under the title (设区市：{city})
    columns: tuple[RosterColumn, ...] = Field(min_length=1)
    notes: tuple[str, ...] = ()


class ExportsSpec(_Strict):
    recommendation_summary: RecommendationSummary | None = None
    roster: RosterForm | None = None

    def listed(self, *, year: int) -> list[dict[str, Any]]:
        """The forms declared, as ``campaign show`` and ``campaign form`` tell them: which form,
        its annex, title (``{year}`` filled in) and column headers."""
        out: list[dict[str, Any]] = []
        for key, form in (("recommendation_summary", self.recommendation_summary), ("roster", self.roster)):
            if form is None:
                continue
            out.append(
                {
                    "form": key,
                    "name": EXPORT_NAMES[key],
                    "annex": form.annex,
                    "title": PLACEHOLDER.sub(
                        lambda m: str(year) if m.group(1) == "year" else m.group(0), form.title
                    ),
                    "columns": [{"header": c.header, "field": c.field} for c in form.columns],
                }
            )
        return out


# What each form of ``exports:`` is, in the words of the dashboard's 导出.
EXPORT_NAMES = {"recommendation_summary": "推荐汇总表", "roster": "工作人员表"}


def export_problems(
    exports: ExportsSpec, fields: set[str], where: str
) -> list[tuple[tuple[object, ...], str]]:
    """Names in ``exports:`` that name nothing, each with its key path; ``fields`` are the
    application's fields a summary column may show (``where`` says where they are written)."""
    out: list[tuple[tuple[object, ...], str]] = []
    summary = exports.recommendation_summary
    if summary is not None:
        loc = ("exports", "recommendation_summary")
        for i, column in enumerate(summary.columns):
            if column.field is not None and column.field not in fields:
                out.append(
                    (
                        (*loc, "columns", i, "field"),
                        f"列「{column.header}」的 field「{column.field}」不是申报表的字段"
                        f"（{where} 中的 key：{'、'.join(sorted(fields))}）",
                    )
                )
            for ref in placeholders(column.value or ""):
                if ref != "n" and ref not in fields:
                    out.append(
                        (
                            (*loc, "columns", i, "value"),
                            f"列「{column.header}」的 value 中「{{{ref}}}」应为 {{n}}（序号）或申报表的字段",
                        )
                    )
        for key, allowed, text in (
            ("title", ("year",), (summary.title,)),
            ("heading", ("city",), (summary.heading,)),
            ("footer", ("filler", "phone", "city"), summary.footer),
        ):
            for line in text:
                for ref in placeholders(line):
                    if ref not in allowed:
                        out.append(
                            (
                                (*loc, key),
                                f"{key} 中的「{{{ref}}}」应为 {'、'.join('{' + a + '}' for a in allowed)}",
                            )
                        )
    roster = exports.roster
    if roster is not None:
        loc = ("exports", "roster")
        for i, rc in enumerate(roster.columns):
            if rc.field not in ROSTER_FIELDS:
                out.append(
                    (
                        (*loc, "columns", i, "field"),
                        f"列「{rc.header}」的 field「{rc.field}」应为联系人的 {'、'.join(ROSTER_FIELDS)} 之一"
                        "（program：工作类别的中文名）",
                    )
                )
        for ref in placeholders(roster.heading):
            if ref != "city":
                out.append(((*loc, "heading"), f"heading 中的「{{{ref}}}」应为 {{city}}"))
    return out
