"""What an organisation may see: the SQL form of ``models.actions.within_jurisdiction``.

Pages list cases with a WHERE clause rather than filtering rows one by one in Python, so the rule
exists twice; ``tests/dashboard/test_scope.py`` checks that both forms agree on every case.
A request for something outside the scope is answered 404 for single cases (their existence is
itself information) and 403 for whole cities or counties (those are public names).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from sqlalchemy import or_, true
from sqlalchemy.sql.elements import ColumnElement

from models.actions import within_jurisdiction
from models.case import Case
from models.org import Organisation
from models.reference import load_divisions


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


def require_case(org: Organisation, case: Case | None, ref: str) -> Case:
    if case is None or not can_see_case(org, case):
        # The same answer for "no such case" and "not yours": a ref must not be probeable.
        raise HTTPException(404, f"找不到案件 {ref}，或该案件不在本单位管辖范围内")
    return case


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
