"""Which database this is: a random identity written once, when the schema is created.

The audit anchor lives outside the database and must be found again whatever URL reaches the
database (127.0.0.1 or localhost, an old or a rotated password), and never be named after a
credential. So it is named after this row, not after the URL; ``shenbao init`` on an existing
database leaves it alone (the migration that writes it runs once).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel

from models.types import UTCDateTime


class DatabaseIdentity(SQLModel, table=True):
    __tablename__ = "database_identity"

    id: int = Field(default=1, primary_key=True)
    identity: str = Field(max_length=36)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def new_identity() -> str:
    return str(uuid.uuid4())


def database_identity(session: Session) -> str | None:
    row = session.get(DatabaseIdentity, 1)
    return row.identity if row is not None else None


def create_identity(session: Session, now: datetime) -> str:
    """A new identity, for a database that has none (one emptied table by table, say)."""
    identity = new_identity()
    session.add(DatabaseIdentity(id=1, identity=identity, created_at=now))
    session.flush()
    return identity
