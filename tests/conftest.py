"""Shared fixtures: real SQLite files and the real PostgreSQL server on this machine.

Every test that takes ``db`` runs twice, once per backend, on a database no other test sees.

Migrating and seeding cost far more than copying, so each test session (each xdist worker)
migrates and seeds once per backend and every test starts from a copy. SQLite: a template
file (empty, or seeded as `shenbao init` leaves it) copied per test. PostgreSQL: one database
per session, emptied per test (DELETE, not TRUNCATE: see `_empty_in`); for a test that takes
``seeded``, the seeded rows are copied back from a schema that holds them (far cheaper here than
``CREATE DATABASE … TEMPLATE``).

The audit events of the seeded rows are chained with the session's audit key, so every test's
``audit`` fixture uses that key, and a seeded database comes with the anchor of its head:
exactly what the test would have had if it had seeded the database itself.

The heavier worlds (the dashboard's province, the reminder tests' town) are built the same way:
once per session and backend on a seeded database, then loaded into each test's own ``db``
(``built_world``).
"""

from __future__ import annotations

import copy
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pytest
from sqlalchemy import Connection, text

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import parse_instant
from models.audit import AuditLog
from models.context import Actor, Ctx
from models.db import Database
from models.registry import load_campaign, seed_divisions
from models.schema import upgrade

if TYPE_CHECKING:
    import psycopg

PG_ADMIN_URL = os.environ.get(
    "SHENBAO_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# A fixed "now" inside the 2026 campaigns: tests pass the clock, they never read it.
CURRENT_TIME = parse_instant("2026-06-01T10:00")
CLUSTER = "2026-cluster-selection"
JINGPIN = "2026-jingpin"
# Domain tests act past the tier checks explicitly, as an administrator would (and say why).
OPERATOR = Actor(name="tester", admin_reason="自动化测试")
# When `seeded` loads the campaigns (the instant its audit events carry).
SEEDED_AT = parse_instant("2026-05-26T09:00")

Content = Literal["empty", "seeded"]
MakeCtx = Callable[..., Ctx]
# What the test's `db` was copied from, read by `seeded` so that it seeds only when needed.
_CONTENT = pytest.StashKey[str]()
# The backend of the test's `db` and the database itself, read by `built_world`.
_BACKEND = pytest.StashKey[tuple[str, "Database"]]()
W = TypeVar("W")
# Builds a world on a seeded database: (database, make_ctx, folder for its files) -> what it built.
BuildWorld = Callable[[Database, MakeCtx, Path], W]


def key_file(tmp_path: Path) -> Path:
    """Where a test's audit key lives (the dashboard's Runtime reads the same file)."""
    return tmp_path / "keys" / "audit.key"


def anchor_file(tmp_path: Path) -> Path:
    return tmp_path / "anchor.json"


def seed(database: Database, ctx: Ctx) -> None:
    """Divisions and both built-in 2026 campaigns, as `shenbao init` loads them."""
    with database.write() as session:
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)


def _build(database: Database, content: Content, audit: AuditLog) -> None:
    upgrade(database)
    if content == "seeded":
        seed(database, Ctx(now=SEEDED_AT, actor=OPERATOR, audit=audit))
    # CREATE DATABASE … TEMPLATE refuses a template anyone is connected to.
    database.dispose()


def _admin() -> str:
    return PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")


def _pg_connect() -> psycopg.Connection:
    import psycopg

    try:
        return psycopg.connect(_admin(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is not reachable at {_admin()}: {exc} (start it: see README)")


def _pg_url(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _pg_database(worker: str, prefix: str = "shenbao_test") -> Iterator[str]:
    """A new, empty PostgreSQL database for as long as the generator runs, then dropped."""
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:8]}"
    with _pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        # Not waited for: a DROP DATABASE at the end of each worker waited 7–39 s on checkpoints.
        drop_pg_database_later(name)


class SqliteTemplates:
    """One migrated (and one seeded) SQLite file per session, built on first use."""

    def __init__(self, folder: Path, key: Path) -> None:
        self.folder = folder
        self.key = key
        self._built: dict[Content, Path] = {}

    def anchor(self, content: Content) -> Path:
        return self.folder / f"{content}.anchor.json"

    def file(self, content: Content) -> Path:
        if content not in self._built:
            path = self.folder / f"{content}.db"
            audit = AuditLog.from_key_file(self.key, self.anchor(content))
            _build(Database(f"sqlite:///{path}"), content, audit)
            _fold_wal(path)
            self._built[content] = path
        return self._built[content]

    def copy(self, content: Content, target: Path) -> Database:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.file(content), target)
        return Database(f"sqlite:///{target}")


