"""Eligibility checks from the notice, run when an application is submitted.

Each check yields a finding with a severity:
- ``block``: the notice leaves no room (a closed track, a launch date outside the window, sales
  below the threshold); the action is refused.
- ``in_principle``: the notice says 原则上; a reviewer may proceed with a recorded reason
  (an override), never silently.
- ``info``: worth showing, needs nothing (a 新星 track not in the "包括但不限于" list).
Pure: the case's fields and the campaign rules in, findings out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from calendars.campaign import ByField, CampaignSpec, ClusterRules, ClusterTrack, Condition, JingpinRules


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


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def cluster_of_subtrack(rules: ClusterRules, subtrack: str) -> ClusterTrack | None:
    """The 省级重点产业集群 whose 附1-1 row lists ``subtrack``: 附1-2 asks for the 细分赛道 only."""
    return next((t for t in rules.tracks if subtrack in t.subtracks), None)


def _open_subtracks(rules: ClusterRules) -> str:
    return "；".join(f"{t.cluster}：{'、'.join(t.subtracks)}" for t in rules.tracks if t.open)


def _cluster_track(
    named: str, subtrack: str, rules: ClusterRules
) -> tuple[ClusterTrack | None, Finding | None]:
    """The 附1-1 row an application belongs to (from its 细分赛道, or the cluster it names), or
    the finding that says why it cannot be told."""
    by_name = {t.cluster: t for t in rules.tracks}
    if subtrack in by_name:
        # A cluster's name typed as its 细分赛道 ("智能物联"): the cluster is clear, the
        # 细分赛道 is not; say which ones the form accepts.
        track = by_name[subtrack]
        if not track.open:
            return track, None
        return None, Finding(
            "subtrack_is_cluster",
            "block",
            f"细分赛道填写的是集群名称「{subtrack}」，请改填该集群的一个细分赛道"
            f"（附1-1「{subtrack}」：{'、'.join(track.subtracks)}{'等' if track.open_ended else ''}）",
        )
    if not subtrack:
        named_track = by_name.get(named)
        choices = (
            f"「{named}」的细分赛道：{'、'.join(named_track.subtracks)}"
            if named_track is not None and named_track.open
            else f"附1-1 开放申报的细分赛道——{_open_subtracks(rules)}"
        )
        return None, Finding("subtrack_missing", "block", f"未填写细分赛道（附1-2 限选1个）；{choices}")
    inferred = cluster_of_subtrack(rules, subtrack)
    if named and named not in by_name:
        known = "、".join(t.cluster for t in rules.tracks)
        return None, Finding("track_unknown", "block", f"集群名称「{named}」不在附1-1中（应为：{known}）")
    if inferred is not None and named and inferred.cluster != named:
        return None, Finding(
            "subtrack_mismatch",
            "block",
            f"细分赛道「{subtrack}」属于「{inferred.cluster}」集群（附1-1），而所填集群为「{named}」",
        )
    if inferred is not None:
        return inferred, None
    if named:
        return by_name[named], None
    return None, Finding(
        "subtrack_unknown",
        "block",
        f"细分赛道「{subtrack}」未列于附1-1，无法确定所属集群；属“等”所含范围的，请注明所属集群"
        f"（附1-1 开放申报的细分赛道——{_open_subtracks(rules)}）",
    )


def cluster_findings(
    attrs: dict[str, Any], zone_type: str, rules: ClusterRules, *, mountain_island: bool
) -> list[Finding]:
    out: list[Finding] = []
    cluster_name = attrs.get("cluster") or ""
    subtrack = attrs.get("subtrack") or ""
    x_system = attrs.get("x_system") or "无"
    revenue = _dec(attrs.get("revenue"))
    factor = rules.mountain_island_factor if mountain_island else Decimal(1)
    threshold: Decimal | None = None

    if zone_type in ("core", "collaborative"):
        track, problem = _cluster_track(cluster_name, subtrack, rules)
        if problem is not None:
            out.append(problem)
            return out
        assert track is not None
        cluster_name = track.cluster
        if not track.open:
            out.append(
                Finding("track_closed", "block", f"「{cluster_name}」集群本批不开放核心区协同区申报（附1-1）")
            )
            return out
        if subtrack not in track.subtracks and not track.open_ended:
            out.append(
                Finding(
                    "subtrack_unknown",
                    "block",
                    f"细分赛道「{subtrack}」不属于「{cluster_name}」（附1-1：{'、'.join(track.subtracks)}）",
                )
            )
        elif subtrack not in track.subtracks:
            out.append(
                Finding(
                    "subtrack_other", "info", f"细分赛道「{subtrack}」未列于附1-1，属“等”所含范围，请审核确认"
                )
            )
        threshold = track.core_threshold if zone_type == "core" else track.collaborative_threshold
        if x_system == "无":
            out.append(
                Finding(
                    "x_system_required",
                    "in_principle",
                    "申报核心区协同区的，原则上当前应属于“X”体系（四、（一）3），申报表填“无”",
                )
            )
        if zone_type == "core":
            leaders = int(attrs.get("chain_leaders") or 0)
            platforms = int(attrs.get("innovation_platforms") or 0)
            rd_centres = int(attrs.get("rd_centres") or 0)
            if leaders < 1:
                out.append(
                    Finding(
                        "core_chain_leader",
                        "in_principle",
                        "申报核心区原则上应拥有至少1家省级及以上链主企业（含培育库）（四、（一）2），填报为0家",
                    )
                )
            if platforms < 1 and rd_centres < 3:
                out.append(
                    Finding(
                        "core_platforms",
                        "in_principle",
                        "申报核心区原则上应拥有至少1家省级及以上创新平台或至少3家省级及以上企业研发机构"
                        f"（四、（一）2），填报为创新平台{platforms}家、研发机构{rd_centres}家",
                    )
                )
    else:  # rising_star
        highland = attrs.get("highland") or attrs.get("cluster") or ""
        row = next((h for h in rules.rising_star if h.highland == highland), None)
        if row is None:
            row = next((h for h in rules.rising_star if subtrack in h.subtracks), None)
        if row is None:
            known = "、".join(h.highland for h in rules.rising_star)
            out.append(
                Finding(
                    "highland_unknown",
                    "block",
                    f"“新星”产业群须属于四大产业高地之一（{known}），填报为「{highland}」",
                )
            )
            return out
        if subtrack not in row.subtracks:
            out.append(
                Finding(
                    "subtrack_other",
                    "info",
                    f"“新星”细分赛道「{subtrack}」未列于附1-1（包括但不限于），请审核确认",
                )
            )
        threshold = row.threshold
        if x_system != "无":
            out.append(
                Finding(
                    "rising_star_in_x",
                    "in_principle",
                    f"已经属于“X”体系（{x_system}）的，原则上不再申报“新星”产业群（二、2）",
                )
            )

    if threshold is not None:
        needed = threshold * factor
        if revenue is None:
            out.append(Finding("revenue_missing", "block", "未填报2025年集群规上企业营业收入"))
        elif revenue < needed:
            basis = f"门槛{_fmt(threshold)}亿元" + (
                "，山区海岛县下调30%后为" + _fmt(needed) + "亿元" if mountain_island else ""
            )
            extra = (
                "；申报表注明细分领域达到世界级水平，门槛可适当下调，请评审确认"
                if attrs.get("world_class")
                else ""
            )
            out.append(
                Finding(
                    "revenue_threshold",
                    "in_principle",
                    f"2025年集群规上企业营业收入{_fmt(revenue)}亿元，低于规模门槛（{basis}，附1-1）{extra}",
                )
            )
    return out


def jingpin_findings(
    attrs: dict[str, Any], category: str, rules: JingpinRules, *, mountain_island: bool
) -> list[Finding]:
    out: list[Finding] = []
    cat = next((c for c in rules.categories if c.id == category), None)
    if cat is None:
        out.append(Finding("category_unknown", "block", f"产品类别「{category}」不是三类之一"))
        return out
    if attrs.get("track") not in rules.tracks:
        out.append(
            Finding("track_unknown", "block", f"集群赛道「{attrs.get('track')}」不在征集领域内（附2-3 注）")
        )
    launched = attrs.get("launch_date")
    launch = date.fromisoformat(launched) if isinstance(launched, str) and launched else None
    if launch is None:
        out.append(Finding("launch_missing", "block", "未填报产品上市日期"))
    elif not (rules.launch_from <= launch <= rules.launch_to):
        out.append(
            Finding(
                "launch_window",
                "block",
                f"申报产品须在{rules.launch_from:%Y年%-m月%-d日}至{rules.launch_to:%Y年%-m月%-d日}期间上市"
                f"（二、4），填报上市日期为{launch:%Y年%-m月%-d日}",
            )
        )
    sales = _dec(attrs.get("avg_sales"))
    needed = cat.min_sales_mountain_island if mountain_island else cat.min_sales
    if sales is None:
        out.append(Finding("sales_missing", "block", "未填报近三年年均销售收入"))
    elif sales < needed:
        where = "山区海岛县企业" if mountain_island else ""
        out.append(
            Finding(
                "sales_threshold",
                "block",
                f"{cat.name}产品近三年年均销售收入须不低于{_fmt(needed)}万元（{where}二、5），填报为{_fmt(sales)}万元",
            )
        )
    rd = _dec(attrs.get("rd_ratio"))
    if rd is None:
        out.append(Finding("rd_missing", "block", "未填报近三年研发投入占比"))
    elif rd < rules.min_rd_ratio:
        out.append(
            Finding(
                "rd_ratio",
                "block",
                f"企业近三年研发投入占主营业务收入比重不低于{_fmt(rules.min_rd_ratio)}%（二、1），填报为{_fmt(rd)}%",
            )
        )
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
    if spec.declared_rules and spec.form is not None and kind == spec.form.kind:
        return rule_findings(spec, attrs, mountain_island=mountain_island)
    if kind == "cluster_application" and spec.cluster is not None:
        return cluster_findings(attrs, zone_type or "", spec.cluster, mountain_island=mountain_island)
    if kind == "jingpin_application" and spec.jingpin is not None:
        return jingpin_findings(attrs, category or "", spec.jingpin, mountain_island=mountain_island)
    return []


def _threshold(value: Decimal | ByField | None, attrs: dict[str, Any]) -> Decimal | None:
    if isinstance(value, ByField):
        return value.values.get(str(attrs.get(value.by) or ""))
    return value


def _holds(cond: Condition, attrs: dict[str, Any]) -> bool:
    return cond.holds(attrs)


def rule_findings(spec: CampaignSpec, attrs: dict[str, Any], *, mountain_island: bool) -> list[Finding]:
    """The campaign file's ``eligibility:`` rules on one application's fields."""
    assert spec.form is not None
    out: list[Finding] = []
    for rule in spec.eligibility:
        if rule.when is not None and not _holds(rule.when, attrs):
            continue
        if rule.unless is not None and _holds(rule.unless, attrs):
            continue
        field = spec.form.field(rule.field)
        label = field.label if field else rule.field
        raw = attrs.get(rule.field)
        source = f"（{rule.source}）" if rule.source else ""
        if raw in (None, ""):
            if rule.required:
                out.append(Finding(f"{rule.id}_missing", rule.severity, f"未填报「{label}」{source}"))
            continue
        limit: Decimal | None = None
        basis = ""
        failed = False
        if rule.min is not None or rule.max is not None:
            value = _dec(raw)
            if value is None:
                out.append(Finding(rule.id, rule.severity, f"「{label}」应为数字，填报为「{raw}」"))
                continue
            low = _threshold(rule.min, attrs)
            if mountain_island and low is not None:
                if rule.mountain_island_factor is not None:
                    low, basis = low * rule.mountain_island_factor, "山区海岛县"
                elif rule.mountain_island_min is not None:
                    low, basis = _threshold(rule.mountain_island_min, attrs), "山区海岛县"
            high = _threshold(rule.max, attrs)
            if low is not None and value < low:
                failed, limit = True, low
            elif high is not None and value > high:
                failed, limit = True, high
            shown = _fmt(value)
        elif rule.in_ is not None:
            failed, shown = str(raw) not in rule.in_, str(raw)
        elif rule.equals is not None:
            failed, shown = (
                bool(raw) != rule.equals,
                "是" if raw is True else "否" if raw is False else str(raw),
            )
        elif rule.date_from is not None or rule.date_to is not None:
            day = date.fromisoformat(str(raw)[:10])
            failed = (rule.date_from is not None and day < rule.date_from) or (
                rule.date_to is not None and day > rule.date_to
            )
            shown = f"{day:%Y年%-m月%-d日}"
        else:
            continue
        if failed:
            text = rule.message.format(
                value=shown,
                limit=_fmt(limit) if limit is not None else "",
                basis=basis,
                label=label,
                choices="、".join(rule.in_ or ()),
                date_from=f"{rule.date_from:%Y年%-m月%-d日}" if rule.date_from else "",
                date_to=f"{rule.date_to:%Y年%-m月%-d日}" if rule.date_to else "",
            )
            out.append(Finding(rule.id, rule.severity, text + source))
    return out


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
