"""What a viewer may see: their organisation's jurisdiction and the programs they work on.

The organisation part is the SQL form of ``models.actions.within_jurisdiction``.

Pages list cases with a WHERE clause rather than filtering rows one by one in Python, so the rule
exists twice; ``tests/dashboard/test_scope.py`` checks that both forms agree on every case.
A request for something outside the scope is answered 404 for single cases (their existence is
itself information) and 403 for whole cities or counties (those are public names).

Programs: a contact registered for 集群遴选 sees and acts on cluster campaigns only, one for
制造精品 on 精品 only (the roster's 备注; 「全部」 names every program loaded, and a contact whose
programs are empty works on every program the database holds, a later campaign's included). A campaign of the other program is a
public name, so asking for it is refused 403 with a message naming the program; a case of the
other program within the viewer's jurisdiction is refused the same way (the organisation knows
its own cases), one outside it stays 404.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from sqlalchemy import or_, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select

from models.actions import within_jurisdiction
from models.campaign import Campaign, get_campaign
from models.case import PROGRAM_LABELS, Case
from models.org import Organisation
from models.outbox import Email, Notification
from models.reference import load_divisions

if TYPE_CHECKING:
    from dashboard.auth import Viewer


def program_label(program: str) -> str:
    return PROGRAM_LABELS.get(program, program)


def programs_label(programs: Collection[str]) -> str:
    return "、".join(f"「{program_label(p)}」" for p in sorted(programs))


def case_filter(org: Organisation) -> ColumnElement[bool]:
    if org.tier == "province":
        return true()
    if org.tier == "city":
        return Case.city_code == org.id  # type: ignore[return-value]
    if org.tier == "county":
        return or_(Case.county_code == org.id, Case.org_id == org.id)
    if org.tier in ("soe_group", "association"):
        return or_(Case.recommender_id == org.id, Case.org_id == org.id)
    return Case.org_id == org.id  # type: ignore[return-value]


def program_filter(programs: Collection[str]) -> ColumnElement[bool]:
    """Cases of campaigns of ``programs``."""
    return Case.campaign_id.in_(  # type: ignore[attr-defined]
        select(Campaign.id).where(Campaign.program.in_(sorted(programs)))  # type: ignore[attr-defined]
    )


def campaign_filter(programs: Collection[str]) -> ColumnElement[bool]:
    return Campaign.program.in_(sorted(programs))  # type: ignore[attr-defined]


def notification_filter(programs: Collection[str]) -> ColumnElement[bool]:
    """Notifications about campaigns of ``programs`` (and those about no campaign at all)."""
    return or_(
        Notification.campaign_id.is_(None),  # type: ignore[union-attr]
        Notification.campaign_id.in_(  # type: ignore[union-attr]
            select(Campaign.id).where(Campaign.program.in_(sorted(programs)))  # type: ignore[attr-defined]
        ),
    )


def email_filter(session: Session, programs: Collection[str]) -> ColumnElement[bool]:
    """Mails for a viewer of ``programs``: all of them for one who works on every program of this
    database's campaigns, else those with a notification about a campaign of theirs (a digest
    can mix both programs). Every program of the database, not every one this process has read:
    a campaign file merely validated elsewhere must not narrow what the province sees."""
    held = set(session.exec(select(Campaign.program).distinct()).all())
    if held <= set(programs):
        return true()
    return Email.id.in_(select(Notification.email_id).where(notification_filter(programs)))  # type: ignore[union-attr]


def org_filter(org: Organisation) -> ColumnElement[bool]:
    """Organisations (and so their contacts and mail) within ``org``'s reach."""
    if org.tier == "province":
        return true()
    if org.tier == "city":
        return or_(Organisation.id == org.id, Organisation.city_code == org.id)
    if org.tier == "county":
        return or_(Organisation.id == org.id, Organisation.county_code == org.id)
    return Organisation.id == org.id  # type: ignore[return-value]


def can_see_case(org: Organisation, case: Case) -> bool:
    return within_jurisdiction(org, case)


def can_see_city(org: Organisation, city_code: str) -> bool:
    return org.tier == "province" or (org.tier == "city" and org.id == city_code)


def can_see_county(org: Organisation, county_code: str) -> bool:
    if org.tier == "province":
        return True
    division = load_divisions().by_code(county_code)
    if division is None or division.tier != "county":
        return False
    if org.tier == "city":
        return division.city_code == org.id
    return org.tier == "county" and org.id == county_code


def require_city(org: Organisation, city_code: str) -> None:
    division = load_divisions().by_code(city_code)
    if division is None or division.tier != "city":
        raise HTTPException(404, f"没有这个设区市：{city_code}")
    if not can_see_city(org, city_code):
        raise HTTPException(403, f"{org.name}无权查看{division.name}的数据")


def require_county(org: Organisation, county_code: str) -> None:
    division = load_divisions().by_code(county_code)
    if division is None or division.tier != "county":
        raise HTTPException(404, f"没有这个县（市、区）：{county_code}")
    if not can_see_county(org, county_code):
        raise HTTPException(403, f"{org.name}无权查看{division.name}的数据")


def campaigns_for(session: Session, viewer: Viewer) -> list[Campaign]:
    """The campaigns of the viewer's programs."""
    query = select(Campaign).where(campaign_filter(viewer.program_set)).order_by(Campaign.id)
    return list(session.exec(query).all())


def refuse_program(viewer: Viewer, program: str, what: str) -> None:
    if not viewer.works_on(program):
        raise HTTPException(
            403,
            f"{what}属于「{program_label(program)}」，{viewer.org.name}{viewer.name}登记负责的是"
            f"{programs_label(viewer.program_set)}，无权查看或办理"
            "（如需负责该项工作，请在工作人员信息汇总表的备注中注明后重新导入）",
        )


def require_campaign(session: Session, viewer: Viewer, campaign_id: str) -> Campaign:
    try:
        campaign = get_campaign(session, campaign_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    refuse_program(viewer, campaign.program, f"批次 {campaign_id}")
    return campaign


def require_case(session: Session, viewer: Viewer, case: Case | None, ref: str) -> Case:
    if case is None or not can_see_case(viewer.org, case):
        # The same answer for "no such case" and "not yours": a ref must not be probeable.
        raise HTTPException(404, f"找不到案件 {ref}，或该案件不在本单位管辖范围内")
    refuse_program(viewer, program_of(session, case), f"案件 {case.ref}")
    return case


def program_of(session: Session, case: Case) -> str:
    return get_campaign(session, case.campaign_id).program


def require_province(org: Organisation, what: str) -> None:
    if org.tier != "province":
        raise HTTPException(403, f"「{what}」仅限省级用户操作，{org.name}无权执行")


def board_start(org: Organisation) -> dict[str, Any]:
    """Where a board starts for ``org``: the province sees cities, a city its counties, …"""
    if org.tier == "city":
        return {"city": org.id}
    if org.tier == "county":
        return {"county": org.id}
    return {}
