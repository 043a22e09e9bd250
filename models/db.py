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


@dataclass(frozen=True)
class Timeouts:
    """How long any one step may wait on the database before it is reported as an outage.

    Without them a server that accepts a connection and never answers (a hung proxy, a
    half-open TCP connection after a failover) hangs ``tick``, ``send`` and the service's
    sweeps forever instead of failing with exit 4.
    """

    connect: float = 10.0  # PostgreSQL: the whole connection start-up, TCP and protocol
    statement: float = 120.0  # PostgreSQL: one statement, waits on locks included
    busy: float = 15.0  # SQLite: waiting for another writer (e.g. an import) to finish


def _sqlite_pragmas(busy_seconds: float):  # type: ignore[no-untyped-def]
    def on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # We emit BEGIN ourselves (see _begin) so that writers can take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL + NORMAL: many small transactions (every action is one) without an fsync each;
        # readers (status, dashboard) never block the writer.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cur.close()

    return on_connect


def connect_seconds(timeouts: Timeouts) -> int:
    """The connect timeout libpq really applies: whole seconds, and never under 2 (libpq reads
    1 as 2), so the message about a timeout names the wait that happened."""
    return max(2, round(timeouts.connect))


def _postgres_connect_args(timeouts: Timeouts) -> dict[str, object]:
    return {
        "connect_timeout": connect_seconds(timeouts),
        "options": f"-c statement_timeout={int(timeouts.statement * 1000)}",
        # A vanished server (network partition, a machine switched off) is noticed by TCP
        # instead of after the kernel's two-hour default: unacknowledged data gives up after
        # the statement timeout, an idle pooled connection after about a minute of silence.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": int(timeouts.statement * 1000),
    }


def describe_outage(exc: BaseException, timeouts: Timeouts | None = None) -> str:
    """What a coordinator or operator reads when the database did not answer in time or at all.

    One place for the wording, so the CLI, the service's log and the dashboard say the same.
    """
    timeouts = timeouts or Timeouts()
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    lowered = text.lower()
    if "database is locked" in lowered or "database is busy" in lowered:
        return (
            f"数据库正忙：另一个写入（如批量导入）已占用数据库超过 {timeouts.busy:g} 秒，"
            "本次操作未执行，未作任何修改；请稍后重试"
        )
    if "statement timeout" in lowered or "canceling statement" in lowered:
        return (
            f"数据库在 {timeouts.statement:g} 秒内没有完成这次操作（可能被其他事务的锁挡住或数据库过载），"
            "已放弃，未作任何修改；请稍后重试"
        )
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"连接数据库超时（{connect_seconds(timeouts)} 秒内没有应答）：{text}"
    return f"数据库无法访问：{text}"


def _make_sqlite_engine(url: str, *, immediate: bool, timeouts: Timeouts) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeouts.busy})
    event.listen(engine, "connect", _sqlite_pragmas(timeouts.busy))

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
    timeouts: Timeouts = field(default_factory=Timeouts)
    reader: Engine = field(init=False)
    writer: Engine = field(init=False)

    def __post_init__(self) -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.reader = _make_sqlite_engine(self.url, immediate=False, timeouts=self.timeouts)
            self.writer = _make_sqlite_engine(self.url, immediate=True, timeouts=self.timeouts)
        else:
            if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
                # psycopg 3 is the driver we install; plain postgresql:// means it here.
                parsed = parsed.set(drivername="postgresql+psycopg")
                self.url = parsed.render_as_string(hide_password=False)
            connect_args = (
                _postgres_connect_args(self.timeouts) if parsed.drivername.endswith("psycopg") else {}
            )
            self.reader = create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
            self.writer = self.reader
        from models.machines import add_source

        add_source(self.learn_kinds)

    def learn_kinds(self) -> None:
        """Read the campaigns stored here, so their case kinds are known (asked for an unknown kind)."""
        from sqlalchemy.exc import SQLAlchemyError

        from models.campaign import learn_kinds

        try:
            with Session(self.reader, expire_on_commit=False) as session:
                learn_kinds(session)
        except SQLAlchemyError:
            pass  # no campaign table yet, or the database is away: the kind stays unknown

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