class PgSnapshot:
    """The rows of the session's PostgreSQL database as they are now, kept aside in a schema of it.

    Measured side by side on this machine (PostgreSQL 15, the dashboard's world: 23 tables,
    258 rows, load 2-6): emptying the tables by DELETE and copying the kept rows back takes
    10-25 ms a copy; the same with TRUNCATE 400-750 ms; CREATE DATABASE … TEMPLATE (and DROP)
    450-2,000 ms with STRATEGY WAL_LOG, 2,400-4,000 ms with FILE_COPY (a checkpoint each).
    """

    def __init__(self, database: Database, schema: str, anchor: Path) -> None:
        self.database = database
        self.schema = schema
        self.anchor = anchor
        with database.writer.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            self.tables = [
                t for t in _tables(conn) if conn.execute(text(f'SELECT EXISTS (TABLE "{t}")')).scalar()
            ]
            for table in self.tables:
                conn.execute(text(f'CREATE TABLE "{schema}"."{table}" AS TABLE public."{table}"'))
            self.sequences = [
                (name, int(value))
                for name, value in conn.execute(
                    text(
                        "SELECT sequencename, last_value FROM pg_sequences"
                        " WHERE schemaname = 'public' AND last_value IS NOT NULL"
                    )
                )
            ]

    def restore(self) -> None:
        """The database exactly as it was when kept: rows, audit head and sequences."""
        with self.database.writer.begin() as conn:
            # Rows go back table by table; foreign keys are checked by no trigger meanwhile
            # (the copy is of rows that satisfied them): `_empty_in` turns them off.
            _empty_in(conn)
            for table in self.tables:
                conn.execute(
                    text(
                        f'INSERT INTO public."{table}" OVERRIDING SYSTEM VALUE'
                        f' SELECT * FROM "{self.schema}"."{table}"'
                    )
                )
            for name, value in self.sequences:
                conn.execute(text("SELECT setval(:seq, :value)"), {"seq": f'public."{name}"', "value": value})


def seeded_snapshot(database: Database, key: Path, anchor: Path) -> PgSnapshot:
    _truncate(database)
    seed(database, Ctx(now=SEEDED_AT, actor=OPERATOR, audit=AuditLog.from_key_file(key, anchor)))
    return PgSnapshot(database, "seeded_template", anchor)


def ctx_maker(audit: AuditLog) -> MakeCtx:
    def make(now: datetime | str = CURRENT_TIME, actor: Actor = OPERATOR) -> Ctx:
        when = parse_instant(now) if isinstance(now, str) else now
        return Ctx(now=when, actor=actor, audit=audit)

    return make


class Worlds:
    """Worlds built once per session and backend on a seeded database, by the name given."""

    def __init__(self, folder: Path, key: Path, sqlite: SqliteTemplates) -> None:
        self.folder = folder
        self.key = key
        self.sqlite = sqlite
        # name -> (template database, what the builder returned, and where the template is)
        self._sqlite: dict[str, tuple[Database, Any, Path]] = {}
        self._pg: dict[str, tuple[Any, PgSnapshot]] = {}

    def _build(
        self, name: str, backend: str, database: Database, build: BuildWorld[Any], anchor: Path
    ) -> Any:
        folder = self.folder / f"{name}-{backend}"
        folder.mkdir(parents=True, exist_ok=True)
        return build(database, ctx_maker(AuditLog.from_key_file(self.key, anchor)), folder)

    def load_sqlite(self, name: str, build: BuildWorld[W], test_db: Database, tmp_path: Path) -> W:
        if name not in self._sqlite:
            path = self.folder / f"{name}.db"
            anchor = self.folder / f"{name}.anchor.json"
            template = self.sqlite.copy("seeded", path)
            shutil.copyfile(self.sqlite.anchor("seeded"), anchor)
            value = self._build(name, "sqlite", template, build, anchor)
            template.dispose()
            _fold_wal(path)
            self._sqlite[name] = (template, value, anchor)
        template, value, anchor = self._sqlite[name]
        # The test's copy of the seeded file is replaced by the world's: nothing has opened it yet
        # but `seeded` may have, so close it and drop any WAL beside it first.
        test_db.dispose()
        target = Path(test_db.url.removeprefix("sqlite:///"))
        for extra in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            extra.unlink(missing_ok=True)
        shutil.copyfile(self.folder / f"{name}.db", target)
        shutil.copyfile(anchor, anchor_file(tmp_path))
        # The builder's result refers to the template database: the copy refers to the test's.
        return copy.deepcopy(value, {id(template): test_db})

    def load_pg(self, name: str, build: BuildWorld[W], pg: PgSnapshot, tmp_path: Path) -> W:
        if name not in self._pg:
            anchor = self.folder / f"{name}.pg-anchor.json"
            pg.restore()
            shutil.copyfile(pg.anchor, anchor)
            value = self._build(name, "postgresql", pg.database, build, anchor)
            self._pg[name] = (value, PgSnapshot(pg.database, f"world_{name}", anchor))
        value, snapshot = self._pg[name]
        snapshot.restore()
        shutil.copyfile(snapshot.anchor, anchor_file(tmp_path))
        return copy.deepcopy(value, {id(pg.database): pg.database})


