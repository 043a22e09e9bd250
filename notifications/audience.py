"""Who hears: the contacts of an organisation for a program, and the tier above an organisation.

Escalation goes one tier up: an enterprise or a park to its county, a county to its city, a city
(or an SOE group, an association) to the province.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlmodel import Session, select

from calendars.campaign import Stage
from models.org import Contact, Organisation

PROVINCE = "330000"


def acting_org(stage: Stage, org_id: str, county: str | None, city: str | None) -> str:
    """Who still has to act on a case waiting at ``stage``: the one rule reconcile, compose and
    the stuck check all follow.

    The county bureau files an application on the provincial platform (a park's too), a city
    reviews what its counties sent, an enterprise files its own product, and a city, SOE group or
    association owns its roster task and its recommendation.
    """
    if stage.actor == "province":
        return PROVINCE
    if stage.actor == "county":
        return county or org_id
    if stage.actor == "city" and stage.subject not in ("roster", "recommendation"):
        return city or org_id
    return org_id


def lookup_keys(stage: Stage, org_id: str, county: str | None, city: str | None) -> set[str]:
    """The organisations a case is listed under when someone asks what waits on them: its acting
    organisation, and at a county stage also the park that applied (reminded about its own)."""
    keys = {acting_org(stage, org_id, county, city)}
    if stage.actor == "county":
        keys.add(org_id)
    return keys


def supervisor_id(org: Organisation) -> str | None:
    if org.tier in ("enterprise", "park"):
        return org.county_code
    if org.tier == "county":
        return org.city_code
    if org.tier in ("city", "soe_group", "association"):
        return PROVINCE
    return None


class Directory:
    """Organisations and contacts loaded once per reconcile run (a few thousand rows at most
    for people; organisations are looked up lazily because enterprises can be many)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._orgs: dict[str, Organisation | None] = {}
        self._contacts: dict[str, list[Contact]] = defaultdict(list)
        self._by_id: dict[int, Contact] = {}
        for contact in session.exec(select(Contact).where(Contact.active == True)).all():  # noqa: E712
            self._contacts[contact.org_id].append(contact)
            self._by_id[contact.id] = contact  # type: ignore[index]

    def org(self, org_id: str | None) -> Organisation | None:
        if org_id is None:
            return None
        if org_id not in self._orgs:
            self._orgs[org_id] = self.session.get(Organisation, org_id)
        return self._orgs[org_id]

    def preload(self, org_ids: Iterable[str]) -> None:
        missing = [o for o in set(org_ids) if o and o not in self._orgs]
        for start in range(0, len(missing), 900):
            chunk = missing[start : start + 900]
            for org in self.session.exec(select(Organisation).where(Organisation.id.in_(chunk))).all():  # type: ignore[attr-defined]
                self._orgs[org.id] = org
            for org_id in chunk:
                self._orgs.setdefault(org_id, None)

    def contacts(self, org_id: str | None, program: str) -> list[Contact]:
        if org_id is None:
            return []
        return [c for c in self._contacts.get(org_id, []) if c.works_on(program)]

    def supervisor(self, org_id: str | None) -> str | None:
        org = self.org(org_id)
        return supervisor_id(org) if org else None

    def contact(self, contact_id: int) -> Contact | None:
        return self._by_id.get(contact_id) or self.session.get(Contact, contact_id)

    def name(self, org_id: str | None) -> str:
        org = self.org(org_id)
        return org.name if org else (org_id or "")
