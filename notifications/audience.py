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
from models.owing import PROVINCE, acting_org

# Who acts at a stage is the rule of the board and the reminders alike (models.owing).
__all__ = ["PROVINCE", "Directory", "acting_org", "lookup_keys", "supervisor_id"]


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
    """Organisations and contacts, each read once for a run.

    Reconcile and compose load every active contact up front (a few thousand rows at most for
    people). The pre-send recheck loads only the organisations a batch of emails names
    (``everyone=False``): a Directory of 50,000 contacts per email cost most of a second.
    Organisations are looked up lazily because enterprises can be many.
    """

    def __init__(self, session: Session, *, everyone: bool = True) -> None:
        self.session = session
        self._orgs: dict[str, Organisation | None] = {}
        self._contacts: dict[str, list[Contact]] = defaultdict(list)
        self._by_id: dict[int, Contact] = {}
        self._everyone = everyone
        self._loaded: set[str] = set()  # organisations whose contacts are all in _contacts
        if everyone:
            for contact in session.exec(select(Contact).where(Contact.active == True)).all():  # noqa: E712
                self._add(contact)

    def _add(self, contact: Contact) -> None:
        if contact.id in self._by_id:
            return
        self._by_id[contact.id] = contact  # type: ignore[index]
        if contact.active:
            self._contacts[contact.org_id].append(contact)

    def load_contacts(self, org_ids: Iterable[str | None], contact_ids: Iterable[int] = ()) -> None:
        """Read the active contacts of ``org_ids`` and the contacts ``contact_ids`` in a few queries."""
        missing = sorted({o for o in org_ids if o and o not in self._loaded}) if not self._everyone else []
        for start in range(0, len(missing), 900):
            chunk = missing[start : start + 900]
            query = select(Contact).where(Contact.org_id.in_(chunk), Contact.active == True)  # type: ignore[attr-defined]  # noqa: E712
            for contact in self.session.exec(query).all():
                self._add(contact)
            self._loaded.update(chunk)
        unseen = sorted({i for i in contact_ids if i not in self._by_id})
        for start in range(0, len(unseen), 900):
            ids = unseen[start : start + 900]
            for contact in self.session.exec(select(Contact).where(Contact.id.in_(ids))).all():  # type: ignore[union-attr]
                self._add(contact)

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
        if not self._everyone and org_id not in self._loaded:
            self.load_contacts([org_id])
        return [c for c in self._contacts.get(org_id, []) if c.works_on(program)]

    def supervisor(self, org_id: str | None) -> str | None:
        org = self.org(org_id)
        return supervisor_id(org) if org else None

    def contact(self, contact_id: int) -> Contact | None:
        found = self._by_id.get(contact_id)
        if found is None:
            found = self.session.get(Contact, contact_id)
            if found is not None:
                self._add(found)
        return found

    def name(self, org_id: str | None) -> str:
        org = self.org(org_id)
        return org.name if org else (org_id or "")
