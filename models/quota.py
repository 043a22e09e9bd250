"""Recommendation quotas (名额): which quota a recommendation uses, and whether it is full.

The quotas are the campaign file's ``quotas:`` (FORMAT.md 第 6 节): the first that applies to
the recommender's tier and the application is used; one marked ``overflow`` passes to the next
when full (a 品牌县's 2 extra slots, then its city's 附2-2 quota). A recommendation that would
exceed a quota is refused with the quota's name and what is already used. The counts are taken
inside the recommending transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from calendars.campaign import CampaignSpec, QuotaSpec, conditions
from models.case import Case
from models.eligibility import application_fields
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


def _org_name(session: Session, org_id: str | None) -> str:
    org = session.get(Organisation, org_id) if org_id else None
    return org.name if org is not None else str(org_id)


def _recommender_org(session: Session, case: Case, recommender: Organisation | None) -> Organisation | None:
    if recommender is not None:
        return recommender
    return session.get(Organisation, case.city_code) if case.city_code else None


def _applies(spec: CampaignSpec, quota: QuotaSpec, case: Case) -> bool:
    fields = application_fields(
        case.attrs or {}, zone_type=case.zone_type, category=case.category, brand_aligned=case.brand_aligned
    )
    facts = spec.facts(fields)  # a quota's when: may name a derive: value, as a rule's may
    return all(c.holds(facts) for c in conditions(quota.when))


def declared(session: Session, quota: QuotaSpec, unit_id: str, recommender_name: str) -> Quota:
    """One of the file's quotas as it stands for one unit (whose slots: recommender or county)."""
    limit = quota.limit_for(unit_id)
    name = quota.name.format(
        recommender=recommender_name, unit=_org_name(session, unit_id), limit="" if limit is None else limit
    )
    return Quota(f"{quota.id}:{unit_id}", name, limit)


def candidates(
    session: Session, spec: CampaignSpec, case: Case, recommender: Organisation | None
) -> list[Quota]:
    """The quotas a recommendation of ``case`` may use, in order: the first that applies, and
    after it the next ones while the one before says ``overflow``."""
    org = _recommender_org(session, case, recommender)
    org_id = org.id if org else str(case.city_code)
    name = org.name if org else org_id
    out: list[Quota] = []
    for quota in spec.quotas:
        unit = case.county_code if quota.per == "county" else org_id
        if org is not None and org.tier not in quota.tiers:
            continue
        if not _applies(spec, quota, case) or not quota.covers(unit):
            continue
        out.append(declared(session, quota, unit or org_id, name))
        if not quota.overflow:
            return out
    out.append(Quota(f"open:{org_id}", f"{name}推荐（不限数量）", None))
    return out


def quota_for(session: Session, spec: CampaignSpec, case: Case, recommender: Organisation | None) -> Quota:
    """The quota a recommendation of ``case`` would use when none is full."""
    return candidates(session, spec, case, recommender)[0]


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
    city quota only when those are used up, which is how 附2-2 row 12 reads (``overflow``).
    """
    # Two coordinators recommending at the same moment must not both see the last free slot:
    # lock the recommending organisation's row before counting (PostgreSQL; on SQLite the
    # writer's BEGIN IMMEDIATE already serialises the whole transaction).
    lock_id = recommender.id if recommender is not None else case.city_code
    if lock_id:
        session.exec(select(Organisation).where(Organisation.id == lock_id).with_for_update()).first()
    last_error: QuotaExceeded | None = None
    for quota in candidates(session, spec, case, recommender):
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


def units_of(session: Session, quota: QuotaSpec, recommender: Organisation) -> list[str]:
    """Whose slots of ``quota`` a recommender answers for: its own, or (per: county) those of
    its counties the quota covers."""
    if quota.per != "county":
        return [recommender.id] if quota.covers(recommender.id) else []
    counties = session.exec(
        select(Organisation.id).where(Organisation.tier == "county", Organisation.city_code == recommender.id)
    ).all()
    return sorted(c for c in counties if quota.covers(c))


def lines_for(session: Session, spec: CampaignSpec, recommender: Organisation) -> list[Quota]:
    """Every quota of the file this recommender answers for, as it stands (for its list and the
    dashboard)."""
    out: list[Quota] = []
    for quota in spec.quotas:
        if recommender.tier in quota.tiers:
            out += [
                declared(session, quota, unit, recommender.name)
                for unit in units_of(session, quota, recommender)
            ]
    return out


def over_quota(
    session: Session, spec: CampaignSpec, campaign_id: str, recommender: Organisation
) -> list[str]:
    """Quotas of this recommender that are over their limit (a race, or an edited file)."""
    counts = usage(session, campaign_id)
    problems: list[str] = []
    for quota in lines_for(session, spec, recommender):
        n = counts.get(quota.bucket, 0)
        if quota.limit is not None and n > quota.limit:
            problems.append(f"超出名额「{quota.name}」：上限 {quota.limit} 个，已推荐 {n} 个")
    return problems
