"""The outbox dispatcher against a real SMTP server (aiosmtpd on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from models.db import Database
from models.outbox import E_DEAD, E_PENDING, E_RETRY, E_SENDING, E_SENT, DeliveryAttempt, Email
from notifications.dispatcher import (
    CANCELLED_DETAIL,
    DispatchReport,
    dispatch,
    dispatch_due,
    dispatch_in_processes,
    envelope_sender,
)
from notifications.loopback import LoopbackSMTP
from notifications.mime import build_mime
from tests.conftest import CURRENT_TIME
from tests.notifications.conftest import SENDER, SENDER_NAME, add_emails, config_for, emails, free_port

NOW = CURRENT_TIME


def attempts_of(db: Database, email_id: int) -> list[DeliveryAttempt]:
    with db.read() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.email_id == email_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def test_it_delivers_every_due_email_exactly_once_with_chinese_headers_intact(
    db: Database, smtp: LoopbackSMTP
) -> None:
    ids = add_emails(db, to=[("王小明", "wxm@qz.example.cn"), ("欧阳娜娜", "oyn@hz.example.cn")])
    later = add_emails(db, first=10, count=1, due=NOW + timedelta(hours=1))

    report = dispatch(db, NOW, config_for(smtp.port), worker="t1")
    again = dispatch(db, NOW, config_for(smtp.port), worker="t1")

    assert (report.sent, again.sent, len(smtp)) == (2, 0, 2)
    rows = emails(db)
    received = {m.message_id: i for i, m in enumerate(smtp.messages)}
    for email_id in ids:
        row = rows[email_id]
        assert (row.status, row.attempts, row.sent_at, row.claimed_by) == (E_SENT, 1, NOW, "t1")
        message = smtp.decoded(received[row.message_id])
        assert message["Message-ID"] == row.message_id
        assert message["Subject"] == "【提醒】2026年先进制造业集群申报材料将于6月5日截止"
        assert message["To"].addresses[0].display_name == row.to_name
        assert message["From"].addresses[0].display_name == SENDER_NAME
        assert "请于2026年6月5日17:00前" in message.get_body(("plain",)).get_content()
        assert [a.outcome for a in attempts_of(db, email_id)] == ["sent"]
    assert {m.mail_from for m in smtp.messages} == {SENDER}
    assert sorted(m.rcpt_tos for m in smtp.messages) == [("oyn@hz.example.cn",), ("wxm@qz.example.cn",)]
    assert rows[later[0]].status == E_PENDING


def test_it_dead_letters_a_rejected_recipient_and_sends_the_others(db: Database, smtp: LoopbackSMTP) -> None:
    ids = add_emails(db, to=[("甲", "a@example.cn"), ("乙", "nobody@example.cn"), ("丙", "c@example.cn")])
    smtp.set_reject(["nobody@example.cn"])

    report = dispatch(db, NOW, config_for(smtp.port, concurrency=1), worker="t")

    assert (report.sent, report.dead, report.retry) == (2, 1, 0)
    rows = emails(db)
    assert [rows[i].status for i in ids] == [E_SENT, E_DEAD, E_SENT]
    assert "550" in rows[ids[1]].last_error and "User unknown" in rows[ids[1]].last_error
    [attempt] = attempts_of(db, ids[1])
    assert (attempt.outcome, attempt.smtp_code) == ("permanent", 550)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["a@example.cn", "c@example.cn"]


def test_an_unreachable_server_is_not_an_attempt_on_the_mail_and_is_retried_per_server(db: Database) -> None:
    port = free_port()
    ids = add_emails(db, 3)
    config = config_for(port, concurrency=4, backoff_base_seconds=60, outage_backoff_cap_seconds=10**6)

    down = dispatch(db, NOW, config, worker="t")

    assert (down.sent, down.retry, down.dead, down.deferred) == (0, 0, 0, 3)
    assert down.server_unreachable and f"127.0.0.1:{port}" in down.server_error
    rows = emails(db).values()
    first = {r.next_attempt_at for r in rows}
    assert len(first) == 1 and min(first) > NOW
    for row in rows:
        assert (row.status, row.attempts) == (E_PENDING, 0)
        assert row.last_error.startswith("not tried: connect:")
    assert attempts_of(db, ids[0]) == []
    retry_at = min(first)
    assert dispatch(db, retry_at - timedelta(seconds=1), config, worker="t").handled == 0

    # Still down: the server's delay doubles, the mails' attempt counts do not move.
    again = dispatch(db, retry_at, config, worker="t")
    assert again.deferred == 3
    second = {r.next_attempt_at for r in emails(db).values()}
    assert second == {retry_at + 2 * (retry_at - NOW)}
    assert {r.attempts for r in emails(db).values()} == {0}

    with LoopbackSMTP(port=port) as smtp:
        back = dispatch(db, min(second), config, worker="t")
        assert back.sent == 3 and not back.server_unreachable
        assert Counter(smtp.message_ids()) == Counter(r.message_id for r in emails(db).values())
        assert len(smtp) == 3
    for row in emails(db).values():
        assert (row.status, row.attempts) == (E_SENT, 1)
    assert [a.outcome for a in attempts_of(db, ids[0])] == ["sent"]


def test_a_26_hour_outage_makes_no_dead_letter_and_everything_goes_once_the_server_is_back(
    db: Database,
) -> None:
    port = free_port()
    add_emails(db, 5)
    config = config_for(port, concurrency=2, max_attempts=3, backoff_base_seconds=60)
    when, runs = NOW, 0
    while when < NOW + timedelta(hours=26):
        report = dispatch(db, when, config, worker="t")
        assert report.dead == 0
        runs += 1
        when = min(r.next_attempt_at for r in emails(db).values())
    # The server is tried again at least every outage_backoff_cap_seconds (15 min).
    assert runs >= 26 * 4
    assert {(r.status, r.attempts) for r in emails(db).values()} == {(E_PENDING, 0)}

    with LoopbackSMTP(port=port) as smtp:
        assert dispatch(db, when, config, worker="t").sent == 5
        assert len(set(smtp.message_ids())) == len(smtp) == 5


def test_it_stops_claiming_and_releases_the_rest_when_no_connection_succeeds(db: Database) -> None:
    add_emails(db, 12)
    config = config_for(free_port(), concurrency=2, batch_size=4)

    report = dispatch(db, NOW, config, worker="t")

    assert report.server_unreachable
    assert report.deferred >= 1 and report.retry + report.deferred <= 12
    rows = emails(db).values()
    assert not [r for r in rows if r.status == E_SENDING]
    with db.read() as session:
        tried = session.scalars(select(DeliveryAttempt)).all()
    # Only what was really tried is an attempt; the released rows wait for the next run.
    assert tried == [] and report.retry == 0
    untried = [r for r in rows if r.attempts == 0]
    assert len(untried) == 12
    assert {r.status for r in untried} == {E_PENDING}
    released = [r for r in untried if r.last_error.startswith("not tried")]
    assert len(released) == report.deferred
    assert all(r.next_attempt_at > NOW for r in released)


def test_it_retries_a_temporary_refusal_and_dead_letters_after_max_attempts(db: Database) -> None:
    [email_id] = add_emails(db, 1)
    with LoopbackSMTP(temp_fail_first=100) as smtp:
        config = config_for(smtp.port, max_attempts=3, backoff_base_seconds=60)
        when = NOW
        for expected_status, expected_delay in ((E_RETRY, 60), (E_RETRY, 120), (E_DEAD, None)):
            dispatch(db, when, config, worker="t")
            row = emails(db)[email_id]
            assert row.status == expected_status
            if expected_delay is not None:
                assert row.next_attempt_at == when + timedelta(seconds=expected_delay)
                when = row.next_attempt_at
        assert len(smtp) == 0
    assert row.attempts == 3
    assert "451" in row.last_error and "attempt 3 of 3" in row.last_error
    assert [(a.outcome, a.smtp_code) for a in attempts_of(db, email_id)] == [("temporary", 451)] * 3


def test_it_caps_the_backoff(db: Database, smtp: LoopbackSMTP) -> None:
    [email_id] = add_emails(db, 1, attempts=10, status=E_RETRY)
    smtp.fail_next(1)

    dispatch(db, NOW, config_for(smtp.port, max_attempts=20, backoff_cap_seconds=6 * 3600), worker="t")

    assert emails(db)[email_id].next_attempt_at == NOW + timedelta(hours=6)


def test_it_reclaims_a_row_left_sending_by_a_crashed_dispatcher_but_not_one_within_its_lease(
    db: Database, smtp: LoopbackSMTP
) -> None:
    stale, fresh = add_emails(db, 2, status=E_SENDING, claimed_by="dead-worker")
    with db.write() as session:
        session.execute(update(Email).where(Email.id == stale).values(claimed_at=NOW - timedelta(minutes=11)))
        session.execute(update(Email).where(Email.id == fresh).values(claimed_at=NOW - timedelta(minutes=5)))

    report = dispatch(db, NOW, config_for(smtp.port, lease_seconds=600), worker="rescuer", clock=lambda: NOW)

    assert report.sent == 1
    rows = emails(db)
    assert (rows[stale].status, rows[stale].claimed_by) == (E_SENT, "rescuer")
    assert (rows[fresh].status, rows[fresh].claimed_by) == (E_SENDING, "dead-worker")
    assert smtp.message_ids() == [rows[stale].message_id]


def test_a_rate_limited_run_longer_than_its_lease_and_a_later_dispatcher_send_each_message_once(
    db: Database, smtp: LoopbackSMTP
) -> None:
    add_emails(db, 30)
    # 3 s of sending at 10/s, with a 1 s lease: the first run must renew what it holds.
    config = config_for(smtp.port, rate_per_second=10, lease_seconds=1.0, concurrency=2)
    started = time.monotonic()

    async def both() -> tuple[DispatchReport, DispatchReport]:
        first = asyncio.create_task(dispatch_due(db, NOW, config, worker="first"))
        await asyncio.sleep(1.5)
        # Started later, so its "now" is later: the first run's claims look a lease old.
        later = NOW + timedelta(seconds=time.monotonic() - started)
        second = await dispatch_due(db, later, config, worker="second")
        return await first, second

    first, second = asyncio.run(both())

    counts = Counter(smtp.message_ids())
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert first.sent + second.sent == 30
    assert {r.status for r in emails(db).values()} == {E_SENT}


def test_a_run_that_lost_its_lease_does_not_send_the_row_until_it_has_claimed_it_again(
    db: Database, smtp: LoopbackSMTP
) -> None:
    add_emails(db, 4)
    stalled = timedelta(0)

    def clock():  # type: ignore[no-untyped-def]
        return NOW + stalled

    def stall_past_the_lease(session, email, now):  # type: ignore[no-untyped-def]
        # The run stalls inside its first claim for longer than the lease (a pause, a swap
        # storm): by the time it could send, the rows are anybody's.
        nonlocal stalled
        stalled = timedelta(seconds=10)
        return "keep"

    config = config_for(smtp.port, lease_seconds=1.0)
    report = dispatch(db, NOW, config, worker="w", recheck=stall_past_the_lease, clock=clock)

    # The stale rows were claimed anew (by this run, nobody else was there) and sent once.
    assert (report.lost, report.sent) == (4, 4)
    assert len(set(smtp.message_ids())) == len(smtp) == 4
    with db.read() as session:
        assert [a.outcome for a in session.scalars(select(DeliveryAttempt))] == ["sent"] * 4


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("fault", ["late", "dropped"])
def test_a_message_whose_final_reply_never_comes_is_unknown_and_retried_late_with_the_same_message_id(
    sqlite_db: Database, smtp: LoopbackSMTP, fault: str, pipelining: bool
) -> None:
    [email_id] = add_emails(sqlite_db, 1)
    if fault == "late":
        smtp.answer_late(2.0)
    else:
        smtp.drop_after_storing()
    config = config_for(smtp.port, data_timeout=0.5, concurrency=1, pipelining=pipelining)

    report = dispatch(sqlite_db, NOW, config, worker="t")

    assert (report.sent, report.unknown, report.retry, report.dead) == (0, 1, 0, 0)
    row = emails(sqlite_db)[email_id]
    assert (row.status, row.attempts, row.next_attempt_at) == (E_RETRY, 1, NOW + timedelta(hours=6))
    assert "结果未知" in row.last_error
    assert [a.outcome for a in attempts_of(sqlite_db, email_id)] == ["unknown"]
    assert dispatch(sqlite_db, NOW + timedelta(hours=1), config, worker="t").handled == 0
    assert len(smtp) == 1

    smtp.answer_late(0)
    smtp.drop_after_storing(False)
    assert dispatch(sqlite_db, NOW + timedelta(hours=6), config, worker="t").sent == 1
    assert smtp.message_ids() == [row.message_id, row.message_id]


def test_a_reply_within_the_data_timeout_is_a_delivery(sqlite_db: Database, smtp: LoopbackSMTP) -> None:
    add_emails(sqlite_db, 2)
    smtp.answer_late(1.0)

    report = dispatch(sqlite_db, NOW, config_for(smtp.port, timeout=0.5, data_timeout=5), worker="t")

    assert (report.sent, report.unknown) == (2, 0)


@pytest.mark.postgres
def test_a_database_connection_killed_during_the_recheck_is_an_outage_and_the_rows_stay_claimable(
    pg_db: Database, smtp: LoopbackSMTP
) -> None:
    add_emails(pg_db, 3)
    admin = psycopg.connect(pg_db.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def kill_my_connection(session, email, now):  # type: ignore[no-untyped-def]
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        session.execute(text("SELECT 1"))
        return "keep"

    with admin, pytest.raises(OperationalError):
        dispatch(pg_db, NOW, config_for(smtp.port), worker="t", recheck=kill_my_connection)

    assert len(smtp) == 0
    assert {(r.status, r.attempts, r.lease_token) for r in emails(pg_db).values()} == {(E_PENDING, 0, None)}
    assert dispatch(pg_db, NOW, config_for(smtp.port), worker="t").sent == 3


def test_it_cancels_an_email_the_recheck_finds_done(db: Database, smtp: LoopbackSMTP) -> None:
    done, open_ = add_emails(db, 2)
    seen = []

    def recheck(session, email, now):  # type: ignore[no-untyped-def]
        seen.append((email.id, now))
        return None if email.id == done else "keep"

    report = dispatch(db, NOW, config_for(smtp.port), worker="t", recheck=recheck)

    assert (report.sent, report.cancelled) == (1, 1)
    assert sorted(seen) == [(done, NOW), (open_, NOW)]
    rows = emails(db)
    assert (rows[done].status, rows[done].attempts) == ("cancelled", 0)
    assert [(a.outcome, a.detail) for a in attempts_of(db, done)] == [("cancelled", CANCELLED_DETAIL)]
    assert smtp.message_ids() == [rows[open_].message_id]


def test_it_sends_the_rerendered_message_the_recheck_returns(db: Database, smtp: LoopbackSMTP) -> None:
    [email_id] = add_emails(db, 1)
    row = emails(db)[email_id]
    rerendered = build_mime(
        message_id=row.message_id,
        from_addr=SENDER,
        from_name=SENDER_NAME,
        to_addr=row.to_addr,
        to_name=row.to_name,
        subject="【提醒】仍有1项材料未提交",
        text="其余材料已办结。",
        html="<p>其余材料已办结。</p>",
        date=NOW,
    )

    dispatch(db, NOW, config_for(smtp.port), worker="t", recheck=lambda s, e, now: rerendered)

    assert smtp.decoded(0)["Subject"] == "【提醒】仍有1项材料未提交"
    assert smtp.messages[0].raw == rerendered
    assert emails(db)[email_id].raw == rerendered


def test_it_holds_back_an_email_whose_recheck_fails_and_sends_the_rest(
    db: Database, smtp: LoopbackSMTP
) -> None:
    broken, fine = add_emails(db, 2)

    def recheck(session, email, now):  # type: ignore[no-untyped-def]
        if email.id == broken:
            raise LookupError("case 42 vanished")
        return "keep"

    report = dispatch(db, NOW, config_for(smtp.port), worker="t", recheck=recheck)

    rows = emails(db)
    assert (report.sent, rows[fine].status) == (1, E_SENT)
    assert rows[broken].status == E_PENDING and rows[broken].next_attempt_at > NOW
    assert "case 42 vanished" in rows[broken].last_error


def test_it_claims_each_row_once_when_dispatchers_race_in_one_process(
    db: Database, smtp: LoopbackSMTP
) -> None:
    add_emails(db, 300)
    config = config_for(smtp.port, batch_size=20, concurrency=3)

    async def race():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*(dispatch_due(db, NOW, config, worker=f"w{i}") for i in range(3)))

    reports = asyncio.run(race())

    assert sum(r.sent for r in reports) == 300
    assert Counter(Counter(smtp.message_ids()).values()) == {1: 300}
    with db.read() as session:
        assert session.scalars(select(DeliveryAttempt.outcome)).all() == ["sent"] * 300


def test_it_stops_at_the_limit_and_reports_progress(db: Database, smtp: LoopbackSMTP) -> None:
    add_emails(db, 30)
    calls: list[tuple[int, int]] = []

    report = dispatch(
        db,
        NOW,
        config_for(smtp.port, batch_size=8),
        worker="t",
        limit=20,
        progress=lambda d, t: calls.append((d, t)),
    )

    assert report.sent == 20 and len(smtp) == 20
    assert calls[-1] == (20, 20)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_it_drains_a_sqlite_outbox_with_two_processes(sqlite_db: Database, smtp: LoopbackSMTP) -> None:
    add_emails(sqlite_db, 300)

    report = dispatch_in_processes(sqlite_db.url, NOW, config_for(smtp.port, batch_size=25), processes=2)

    assert report.sent == 300
    assert Counter(Counter(smtp.message_ids()).values()) == {1: 300}
    assert {r.status for r in emails(sqlite_db).values()} == {E_SENT}


@pytest.mark.postgres
@pytest.mark.heavy
def test_it_drains_500_rows_with_four_dispatcher_processes_on_postgresql(
    pg_db: Database, smtp: LoopbackSMTP, pg_url: str
) -> None:
    # 20 batches for 4 processes started together (a barrier): each claims several times, as
    # with the 2000 rows this test had (tests/README.md rule 5: as small as the claim allows).
    add_emails(pg_db, 500)

    report = dispatch_in_processes(pg_url, NOW, config_for(smtp.port, batch_size=25), processes=4)

    assert report.sent == 500
    counts = Counter(smtp.message_ids())
    assert len(counts) == 500 and set(counts.values()) == {1}
    rows = emails(pg_db).values()
    assert {r.status for r in rows} == {E_SENT}
    assert counts.keys() == {r.message_id for r in rows}
    # Everyone did part of the work: the claim really is shared, not serialised behind one.
    assert len({r.claimed_by for r in rows}) >= 2


def test_it_takes_the_envelope_sender_from_the_from_header() -> None:
    raw = build_mime(
        message_id="<x@y>",
        from_addr=SENDER,
        from_name="一个很长很长的发件单位名称" * 4,
        to_addr="a@b.cn",
        to_name="甲",
        subject="s",
        text="t",
        html="h",
        date=NOW,
    )

    assert envelope_sender(raw) == SENDER


def test_it_dead_letters_an_address_smtp_cannot_carry_without_bothering_the_server(
    db: Database, smtp: LoopbackSMTP
) -> None:
    bad, good = add_emails(db, to=[("张三", "zhangsan@qz.example.cn"), ("李四", "lisi@qz.example.cn")])
    # An internationalised address, as a roster typed it; the server does not offer SMTPUTF8.
    with db.write() as session:
        session.execute(update(Email).where(Email.id == bad).values(to_addr="张三@例子.中国"))

    report = dispatch(db, NOW, config_for(smtp.port, concurrency=1), worker="t")

    rows = emails(db)
    assert (report.dead, report.sent) == (1, 1)
    assert rows[bad].status == E_DEAD and "invalid address" in rows[bad].last_error
    assert rows[good].status == E_SENT
    assert [m.rcpt_tos for m in smtp.messages] == [("lisi@qz.example.cn",)]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_it_sorts_refusals_the_same_with_and_without_pipelining(
    sqlite_db: Database, pipelining: bool
) -> None:
    greylisted, unknown, fine = add_emails(
        sqlite_db, to=[("甲", "a@example.cn"), ("乙", "nobody@example.cn"), ("丙", "c@example.cn")]
    )
    with LoopbackSMTP(pipelining=pipelining, reject=["nobody@example.cn"], temp_fail_first=1) as smtp:
        config = config_for(smtp.port, concurrency=1, pipelining=pipelining)
        report = dispatch(sqlite_db, NOW, config, worker="t")

        rows = emails(sqlite_db)
        assert (report.sent, report.retry, report.dead) == (1, 1, 1)
        assert [rows[i].status for i in (greylisted, unknown, fine)] == [E_RETRY, E_DEAD, E_SENT]
        assert [(a.outcome, a.smtp_code) for a in attempts_of(sqlite_db, greylisted)] == [("temporary", 451)]
        assert smtp.message_ids() == [rows[fine].message_id]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_it_dead_letters_a_message_too_big_for_the_server_and_goes_on(
    sqlite_db: Database, pipelining: bool
) -> None:
    big, small = add_emails(sqlite_db, 2)
    with sqlite_db.write() as session:
        row = session.get(Email, big)
        assert row is not None
        session.execute(
            update(Email).where(Email.id == big).values(raw=row.raw + (b"X" * 70 + b"\r\n") * 100)
        )
    with LoopbackSMTP(pipelining=pipelining, max_message_bytes=4000) as smtp:
        report = dispatch(sqlite_db, NOW, config_for(smtp.port, concurrency=1), worker="t")

        rows = emails(sqlite_db)
        assert (report.dead, report.sent) == (1, 1)
        assert rows[big].status == E_DEAD and "552" in rows[big].last_error
        assert smtp.message_ids() == [rows[small].message_id]


def test_it_keeps_lines_that_start_with_a_dot_intact(sqlite_db: Database, smtp: LoopbackSMTP) -> None:
    [email_id] = add_emails(sqlite_db, 1)
    raw = (
        b"From: noreply@jxt.zj.gov.cn\r\nTo: contact0@qz.example.cn\r\nMessage-ID: <dots@shenbao.test>\r\n"
        b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two dots\r\nlast line"
    )
    with sqlite_db.write() as session:
        session.execute(update(Email).where(Email.id == email_id).values(raw=raw))

    dispatch(sqlite_db, NOW, config_for(smtp.port), worker="t")

    assert smtp.messages[0].raw == raw + b"\r\n"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_it_logs_in_over_tls_and_still_pipelines(sqlite_db: Database, tls_contexts, security: str) -> None:  # type: ignore[no-untyped-def]
    context, _ = tls_contexts
    add_emails(sqlite_db, 3)
    with LoopbackSMTP(
        tls_context=context, implicit_tls=security == "tls", credentials={"shenbao": "s3cret"}
    ) as smtp:
        config = config_for(
            smtp.port,
            security=security,
            user="shenbao",
            password="s3cret",
            validate_certs=False,
            concurrency=2,
        )
        report = dispatch(sqlite_db, NOW, config, worker="t")

        assert report.sent == 3 and len(smtp) == 3
    assert {r.status for r in emails(sqlite_db).values()} == {E_SENT}


def test_a_refused_login_holds_the_mail_back_without_counting_an_attempt(
    sqlite_db: Database, tls_contexts
) -> None:  # type: ignore[no-untyped-def]
    context, _ = tls_contexts
    add_emails(sqlite_db, 2)
    with LoopbackSMTP(tls_context=context, credentials={"shenbao": "s3cret"}) as smtp:
        config = config_for(
            smtp.port,
            security="starttls",
            user="shenbao",
            password="wrong",
            validate_certs=False,
            concurrency=2,
        )
        report = dispatch(sqlite_db, NOW, config, worker="t")

        assert (report.sent, report.retry, report.deferred, len(smtp)) == (0, 0, 2, 0)
        assert report.server_unreachable and "535" in report.server_error
    assert all("535" in r.last_error and r.attempts == 0 for r in emails(sqlite_db).values())


def cancel_everything(session, email, now):  # type: ignore[no-untyped-def]
    """A recheck a child process can import by name."""
    return None


def test_it_hands_the_recheck_to_each_process_by_name(sqlite_db: Database, smtp: LoopbackSMTP) -> None:
    add_emails(sqlite_db, 40)

    report = dispatch_in_processes(
        sqlite_db.url,
        NOW,
        config_for(smtp.port, batch_size=10),
        processes=2,
        recheck_path="tests.notifications.test_dispatcher:cancel_everything",
    )

    assert (report.cancelled, report.sent, len(smtp)) == (40, 0, 0)
    assert {r.status for r in emails(sqlite_db).values()} == {"cancelled"}
