"""Who is acting and when: passed into every domain function, never read from globals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.audit import AuditLog


@dataclass(frozen=True)
class Actor:
    """Who acts: a person for an organisation, an administrator, or the engine itself (SYSTEM).

    A person carries an organisation and its tier, and the guards check that the action is
    theirs to take. An administrator (``admin_reason`` given) passes the tier and jurisdiction
    checks, never the rules of the case itself, and only ever explicitly: the reason goes into
    the audit with every event. Lapses at a deadline are SYSTEM's alone.
    """

    name: str
    org_id: str | None = None
    tier: str | None = None
    admin_reason: str | None = None

    @property
    def label(self) -> str:
        if self.is_admin:
            return f"admin:{self.name}"
        return f"{self.name}@{self.org_id}" if self.org_id else self.name

    @property
    def is_admin(self) -> bool:
        return self.admin_reason is not None

    @property
    def is_system(self) -> bool:
        return self == SYSTEM

    @property
    def is_engine(self) -> bool:
        """The engine itself, on its own rules (SYSTEM) or recording a platform (PLATFORM_SYNC):
        not a person, so no tier or jurisdiction applies; what it may do is each caller's rule."""
        return self in (SYSTEM, PLATFORM_SYNC)

    def audit_details(self) -> dict[str, Any]:
        """What every audit event by this actor adds to its details (admin mode is on record)."""
        if not self.is_admin:
            return {}
        return {"admin": True, "admin_reason": self.admin_reason} | (
            {"admin_org": self.org_id} if self.org_id else {}
        )


SYSTEM = Actor(name="system")
# The engine recording what a provincial platform shows (models.sync): an operator identity,
# distinct from SYSTEM (which acts on shenbao's own rules: lapses, cascades) and from people.
PLATFORM_SYNC = Actor(name="平台同步")


@dataclass(frozen=True)
class Ctx:
    now: datetime
    actor: Actor
    audit: AuditLog
    # The working-day calendar the edge counts with (packaged + loaded arrangements); None: the
    # domain builds it (models.deadlines.calendar_of), for callers that have no runtime.
    calendar: Any = None

    def as_system(self) -> Ctx:
        return Ctx(now=self.now, actor=SYSTEM, audit=self.audit, calendar=self.calendar)
