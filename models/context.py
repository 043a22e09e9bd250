"""Who is acting and when: passed into every domain function, never read from globals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.audit import AuditLog


@dataclass(frozen=True)
class Actor:
    """A person acting for an organisation; ``org_id`` None means an operator of the engine.

    Operators (the CLI user on the server, the engine itself) may perform any action; the
    audit records who they were. Signed-in coordinators carry their organisation and tier, and
    the guards check that the action is theirs to take.
    """

    name: str
    org_id: str | None = None
    tier: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.org_id}" if self.org_id else self.name

    @property
    def is_operator(self) -> bool:
        return self.org_id is None


SYSTEM = Actor(name="system")
# The engine recording what a provincial platform shows (models.sync): an operator identity,
# distinct from SYSTEM (which acts on shenbao's own rules: lapses, cascades) and from people.
PLATFORM_SYNC = Actor(name="平台同步")


@dataclass(frozen=True)
class Ctx:
    now: datetime
    actor: Actor
    audit: AuditLog

    def as_system(self) -> Ctx:
        return Ctx(now=self.now, actor=SYSTEM, audit=self.audit)
