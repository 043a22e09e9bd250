"""Eligibility checks from the notice, run when an application is submitted.

Each check yields a finding with a severity:
- ``block``: the notice leaves no room (a closed track, a launch date outside the window, sales
  below the threshold); the action is refused.
- ``in_principle``: the notice says 原则上; a reviewer may proceed with a recorded reason
  (an override), never silently.
- ``info``: worth showing, needs nothing (a 新星 track not in the "包括但不限于" list).
Pure: the case's fields and the campaign rules in, findings out. The rules are the campaign
file's ``eligibility:`` lines (FORMAT.md 第 5 节), for every campaign the same engine: no
notice's thresholds or tracks are written here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from calendars.campaign import (
    ByField,
    CampaignSpec,
    EligibilityRule,
    FieldValue,
    MissingSpec,
    Scope,
    Threshold,
    allowed_values,
    conditions,
    fact,
    render_text,
)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # block | in_principle | info
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def application_fields(
    attrs: dict[str, Any], *, zone_type: str | None = None, category: str | None = None, **columns: Any
) -> dict[str, Any]:
    """What the rules read of an application: its fields, and the case columns the importer
    keeps beside them (申报类型, 产品类别, 品牌产品) where the fields do not say them."""
    out = dict(attrs)
    for key, value in (("zone_type", zone_type), ("category", category), *columns.items()):
        if out.get(key) in (None, "") and value is not None:
            out[key] = value
    return out


def findings_for(
    spec: CampaignSpec,
    kind: str,
    attrs: dict[str, Any],
    *,
    zone_type: str | None,
    category: str | None,
    mountain_island: bool,
) -> list[Finding]:
    if kind != spec.application_kind or not spec.eligibility:
        return []
    fields = application_fields(attrs, zone_type=zone_type, category=category)
    return rule_findings(spec, fields, mountain_island=mountain_island)


def _threshold(value: Threshold | None, facts: dict[str, Any]) -> Decimal | None:
    if isinstance(value, ByField):
        return value.values.get(str(fact(facts, value.by) or ""))
    if isinstance(value, FieldValue):
        return _dec(fact(facts, value.field))
    return value


def _applies(rule: EligibilityRule, facts: dict[str, Any]) -> bool:
    if not all(c.holds(facts) for c in conditions(rule.when)):
        return False
    return not any(c.holds(facts) for c in conditions(rule.unless))


def rule_findings(spec: CampaignSpec, attrs: dict[str, Any], *, mountain_island: bool) -> list[Finding]:
    """The campaign file's ``eligibility:`` rules on one application's fields (with the
    ``derive:`` values computed first)."""
    facts = spec.facts(attrs)
    out: list[Finding] = []
    for rule in spec.eligibility:
        if not _applies(rule, facts):
            continue
        finding = _finding(spec, rule, facts, mountain_island=mountain_island)
        if finding is not None:
            out.append(finding)
            if rule.stop:
                break
    return out


def _finding(
    spec: CampaignSpec, rule: EligibilityRule, facts: dict[str, Any], *, mountain_island: bool
) -> Finding | None:
    source = f"（{rule.source}）" if rule.source else ""
    if rule.field is None:  # a finding whenever the rule applies
        return Finding(rule.id, rule.severity, render_text(rule.message, facts) + source)
    label = spec.field_label(rule.field)
    raw = fact(facts, rule.field)
    if raw in (None, ""):
        if not rule.required:
            return None
        missing = rule.missing or MissingSpec()
        text = (
            render_text(missing.message, Scope({"value": "", "label": label}, facts))
            if missing.message is not None
            else f"未填报「{label}」{source}"
        )
        return Finding(missing.id or f"{rule.id}_missing", missing.severity or rule.severity, text)
    words: dict[str, Any] = {"label": label, "limit": "", "threshold": "", "basis": ""}
    failed = False
    if rule.min is not None or rule.max is not None:
        value = _dec(raw)
        if value is None:
            return Finding(rule.id, rule.severity, f"「{label}」应为数字，填报为「{raw}」")
        low = base = _threshold(rule.min, facts)
        if mountain_island and low is not None:
            if rule.mountain_island_factor is not None:
                low = low * rule.mountain_island_factor
                words["basis"] = rule.basis
            elif rule.mountain_island_min is not None:
                low = _threshold(rule.mountain_island_min, facts)
                words["basis"] = rule.basis
        high = _threshold(rule.max, facts)
        if low is not None and value < low:
            failed, words["limit"], words["threshold"] = True, low, base
        elif high is not None and value > high:
            failed, words["limit"], words["threshold"] = True, high, high
        words["value"] = value
    elif rule.in_ is not None:
        allowed = allowed_values(rule.in_, facts)
        failed, words["value"], words["choices"] = str(raw) not in allowed, str(raw), "、".join(allowed)
    elif rule.equals is not None:
        failed = bool(raw) != rule.equals
        words["value"] = "是" if raw is True else "否" if raw is False else str(raw)
    elif rule.date_from is not None or rule.date_to is not None:
        day = date.fromisoformat(str(raw)[:10])
        failed = (rule.date_from is not None and day < rule.date_from) or (
            rule.date_to is not None and day > rule.date_to
        )
        words["value"] = f"{day:%Y年%-m月%-d日}"
    else:
        return None
    if not failed:
        return None
    words["date_from"] = f"{rule.date_from:%Y年%-m月%-d日}" if rule.date_from else ""
    words["date_to"] = f"{rule.date_to:%Y年%-m月%-d日}" if rule.date_to else ""
    context = Scope(words, facts)
    if words["basis"]:
        context["basis"] = render_text(rule.basis, context)
    return Finding(rule.id, rule.severity, render_text(rule.message, context) + source)


def case_findings(session: Any, spec: CampaignSpec, case: Any) -> list[Finding]:
    """The findings on one case as stored: the one place they are computed (submit guard, the
    CLI's and the dashboard's preview), its county's 山区海岛县 flag from the database."""
    from models.org import Organisation

    county = session.get(Organisation, case.county_code) if case.county_code else None
    return findings_for(
        spec,
        case.kind,
        case.attrs,
        zone_type=case.zone_type,
        category=case.category,
        mountain_island=bool(county and county.mountain_island),
    )


def preview_findings(session: Any, spec: CampaignSpec, case: Any) -> list[dict[str, Any]] | None:
    """What the submit check would say of an application nobody has checked yet (None: it has
    been checked, or it is not an application), so the applicant can fix it first."""
    if case.findings or case.kind != spec.application_kind:
        return None
    return [f.as_dict() for f in case_findings(session, spec, case)]
