"""``shenbao send`` when the SMTP server cannot be reached, and ``shenbao outbox retry`` for dead
letters, through the real command line against a real SQLite home."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models.audit import AuditEvent
from models.db import Database
from models.outbox import E_DEAD, E_PENDING, E_SENT
from notifications.loopback import LoopbackSMTP
from tests.flows.conftest import copy_home
from tests.flows.test_cli import Shenbao
from tests.notifications.conftest import add_emails, emails, free_port


@pytest.fixture
def sb(tmp_path: Path, initialised_home: Path) -> Shenbao:
    copy_home(initialised_home, tmp_path / "home")
    return Shenbao(tmp_path / "home")


def database(sb: Shenbao) -> Database:
    return Database(f"sqlite:///{sb.home / 'shenbao.db'}")


def test_send_exits_6_naming_the_server_when_it_cannot_be_reached_and_counts_no_attempt(sb: Shenbao) -> None:
    db = database(sb)
    add_emails(db, 2)
    port = free_port()
    sb.env |= {"SHENBAO_SMTP_PORT": str(port)}

    result = sb("send", code=6)

    assert f"127.0.0.1:{port}" in result.stderr and "无法连接 SMTP 服务器" in result.stderr
    assert "2 封邮件未发送" in result.stderr
    assert {(e.status, e.attempts) for e in emails(db).values()} == {(E_PENDING, 0)}


def test_outbox_retry_requeues_dead_letters_with_an_audit_event_and_they_are_sent(sb: Shenbao) -> None:
    db = database(sb)
    dead = add_emails(db, 2, status=E_DEAD, attempts=10, last_error="451 try later (attempt 10 of 10)")
    [alive] = add_emails(db, 1, first=5)

    refused = sb("outbox", "retry", str(dead[0]), str(alive), "--reason", "服务器已恢复", code=2)
    assert f"{alive}（pending）" in refused.stderr
    assert {emails(db)[i].status for i in dead} == {E_DEAD}
    with db.read() as session:
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.action == "refusal")).one()
    assert refusal.subject == "outbox" and f"{alive}（pending）" in refusal.reason  # the refusal is on record

    sb("outbox", "retry", "--all-dead", "--by", "李工", "--reason", "服务器已恢复")

    rows = emails(db)
    assert {(rows[i].status, rows[i].attempts, rows[i].last_error) for i in dead} == {(E_PENDING, 0, "")}
    with db.read() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox_requeue")).all()
    assert sorted(e.subject for e in events) == sorted(f"email:{i}" for i in dead)
    # The person and the organisation they act for (省经信厅 from SHENBAO_ACTOR), never anonymous.
    assert {(e.actor, e.reason) for e in events} == {("李工@330000", "服务器已恢复")}
    assert "attempt 10 of 10" in events[0].details
    sb("audit", "verify")  # the chain still verifies with the new events

    with LoopbackSMTP() as smtp:
        sb.env |= {"SHENBAO_SMTP_PORT": str(smtp.port)}
        sb("send")
        assert len(smtp) == 3
    assert {e.status for e in emails(db).values()} == {E_SENT}


def test_outbox_shows_an_unknown_outcome(sb: Shenbao) -> None:
    db = database(sb)
    add_emails(db, 1)
    with LoopbackSMTP() as smtp:
        smtp.drop_after_storing()
        sb.env |= {"SHENBAO_SMTP_PORT": str(smtp.port)}
        sb("send")

    listed = sb.json("outbox")
    assert [(e["status"], e["last_outcome"]) for e in listed] == [("retry", "unknown")]
    assert "retry（结果未知）" in sb("outbox").stdout


def _dead_zzd(db: Database) -> int:
    from datetime import UTC, datetime

    from models.channels import C_DEAD, ChannelAttempt, ChannelMessage

    at = datetime(2026, 6, 22, 1, 30, tzinfo=UTC)
    with db.write() as session:
        m = ChannelMessage(
            key="test:zzd:dead",
            channel="zzd",
            address="13900000001",
            to_name="王五",
            title="【通知】JQ-1 退回修改",
            text="### 退回修改",
            created_at=at,
            next_attempt_at=at,
            status=C_DEAD,
            attempts=1,
            last_error="60121 找不到该用户",
        )
        session.add(m)
        session.flush()
        session.add(
            ChannelAttempt(
                message_id=int(m.id), channel="zzd", at=at, worker="t", outcome="permanent", code="60121"
            )  # type: ignore[arg-type]
        )
        return int(m.id)  # type: ignore[arg-type]


def test_outbox_shows_each_channels_dead_letters_and_retry_takes_a_channel(sb: Shenbao) -> None:
    db = database(sb)
    add_emails(db, 1)
    dead = _dead_zzd(db)

    listed = sb.json("outbox")
    assert {(e["channel"], e["status"]) for e in listed} == {("email", E_PENDING), ("zzd", E_DEAD)}
    shown = sb("outbox").stdout
    assert "死信：浙政钉 1" in shown and "60121" in shown
    assert [e["id"] for e in sb.json("outbox", "--channel", "zzd")] == [dead]

    # An email id is not a 浙政钉 message: refused, nothing changed.
    sb("outbox", "retry", "--channel", "zzd", str(dead + 100), "--reason", "号码已更正", code=2)
    sb("outbox", "retry", "--channel", "zzd", str(dead), "--by", "李工", "--reason", "号码已更正")
    [row] = sb.json("outbox", "--channel", "zzd")
    assert (row["status"], row["attempts"], row["last_error"]) == (E_PENDING, 0, "")
    with db.read() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox_requeue")).all()
    assert event.subject == f"zzd:{dead}" and event.reason == "号码已更正"
