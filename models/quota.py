"""Recommendation quotas (名额): which quota a recommendation uses, and whether it is full.

- 集群遴选: each city recommends at most 3 “新星”产业群 (五、（二）); core and collaborative
  zones have no number limit.
- 制造精品 (附2-2): each city its quota; a 先进制造业集群品牌 county 2 more for brand-aligned
  products; each 省属企业集团 at most 5; each 省级行业协会 at most 10.
A recommendation that would exceed a quota is refused with the quota's name and what is
already used. The counts are taken inside the recommending transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from calendars.campaign import CampaignSpec, QuotaSpec
from models.case import Case
from models.org import Organisation


@dataclass(frozen=True)
class Quota:
    bucket: str  # what Case.quota_bucket records, e.g. "city:330100"
    name: str  # for people
    limit: int | None  # None: no limit


class QuotaExceeded(Exception):
    def __init__(self, quota: Quota, used: int, refs: list[str]) -> None:
        self.quota, self.used, self.refs = quota, used, refs
        listed = "、".join(refs[:10]) + ("…" if len(refs) > 10 else "")
        super().__init__(f"超出名额「{quota.name}」：上限 {quota.limit} 个，已使用 {used} 个（{listed}）")


def quota_for(session: Session, spec: CampaignSpec, case: Case, recommender: Organisation | None) -> Quota:
    """The quota a recommendation of ``case`` would use (before any count is taken)."""
    if spec.declared_rules:
        return _declared_quota(session, spec, case, recommender)
    if spec.program == "cluster":
        city = session.get(Organisation, case.city_code) if case.city_code else None
        city_name = city.name if city else case.city_code
        if case.zone_type == "rising_star":
            limit = spec.cluster.rising_star_quota_per_city if spec.cluster else None
            return Quota(
                f"rising_star:{case.city_code}", f"{city_name}“新星”产业群推荐数量不超过{limit}个", limit
            )
        return Quota(f"cluster:{case.city_code}", f"{city_name}核心区协同区推荐（不限数量）", None)

    rules = spec.jingpin
    assert rules is not None  # guaranteed by CampaignSpec validation for program jingpin
    if recommender is not None and recommender.tier == "soe_group":
        return Quota(
            f"soe:{recommender.id}",
            f"省属企业集团「{recommender.name}」推荐名额（≤{rules.soe_group_limit}）",
            rules.soe_group_limit,
        )
    if recommender is not None and recommender.tier == "association":
        return Quota(
            f"assoc:{recommender.id}",
            f"省级行业协会「{recommender.name}」推荐名额（≤{rules.association_limit}）",
            rules.association_limit,
        )
    city = session.get(Organisation, case.city_code) if case.city_code else None
    city_name = city.name if city else str(case.city_code)
    return Quota(
        f"city:{case.city_code}",
        f"{city_name}制造精品推荐名额（附2-2）",
        rules.city_quotas.get(case.city_code or "", 0),
    )


def _recommender_org(session: Session, case: Case, recommender: Organisation | None) -> Organisation | None:
    if recommender is not None:
        return recommender
    return session.get(Organisation, case.city_code) if case.city_code else None


def _applies(quota: QuotaSpec, case: Case) -> bool:
    return quota.when is None or quota.when.holds(case.attrs or {})


def _declared_quota(
    session: Session, spec: CampaignSpec, case: Case, recommender: Organisation | None
) -> Quota:
    """The first of the file's ``quotas:`` that applies to this recommender and case."""
    org = _recommender_org(session, case, recommender)
    org_id = org.id if org else str(case.city_code)
    name = org.name if org else org_id
    for quota in spec.quotas:
        if (org is None or org.tier in quota.tiers) and _applies(quota, case):
            return Quota(f"{quota.id}:{org_id}", quota.name.format(recommender=name), quota.limit_for(org_id))
    return Quota(f"open:{org_id}", f"{name}推荐（不限数量）", None)


