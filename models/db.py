"""Database connections: SQLite by default, PostgreSQL for the distributed set-up.

Nothing here runs at import time; the edge builds a :class:`Database` from its settings and
hands sessions to the domain, which never commits on its own behalf.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message names the URL (without password)."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # We emit BEGIN ourselves (see _begin) so that writers can take the lock up front.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: many small transactions (every action is one) without an fsync each;
    # readers (status, dashboard) never block the writer.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def _make_sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
    event.listen(engine, "connect", _sqlite_pragmas)

    # A deferred transaction that reads the audit head and then writes would fail with
    # SQLITE_BUSY when another writer got there first (busy_timeout does not apply to a lock
    # upgrade). Writers therefore start with BEGIN IMMEDIATE and queue instead of failing.
    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin_sql)

    return engine


@dataclass
class Database:
    """Two engines on one database: ``reader`` for queries, ``writer`` for changes.

    On PostgreSQL they are the same engine (row locks serialise the audit chain); on SQLite
    the writer begins IMMEDIATE so concurrent writers wait their turn.
    """

    url: str
    reader: Engine = field(init=False)
    writer: Engine = field(init=False)

    def __post_init__(self) -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.reader = _make_sqlite_engine(self.url, immediate=False)
            self.writer = _make_sqlite_engine(self.url, immediate=True)
        else:
            if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
                # psycopg 3 is the driver we install; plain postgresql:// means it here.
                parsed = parsed.set(drivername="postgresql+psycopg")
                self.url = parsed.render_as_string(hide_password=False)
            self.reader = create_engine(self.url, pool_pre_ping=True)
            self.writer = self.reader

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.reader, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read session that sees one instant throughout, while writers go on.

        SQLite in WAL mode keeps a read transaction's snapshot by itself; PostgreSQL's default
        (read committed) would show each query the newest commits, so it asks for repeatable read.
        """
        with Session(self.reader, expire_on_commit=False) as session:
            if not self.is_sqlite:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with Session(self.writer, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()
