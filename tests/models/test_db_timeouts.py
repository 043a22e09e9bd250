"""The database can be slow or silent: every wait is bounded, and the outage is named.

A server that accepts connections and never answers, a statement stuck behind a lock, a
SQLite writer queued behind a long import: each ends with an error a person can read instead
of hanging the command or the service.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models.db import Database, Timeouts, describe_outage


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts every connection and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def _outcome(fn) -> list[BaseException]:  # type: ignore[no-untyped-def]
    """Run ``fn`` in a thread; a hang shows as a thread still alive, not as a frozen suite."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the database call never returned"
    return errors


def test_it_gives_up_on_a_server_that_accepts_and_never_answers(silent_server: int) -> None:
    db = Database(f"postgresql://shenbao@127.0.0.1:{silent_server}/shenbao", timeouts=Timeouts(connect=1))

    def query() -> None:
        with db.read() as session:
            session.execute(text("SELECT 1"))

    errors = _outcome(query)
    assert len(errors) == 1 and isinstance(errors[0], OperationalError)
    # SHENBAO_DB_CONNECT_TIMEOUT=1 is waited as 2 s by libpq: the message names the wait that happened.
    assert describe_outage(errors[0], db.timeouts).startswith("连接数据库超时（2 秒内没有应答）")


def test_it_ends_a_statement_that_waits_too_long(pg_url: str) -> None:
    db = Database(pg_url, timeouts=Timeouts(statement=0.5))
    with db.read() as session:
        assert session.execute(text("SHOW statement_timeout")).scalar() == "500ms"

    def slow() -> None:
        with db.read() as session:
            session.execute(text("SELECT pg_sleep(30)"))

    errors = _outcome(slow)
    assert len(errors) == 1 and isinstance(errors[0], OperationalError)
    assert describe_outage(errors[0], db.timeouts).startswith("数据库在 0.5 秒内没有完成这次操作")
    db.dispose()


def test_it_says_the_database_is_busy_when_a_writer_holds_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shenbao.db'}"
    holder, waiter = Database(url), Database(url, timeouts=Timeouts(busy=0.2))
    with holder.write() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    with holder.write() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))  # BEGIN IMMEDIATE: the write lock is ours

        def write() -> None:
            with waiter.write() as other:
                other.execute(text("INSERT INTO t VALUES (2)"))

        errors = _outcome(write)
    assert len(errors) == 1 and isinstance(errors[0], OperationalError)
    message = describe_outage(errors[0], waiter.timeouts)
    assert message.startswith("数据库正忙：另一个写入（如批量导入）已占用数据库超过 0.2 秒")
    with holder.read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    holder.dispose()
    waiter.dispose()
