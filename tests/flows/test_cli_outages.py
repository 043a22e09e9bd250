"""A silent or busy database ends a command with exit 4 and a sentence saying which it was.

A silent server through the installed console script, as an operator or cron runs it (a hang
is bounded by the subprocess's timeout); the rest through the CLI's entry point in-process. The
timeouts come from the SHENBAO_DB_* settings, and the wording from models.db.describe_outage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.flows.test_cli import Shenbao, run_script, sb  # noqa: F401  (sb is a fixture)
from tests.models.test_db_timeouts import silent_server  # noqa: F401  (a fixture)

EXIT_DB_UNREACHABLE = 4


@pytest.mark.parametrize("command", [("tick",), ("outbox",)])
def test_a_server_that_never_answers_ends_the_command_with_a_connect_timeout(
    sb: Shenbao,  # noqa: F811
    silent_server: int,  # noqa: F811
    command: tuple[str, ...],
) -> None:
    # Without SHENBAO_DB_CONNECT_TIMEOUT read (10 s default) or without any timeout, this hangs
    # or fails later with psycopg's English; run_script's bound (120 s) catches a hang.
    done = run_script(
        sb.home,
        *command,
        code=EXIT_DB_UNREACHABLE,
        SHENBAO_DATABASE_URL=f"postgresql://shenbao@127.0.0.1:{silent_server}/shenbao",
        SHENBAO_DB_CONNECT_TIMEOUT="1",
    )
    assert "连接数据库超时（2 秒内没有应答）" in done.stderr, done.stderr
    assert "SHENBAO_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_writer_held_by_another_connection_is_reported_as_busy_not_unreachable(
    sb: Shenbao,  # noqa: F811
) -> None:
    holder = sqlite3.connect(sb.home / "shenbao.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a long import does
    try:
        done = Shenbao(sb.home, SHENBAO_DB_BUSY_TIMEOUT="0.5")("tick", code=EXIT_DB_UNREACHABLE)
    finally:
        holder.rollback()
        holder.close()
    assert "数据库正忙" in done.stderr and "0.5 秒" in done.stderr, done.stderr
    assert "database is locked" not in done.stderr
    assert "SHENBAO_DATABASE_URL" not in done.stderr  # the address is right; the wait was too long


@pytest.mark.parametrize(
    "name", ["SHENBAO_DB_CONNECT_TIMEOUT", "SHENBAO_DB_STATEMENT_TIMEOUT", "SHENBAO_DB_BUSY_TIMEOUT"]
)
def test_a_timeout_of_zero_is_refused_naming_the_setting(tmp_path: Path, name: str) -> None:
    # Zero would mean "wait forever" to the database: exactly the hang the setting is for.
    done = Shenbao(tmp_path / "home", **{name: "0"})("status", now=None, code=2)
    assert name in done.stderr, done.stderr