def built_world(request: pytest.FixtureRequest, name: str, build: BuildWorld[W]) -> W:
    """What ``build(db, make_ctx, folder)`` makes on a seeded database, loaded into the test's
    own ``db`` (the fixture must take ``seeded``): built once per session and backend, copied per
    test, exactly as if the test had built it (same rows, ids, audit chain and anchor).

    ``name`` names the world: one name, one builder. The builder must leave nothing the test
    needs outside the database and what it returns (its folder is the session's, not the test's).
    """
    backend, database = request.node.stash[_BACKEND]
    if request.node.stash.get(_CONTENT, "") != "seeded":
        raise RuntimeError(f"world {name!r}: the fixture that builds it must take `seeded`")
    worlds: Worlds = request.getfixturevalue("_worlds")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    if backend == "sqlite":
        return worlds.load_sqlite(name, build, database, tmp_path)
    return worlds.load_pg(name, build, request.getfixturevalue("_pg_seeded"), tmp_path)


def _fold_wal(path: Path) -> None:
    # Fold the WAL back into the main file, so that one file copy is the whole database;
    # the engine turns WAL on again when it opens the copy.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.backends("sqlite")`` (on a test or a module, the closest one wins): the
    test's ``db`` on those backends only, instead of both (tests/README.md, rule 4).

    Turned into a ``parametrize`` mark before pytest reads the marks, so that the fixture's own
    params give way to it as they give way to any test's parametrization of ``db``.
    """
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or "db" not in metafunc.fixturenames:
        return
    unknown = set(marker.args) - {"sqlite", "postgresql"}
    if unknown or not marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: backends{marker.args}: name sqlite and/or postgresql"
        )
    metafunc.definition.add_marker(pytest.mark.parametrize("db", list(marker.args), indirect=True))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group again under pytest 9.2, and put the heavy tests first.

    pytest-xdist 3.8.0 marks an ``xdist_group`` test by appending ``@group`` to ``item._nodeid``,
    an attribute pytest 9.2 no longer reads (the id is ``item._id`` now): the suffix was lost and
    every group spread over both workers, each building the group's session fixtures (two
    Prefect servers). Carry xdist's suffixed id over to the attribute pytest reads.
    """
    from _pytest.nodeid import NodeId

    for item in items:
        grouped = item.__dict__.get("_nodeid")
        if isinstance(grouped, str) and grouped != item.nodeid:
            item._id = NodeId.parse(grouped)
    # The longest tests first (`@pytest.mark.heavy`): xdist hands out work in this order, so a
    # long test started last would hold one worker while the other idles. A stable sort, the
    # same on every worker (xdist requires identical collections).
    # A heavy group (one worker runs it all) goes before the heavy tests on their own.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("heavy") is None,
            item.get_closest_marker("xdist_group") is None,
        )
    )


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))


