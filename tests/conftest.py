"""Shared fixtures: real SQLite files and the real PostgreSQL server on this machine.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL gets one database per
test session (and per xdist worker), created here and dropped at the end; tables are emptied
between tests, which is far cheaper than a database per test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import parse_instant
from models.audit import AuditLog
from models.context import Actor, Ctx
from models.db import Database
from models.registry import load_campaign, seed_divisions
from models.schema import upgrade

PG_ADMIN_URL = os.environ.get(
    "SHENBAO_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# A fixed "now" inside the 2026 campaigns: tests pass the clock, they never read it.
CURRENT_TIME = parse_instant("2026-06-01T10:00")
CLUSTER = "2026-cluster-selection"
JINGPIN = "2026-jingpin"
# Domain tests act past the tier checks explicitly, as an administrator would (and say why).
OPERATOR = Actor(name="tester", admin_reason="自动化测试")


def _pg_database(worker: str) -> Iterator[str]:
    import psycopg

    name = f"shenbao_test_{worker}_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is not reachable at {admin}: {exc} (start it: see README)")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    yield from _pg_database(worker_id)


@pytest.fixture(scope="session")
def _pg_schema(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _truncate(database: Database) -> None:
    with database.writer.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database on each backend."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'shenbao.db'}")
        upgrade(database)
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("_pg_schema")
        _truncate(database)
        yield database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'shenbao.db'}")
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog.from_key_file(tmp_path / "keys" / "audit.key", tmp_path / "anchor.json", create=True)


@pytest.fixture
def make_ctx(audit: AuditLog):
    def make(now: datetime | str = CURRENT_TIME, actor: Actor = OPERATOR) -> Ctx:
        when = parse_instant(now) if isinstance(now, str) else now
        return Ctx(now=when, actor=actor, audit=audit)

    return make


@pytest.fixture
def seeded(db: Database, make_ctx) -> Database:
    """Divisions and both built-in 2026 campaigns loaded, as `shenbao init` leaves them."""
    ctx = make_ctx(parse_instant("2026-05-26T09:00"))
    with db.write() as session:
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
    return db
