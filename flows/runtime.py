"""What every command needs, built once from settings: the database, the audit log, the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from calendars.timeutil import parse_instant
from calendars.workdays import WorkCalendar, load_default_calendar
from flows.settings import Settings
from models.audit import AuditLog
from models.context import Actor, Ctx
from models.db import Database


@dataclass
class Runtime:
    settings: Settings
    now_override: str | None = None

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.resolved_database_url)

    def audit(self, *, create: bool = False) -> AuditLog:
        return AuditLog.from_key_file(self.settings.resolved_key_file, self.settings.resolved_anchor_file,
                                      create=create)

    @cached_property
    def calendar(self) -> WorkCalendar:
        env = {"SHENBAO_WORKDAYS_FILE": str(self.settings.workdays_file)} if self.settings.workdays_file else {}
        return load_default_calendar(env)

    def now(self) -> datetime:
        """The clock is read once per operation: real time, or --now / SHENBAO_NOW."""
        text = self.now_override or self.settings.now
        return parse_instant(text) if text else datetime.now(UTC)

    def ctx(self, actor: Actor, *, now: datetime | None = None) -> Ctx:
        return Ctx(now=now or self.now(), actor=actor, audit=self.audit())