@pytest.fixture(scope="session")
def _audit_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's audit key: the seeded templates' events are chained with it."""
    path = tmp_path_factory.mktemp("audit") / "audit.key"
    AuditLog.from_key_file(path, None, create=True)
    return path


@pytest.fixture(scope="session")
def _sqlite_templates(tmp_path_factory: pytest.TempPathFactory, _audit_key: Path) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("templates"), _audit_key)


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    yield from _pg_database(worker_id)


@pytest.fixture(scope="session")
def _pg_schema(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    upgrade(database)
    yield database
    database.dispose()


def _tables(conn: Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version' ORDER BY tablename"
            )
        )
    ]


def _empty_in(conn: Connection) -> None:
    """Every table empty and every sequence at its start, as ``TRUNCATE … RESTART IDENTITY``
    would leave them, for the rest of the transaction with no foreign-key trigger.

    DELETE rather than TRUNCATE: TRUNCATE gives every table and index a new file and syncs them
    at commit, 20-40 times the cost of deleting the few hundred rows a test leaves (measured in
    `PgSnapshot`'s note). The dead rows are autovacuum's. Foreign keys are not checked while
    the tables empty (every table empties, in any order): session_replication_role = replica
    needs a superuser, as the tests are.
    """
    conn.execute(text("SET LOCAL session_replication_role = replica"))
    for table in _tables(conn):
        conn.execute(text(f'DELETE FROM public."{table}"'))
    conn.execute(
        text(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)"
            " FROM pg_sequences WHERE schemaname = 'public'"
        )
    )


def _truncate(database: Database) -> None:
    """The session's PostgreSQL database emptied (`_empty_in`), for the fixtures that want it bare."""
    with database.writer.begin() as conn:
        _empty_in(conn)


@pytest.fixture(scope="session")
def _pg_seeded(
    _pg_schema: Database, _audit_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> PgSnapshot:
    return seeded_snapshot(_pg_schema, _audit_key, tmp_path_factory.mktemp("pg-seeded") / "anchor.json")


@pytest.fixture(scope="session")
def _worlds(
    tmp_path_factory: pytest.TempPathFactory, _audit_key: Path, _sqlite_templates: SqliteTemplates
) -> Worlds:
    return Worlds(tmp_path_factory.mktemp("worlds"), _audit_key, _sqlite_templates)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of the test's own on each backend: empty, or, when the test takes
    ``seeded`` (directly or through another fixture), already seeded from the template."""
    content: Content = "seeded" if "seeded" in request.fixturenames else "empty"
    request.node.stash[_CONTENT] = content
    if request.param == "sqlite":
        templates: SqliteTemplates = request.getfixturevalue("_sqlite_templates")
        database = templates.copy(content, tmp_path / "shenbao.db")
        _copy_anchor(templates.anchor(content), tmp_path)
        request.node.stash[_BACKEND] = ("sqlite", database)
        yield database
        database.dispose()
    elif content == "empty":
        database = request.getfixturevalue("_pg_schema")
        _truncate(database)
        request.node.stash[_BACKEND] = ("postgresql", database)
        yield database
    else:
        pg: PgSnapshot = request.getfixturevalue("_pg_seeded")
        pg.restore()
        _copy_anchor(pg.anchor, tmp_path)
        request.node.stash[_BACKEND] = ("postgresql", pg.database)
        yield pg.database


def _copy_anchor(template_anchor: Path, tmp_path: Path) -> None:
    # An empty template commits no audit event, so it has no anchor: nor has its copy.
    if template_anchor.exists():
        shutil.copyfile(template_anchor, anchor_file(tmp_path))


@pytest.fixture
def sqlite_db(tmp_path: Path, _sqlite_templates: SqliteTemplates) -> Iterator[Database]:
    database = _sqlite_templates.copy("empty", tmp_path / "shenbao.db")
    yield database
    database.dispose()


@pytest.fixture
def audit(tmp_path: Path, _audit_key: Path) -> AuditLog:
    """The test's audit log: the session's key (copied to tmp_path/keys) and the test's anchor."""
    key = key_file(tmp_path)
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_audit_key.read_bytes())
    return AuditLog.from_key_file(key, anchor_file(tmp_path))


@pytest.fixture
def make_ctx(audit: AuditLog) -> MakeCtx:
    return ctx_maker(audit)


@pytest.fixture
def seeded(request: pytest.FixtureRequest, db: Database, make_ctx: MakeCtx) -> Database:
    """Divisions and both built-in 2026 campaigns loaded, as `shenbao init` leaves them."""
    if request.node.stash.get(_CONTENT, "empty") != "seeded":
        # Reached through getfixturevalue after `db` was set up empty: seed it here.
        seed(db, make_ctx(SEEDED_AT))
    return db


# Drops a database once the connection's other users are gone; run detached (see below).
_DROP_LATER = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=30) as conn:
    conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % sys.argv[2])
"""


def drop_pg_database_later(name: str) -> None:
    """DROP DATABASE in a detached process, so that the session does not wait for it.

    On PostgreSQL 15 DROP DATABASE ends with an immediate checkpoint and waits for it; while a
    suite runs a timed checkpoint is usually under way (the suite leaves thousands of files to
    fsync), and the drop waits for that one to end first: 9 s quiet, 30 s under load, at the end
    of every worker. Nothing needs the database gone before the run ends. (posix_spawn, not
    Popen: nothing waits for the child, which the init process reaps once pytest has exited.)
    """
    import sys

    os.posix_spawn(
        sys.executable,
        [sys.executable, "-c", _DROP_LATER, _admin(), name],
        os.environ,
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
        setsid=True,
    )


@pytest.fixture
def campaigns_forgotten() -> Iterator[None]:
    """Campaign files a test loads are known to this process only for the test: the programs and
    machines they registered (process-wide, as in a running engine) are forgotten after it, so a
    later test in the same worker still sees the built-in programs only (the notification log
    shows every mail to a viewer of every program)."""
    from models import machines, programs

    machines._builtin_loaded()  # the built-in ones stay known (read once per process)
    noted, by_campaign = dict(programs._NOTED), dict(machines._BY_CAMPAIGN)
    yield
    programs._NOTED.clear()
    programs._NOTED.update(noted)
    machines._BY_CAMPAIGN.clear()
    machines._BY_CAMPAIGN.update(by_campaign)
