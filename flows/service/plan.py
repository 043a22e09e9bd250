"""The service's clock and the instants it must wake at.

The clock is read once per job. ``--now`` (or SHENBAO_NOW) starts the service's clock at that
instant and lets it run at real speed (an offset), so a drill can start a minute before a
deadline and watch it close; APScheduler itself runs on real time and date jobs are planned at
``instant - offset``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from operations.runtime import Runtime

WAKE_PREFIX = "wake:"


@dataclass(frozen=True)
class ServiceClock:
    """Real time plus an offset (zero unless the service was started with --now)."""

    offset: timedelta = timedelta(0)
    real: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)

    @classmethod
    def starting_at(cls, start: datetime) -> ServiceClock:
        return cls(offset=start - datetime.now(UTC))

    def now(self) -> datetime:
        return self.real() + self.offset

    def to_real(self, instant: datetime) -> datetime:
        return instant - self.offset


def wake_id(at: datetime) -> str:
    return WAKE_PREFIX + at.astimezone(UTC).isoformat()


def deadline_signature(session: Any) -> str:
    """Changes whenever a deadline moves or a campaign file is (re)loaded: the trigger to re-plan.

    Two tiny tables; reading them every minute costs less than a missed 24:00 closing.
    """
    from sqlmodel import col

    from models.campaign import Campaign, StageDeadline

    d = StageDeadline
    rows = session.execute(
        select(col(d.campaign_id), col(d.stage_id), col(d.version), col(d.due_at)).order_by(
            col(d.campaign_id), col(d.stage_id)
        )
    ).all()
    campaigns = session.execute(
        select(col(Campaign.id), col(Campaign.spec_digest)).order_by(col(Campaign.id))
    ).all()
    from sqlalchemy import func

    from models.campaign import CaseDeadline
    from models.workdays import WorkdayArrangement

    # A year's working days loaded, a case returned (its own deadline): re-plan too.
    years = session.execute(
        select(col(WorkdayArrangement.year), func.max(col(WorkdayArrangement.version))).group_by(
            col(WorkdayArrangement.year)
        )
    ).all()
    cases = session.execute(select(func.count(), func.max(col(CaseDeadline.changed_at)))).one()
    material = repr([tuple(r) for r in rows]) + repr([tuple(c) for c in campaigns])
    material += repr([tuple(y) for y in years]) + repr(tuple(cases))
    return hashlib.sha1(material.encode()).hexdigest()


@dataclass(frozen=True)
class PlannedWake:
    at: datetime  # the instant in the service's clock
    what: str


def plan_wakeups(rt: Runtime, start: datetime, end: datetime) -> list[PlannedWake]:
    """Every instant in (start, end] that matters, several reasons at one instant merged."""
    from notifications.wakeups import wakeups

    with rt.db.read() as session:
        found = wakeups(session, rt.calendar, start, end)
    merged: dict[datetime, list[str]] = {}
    for w in found:
        merged.setdefault(w.at, []).append(w.what)
    return [PlannedWake(at, "；".join(sorted(set(whats)))) for at, whats in sorted(merged.items())]


@dataclass
class PlanReport:
    planned: int
    added: int
    removed: int
    next: PlannedWake | None