def brand_quota_for(session: Session, spec: CampaignSpec, case: Case) -> Quota | None:
    """The extra 2 of a 先进制造业集群品牌 county, for a brand-aligned product from it."""
    rules = spec.jingpin
    if (
        spec.declared_rules
        or rules is None
        or not case.brand_aligned
        or case.county_code not in rules.brand_counties
    ):
        return None
    county = session.get(Organisation, case.county_code)
    name = county.name if county else case.county_code
    return Quota(
        f"brand:{case.county_code}",
        f"{name}先进制造业集群品牌产品单列名额（{rules.brand_county_extra}个）",
        rules.brand_county_extra,
    )


def used(session: Session, campaign_id: str, bucket: str) -> list[str]:
    return list(
        session.exec(
            select(Case.ref)
            .where(Case.campaign_id == campaign_id, Case.quota_bucket == bucket)
            .order_by(Case.ref)
        )
    )


def claim(session: Session, spec: CampaignSpec, case: Case, recommender: Organisation | None) -> Quota:
    """Pick the quota for a recommendation, or raise QuotaExceeded naming the full one.

    A brand-aligned product from a brand county uses the county's extra slots first and the
    city quota only when those are used up, which is how 附2-2 row 12 reads.
    """
    # Two coordinators recommending at the same moment must not both see the last free slot:
    # lock the recommending organisation's row before counting (PostgreSQL; on SQLite the
    # writer's BEGIN IMMEDIATE already serialises the whole transaction).
    lock_id = recommender.id if recommender is not None else case.city_code
    if lock_id:
        session.exec(select(Organisation).where(Organisation.id == lock_id).with_for_update()).first()
    candidates = [q for q in (brand_quota_for(session, spec, case),) if q is not None]
    candidates.append(quota_for(session, spec, case, recommender))
    last_error: QuotaExceeded | None = None
    for quota in candidates:
        if quota.limit is None:
            return quota
        refs = used(session, case.campaign_id, quota.bucket)
        if len(refs) < quota.limit:
            return quota
        last_error = QuotaExceeded(quota, len(refs), refs)
    assert last_error is not None
    raise last_error


def usage(session: Session, campaign_id: str) -> dict[str, int]:
    rows = session.exec(
        select(Case.quota_bucket, func.count())
        .where(Case.campaign_id == campaign_id, Case.quota_bucket.is_not(None))  # type: ignore[union-attr]
        .group_by(Case.quota_bucket)
    ).all()
    return {bucket: n for bucket, n in rows if bucket}


def over_quota(
    session: Session, spec: CampaignSpec, campaign_id: str, recommender: Organisation
) -> list[str]:
    """Quotas of this recommender that are over their limit (a race, or an edited file)."""
    counts = usage(session, campaign_id)
    problems: list[str] = []
    if spec.declared_rules:
        for quota in spec.quotas:
            limit = quota.limit_for(recommender.id)
            n = counts.get(f"{quota.id}:{recommender.id}", 0)
            if recommender.tier in quota.tiers and limit is not None and n > limit:
                problems.append(
                    f"超出名额「{quota.name.format(recommender=recommender.name)}」：上限 {limit} 个，已推荐 {n} 个"
                )
        return problems
    if spec.program == "cluster":
        limit = spec.cluster.rising_star_quota_per_city if spec.cluster else None
        n = counts.get(f"rising_star:{recommender.id}", 0)
        if limit is not None and n > limit:
            problems.append(f"{recommender.name}“新星”产业群推荐 {n} 个，超过上限 {limit} 个")
        return problems
    rules = spec.jingpin
    assert rules is not None
    if recommender.tier == "city":
        n, limit = counts.get(f"city:{recommender.id}", 0), rules.city_quotas.get(recommender.id, 0)
        label = f"{recommender.name}制造精品推荐名额（附2-2）"
    elif recommender.tier == "soe_group":
        n, limit, label = (
            counts.get(f"soe:{recommender.id}", 0),
            rules.soe_group_limit,
            f"省属企业集团「{recommender.name}」推荐名额",
        )
    else:
        n, limit, label = (
            counts.get(f"assoc:{recommender.id}", 0),
            rules.association_limit,
            f"省级行业协会「{recommender.name}」推荐名额",
        )
    if n > limit:
        problems.append(f"超出名额「{label}」：上限 {limit} 个，已推荐 {n} 个")
    return problems
