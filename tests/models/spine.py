"""Builders shared by the spine tests: cases, organisations and actors, without files.

Cases are created the way an import creates them (same columns, same ``attrs`` keys), so the
guards see what they would see in production; the scenario files in ``tests/fixtures/scenario``
cover the import path itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from calendars.timeutil import parse_instant
from models.audit import AuditEvent, count_events
from models.campaign import get_campaign
from models.case import Case
from models.context import Actor, Ctx
from models.db import Database
from models.imports import _org_id
from models.org import Organisation
from models.reference import load_divisions
from models.registry import RefAllocator, city_case_ref, new_case

CLUSTER = "2026-cluster-selection"
JINGPIN = "2026-jingpin"

IN_WINDOW = parse_instant("2026-06-01T10:00")
AFTER_APPLICATION = parse_instant("2026-06-26T00:00")


def code(name: str) -> str:
    division = load_divisions().resolve(name)
    assert division is not None, name
    return division.code


def actor_for(name: str, person: str = "测试员") -> Actor:
    """A coordinator of a division (杭州市, 西湖区, 浙江省), checked by tier and jurisdiction."""
    division = load_divisions().resolve(name)
    assert division is not None, name
    return Actor(name=person, org_id=division.code, tier=division.tier)


def cluster_case(
    session: Session,
    ctx: Ctx,
    *,
    county: str = "西湖区",
    applicant: str | None = None,
    zone: str = "collaborative",
    cluster: str | None = "人工智能",
    subtrack: str = "智能终端",
    x_system: str = "创新型产业集群",
    revenue: str = "250",
    chain_leaders: int = 1,
    platforms: int = 1,
    rd_centres: int = 3,
    **attrs: Any,
) -> Case:
    """A cluster application that meets every condition unless told otherwise."""
    spec = get_campaign(session, CLUSTER).spec()
    county_org = session.get(Organisation, code(county))
    assert county_org is not None
    org_id = county_org.id
    if applicant is not None:
        org_id = _org_id("PARK", county_org.id, applicant)
        if session.get(Organisation, org_id) is None:
            session.add(
                Organisation(
                    id=org_id,
                    name=applicant,
                    tier="park",
                    city_code=county_org.city_code,
                    county_code=county_org.id,
                    mountain_island=county_org.mountain_island,
                )
            )
            session.flush()
    rising = zone == "rising_star"
    body = {
        "applicant": applicant or county_org.name,
        "cluster": None if rising else cluster,
        "highland": cluster if rising else None,
        "subtrack": subtrack,
        "x_system": x_system,
        "revenue": revenue,
        "chain_leaders": chain_leaders,
        "innovation_platforms": platforms,
        "rd_centres": rd_centres,
        "world_class": False,
    } | attrs
    return new_case(
        session,
        ctx,
        spec,
        kind="cluster_application",
        ref=RefAllocator(session, spec, "cluster_application")(),
        org_id=org_id,
        city_code=county_org.city_code,
        county_code=county_org.id,
        title=applicant or county_org.name,
        zone_type=zone,
        track=subtrack,
        attrs=body,
    )


def recommender(session: Session, ctx: Ctx, name: str, tier: str) -> Organisation:
    """An SOE group or an association with its recommendation case, as the 精品 import makes them."""
    spec = get_campaign(session, JINGPIN).spec()
    org_id = _org_id("SOE" if tier == "soe_group" else "ASSOC", name)
    org = session.get(Organisation, org_id)
    if org is None:
        org = Organisation(id=org_id, name=name, tier=tier)
        session.add(org)
        session.flush()
        new_case(
            session,
            ctx,
            spec,
            kind="recommendation",
            ref=city_case_ref(session, spec, "recommendation", org_id),
            org_id=org_id,
            city_code=None,
            county_code=None,
            title=f"{name}推荐报送",
        )
    return org


def jingpin_case(
    session: Session,
    ctx: Ctx,
    *,
    county: str = "西湖区",
    enterprise: str | None = None,
    product: str = "智能数控机床 X1",
    category: str = "advanced",
    track: str = "工业母机与机器人",
    launch_date: str = "2023-06-01",
    avg_sales: str = "900",
    rd_ratio: str = "4.5",
    recommender_id: str | None = None,
    brand_aligned: bool = False,
) -> Case:
    """A 精品 application that meets every condition unless told otherwise."""
    spec = get_campaign(session, JINGPIN).spec()
    county_org = session.get(Organisation, code(county))
    assert county_org is not None
    ref = RefAllocator(session, spec, "jingpin_application")()
    enterprise = enterprise or f"{county_org.name}测试企业{ref[-5:]}有限公司"
    ent_id = _org_id("ENT", enterprise)
    if session.get(Organisation, ent_id) is None:
        session.add(
            Organisation(
                id=ent_id,
                name=enterprise,
                tier="enterprise",
                city_code=county_org.city_code,
                county_code=county_org.id,
                mountain_island=county_org.mountain_island,
            )
        )
        session.flush()
    attrs = {
        "enterprise": enterprise,
        "product": product,
        "track": track,
        "launch_date": launch_date,
        "rd_ratio": rd_ratio,
        "avg_sales": avg_sales,
    }
    return new_case(
        session,
        ctx,
        spec,
        kind="jingpin_application",
        ref=ref,
        org_id=ent_id,
        city_code=county_org.city_code,
        county_code=county_org.id,
        title=f"{enterprise}：{product}",
        category=category,
        track=track,
        recommender_id=recommender_id,
        brand_aligned=brand_aligned,
        attrs=attrs,
    )


def rec_ref(campaign: str, org_code: str) -> str:
    prefix = "CL" if campaign == CLUSTER else "JP"
    return f"RC26-{prefix}-{org_code}"


def roster_ref(campaign: str, city_code: str) -> str:
    prefix = "CL" if campaign == CLUSTER else "JP"
    return f"RS26-{prefix}-{city_code}"


def snapshot(db: Database, ref: str) -> tuple[str, int, Any, str | None]:
    with db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        return case.state, case.version, case.updated_at, case.quota_bucket


def events(db: Database, **where: Any) -> list[AuditEvent]:
    with db.read() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)  # type: ignore[arg-type]
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        return list(session.exec(query))


def n_events(db: Database) -> int:
    with db.read() as session:
        return count_events(session)


def state_of(db: Database, ref: str) -> str:
    return snapshot(db, ref)[0]


def wait_until_blocked(db: Database, thread: threading.Thread) -> None:
    """Return once ``thread`` waits for a lock held by the caller (PostgreSQL), or after a short grace
    (SQLite, where the other writer waits at BEGIN IMMEDIATE and cannot be seen waiting)."""
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        if db.is_sqlite:
            time.sleep(0.2)
            return
        with db.reader.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                return
        time.sleep(0.01)
