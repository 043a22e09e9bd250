"""浙政钉 account ids kept in the database (table ``platform_user``), shared by every dispatcher.

A lookup reads one row by primary key; a row older than ``ttl`` is looked up again (people move
between bureaus, and the platform then gives the mobile a new account). Writes are upserts of
one row in their own short transaction, so two dispatchers resolving the same mobile at once
both succeed and agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from models.db import Database
from models.platform_ids import PlatformUser


class DatabaseUserIds:
    def __init__(self, db: Database, ttl: timedelta = timedelta(days=30)) -> None:
        self.db = db
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"DatabaseUserIds({self.db.safe_url})"

    def lookup(self, platform: str, mobile: str, now: datetime) -> str | None:
        with self.db.read() as session:
            row = session.get(PlatformUser, (platform, mobile))
            if row is None or now - row.resolved_at > self.ttl:
                return None
            return row.user_id

    def remember(self, platform: str, mobile: str, user_id: str, now: datetime) -> None:
        try:
            with self.db.write() as session:
                row = session.get(PlatformUser, (platform, mobile))
                if row is None:
                    row = PlatformUser(platform=platform, mobile=mobile, user_id=user_id, resolved_at=now)
                else:
                    row.user_id, row.resolved_at = user_id, now
                session.add(row)
        except IntegrityError:
            pass  # another dispatcher stored the same answer a moment earlier

    def forget(self, platform: str, mobile: str) -> None:
        with self.db.write() as session:
            session.execute(
                delete(PlatformUser).where(PlatformUser.platform == platform, PlatformUser.mobile == mobile)  # type: ignore[arg-type]
            )
