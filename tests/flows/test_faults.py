"""Faults survived, nothing lost: each drill uses real parts and checks what reached the outside world.

- the SMTP server down during a dispatch, then back: everything arrives, once;
- the SMTP server refusing one recipient for good: that email is a dead letter with the reason,
  the others go;
- a dispatcher killed with SIGKILL mid-way and restarted after its lease: every email arrives,
  a duplicate only for a row that was in flight, with the same Message-ID;
- PostgreSQL briefly unreachable (a TCP proxy we stop, start and cut; the machine's server is
  never touched): a clear error, a retry, the same state as an undisturbed run;
- the service down across a deadline: the drafts lapse exactly once, their notices are written
  once, whether the next run is a sweep or `shenbao serve --now` after the deadline;
- several dispatchers at once on PostgreSQL: each message once.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from calendars.timeutil import parse_instant
from flows.service import Service, ServiceClock, running
from models.db import Database
from models.outbox import E_DEAD, E_SENDING, E_SENT, DeliveryAttempt, Email, Notification
from notifications.loopback import LoopbackSMTP
from operations.runtime import Runtime
from operations.sweep import dispatch, reconcile
from tests.conftest import CURRENT_TIME
from tests.flows.test_cli import Shenbao
from tests.flows.test_service import (
    REPO,
    SHENBAO,
    ServeProcess,
    drafts,
    lapse_events,
    make_runtime,
    quiet_options,
    scenario_db,  # noqa: F401  (a fixture)
    scenario_runtime,
    seed_scenario,
    serve_env,
    wait_for,
)
from tests.notifications.conftest import add_emails, free_port

# Working hours on a working day, a week before 线上申报 closes: 12 reminders go at once.
REMINDER_TIME = parse_instant("2026-06-18T10:00")
EVENING_BEFORE = parse_instant("2026-06-25T20:00")
MORNING_AFTER = parse_instant("2026-06-26T09:00")


@pytest.fixture
def smtp() -> Iterator[LoopbackSMTP]:
    with LoopbackSMTP() as server:
        yield server


def emails(rt: Runtime) -> list[Email]:
    with rt.db.read() as session:
        return list(session.execute(select(Email).order_by(Email.id)).scalars())


def sweep_at(rt: Runtime, at: Any, **options: Any) -> Any:
    """One sweep of the service at ``at`` (its clock starts there), without starting a scheduler."""
    return Service(rt, quiet_options(**options), ServiceClock.starting_at(at)).sweep("演练")


# -- SMTP ---------------------------------------------------------------------------------------------


def test_smtp_down_during_dispatch_then_back_everything_arrives_once(
    scenario_db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there yet
    rt = scenario_runtime(scenario_db, tmp_path, smtp_port=port)
    down = sweep_at(rt, REMINDER_TIME)
    assert down.error is None and down.tick.emails > 0
    assert down.sent.server_unreachable and down.sent.sent == 0
    outbox = emails(rt)
    assert outbox and all(e.status not in (E_SENT, E_DEAD) for e in outbox)

    with LoopbackSMTP(port=port) as smtp:
        # Back an hour later: past every back-off of the failed tries.
        report = dispatch(rt, REMINDER_TIME.replace(hour=3))
        assert not report.server_unreachable
        received = smtp.message_ids()
    outbox = emails(rt)
    assert all(e.status == E_SENT for e in outbox)
    assert Counter(received) == Counter(e.message_id for e in outbox)  # each exactly once
    rt.db.dispose()


def test_a_recipient_refused_for_good_is_a_dead_letter_with_the_reason_and_the_rest_go(
    scenario_db: Database,  # noqa: F811
    tmp_path: Path,
    smtp: LoopbackSMTP,
) -> None:
    rt = scenario_runtime(scenario_db, tmp_path, smtp_port=smtp.port)
    reconcile(rt, REMINDER_TIME)
    outbox = emails(rt)
    refused = outbox[0].to_addr
    smtp.set_reject([refused])
    report = dispatch(rt, REMINDER_TIME)
    assert report.dead == 1 and report.sent == len(outbox) - 1
    by_addr = {e.to_addr: e for e in emails(rt)}
    dead = by_addr.pop(refused)
    assert dead.status == E_DEAD
    assert "550" in dead.last_error and "User unknown" in dead.last_error
    assert all(e.status == E_SENT for e in by_addr.values())
    assert sorted(smtp.message_ids()) == sorted(e.message_id for e in by_addr.values())
    with rt.db.read() as session:
        attempt = session.execute(
            select(DeliveryAttempt).where(DeliveryAttempt.email_id == dead.id)
        ).scalar_one()
    assert attempt.outcome == "permanent" and attempt.smtp_code == 550
    rt.db.dispose()


# -- a dispatcher killed mid-way ---------------------------------------------------------------------------


# Enough that a kill after the first 200 lands mid-way at 250 mails/s; the claim is not about size.
KILLED_OUTBOX = 600


@pytest.mark.heavy
def test_a_dispatcher_killed_mid_way_and_restarted_loses_nothing(db: Database, tmp_path: Path) -> None:
    add_emails(db, KILLED_OUTBOX)  # due at CURRENT_TIME
    home = tmp_path / "home"
    make_runtime(db.url, home).db.dispose()  # the audit key, as `shenbao init` leaves it
    with LoopbackSMTP(keep_raw=False) as smtp:
        env = serve_env(home, db.url, smtp.port) | {
            # Slow enough (250 mails/s) that the kill lands in the middle.
            "SHENBAO_MAIL_RATE_PER_SECOND": "250",
            "SHENBAO_MAIL_CONCURRENCY": "2",
        }
        now = CURRENT_TIME.isoformat()
        victim = subprocess.Popen(
            [str(SHENBAO), "--now", now, "send"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: len(smtp) >= 200 or victim.poll() is not None, what="the first 200 mails")
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL, "the dispatcher finished before it could be killed"

        with db.read() as session:
            statuses = Counter(session.execute(select(Email.status)).scalars())
            in_flight = set(
                session.execute(select(Email.message_id).where(Email.status == E_SENDING)).scalars()
            )
        assert statuses[E_SENT] < KILLED_OUTBOX  # killed mid-way
        received_before = len(smtp)

        # Restarted after the lease (10 minutes): the rows the dead dispatcher held are taken back.
        # Leases run on the real clock, so the wait is played by ageing the dead one's claims.
        with db.write() as session:
            session.execute(
                update(Email)
                .where(Email.status == E_SENDING)
                .values(claimed_at=datetime.now(UTC) - timedelta(minutes=11))
            )
        later = (CURRENT_TIME + timedelta(minutes=11)).isoformat()
        env.pop("SHENBAO_MAIL_RATE_PER_SECOND")
        restarted = subprocess.run(
            [str(SHENBAO), "--now", later, "send"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restarted.returncode == 0, restarted.stderr
        received = Counter(smtp.message_ids())

    with db.read() as session:
        rows = session.execute(select(Email.message_id, Email.status)).all()
    assert len(rows) == KILLED_OUTBOX and all(status == E_SENT for _, status in rows)
    # Nothing lost: every email reached the server.
    assert set(received) == {mid for mid, _ in rows}
    # Duplicates only in the crash window: rows in flight when the process died, recognisable by
    # their Message-ID (the same on both copies, derived from the outbox key).
    duplicates = {mid for mid, n in received.items() if n > 1}
    assert duplicates <= in_flight
    assert all(n <= 2 for n in received.values())
    assert sum(received.values()) == KILLED_OUTBOX + len(duplicates)
    assert received_before <= KILLED_OUTBOX


# -- the database unreachable -----------------------------------------------------------------------------


class TcpProxy:
    """A TCP forwarder in front of PostgreSQL that a test can stop, start and cut.

    Stopping it is an outage (connections refused, open ones dropped) without touching the
    machine's real server; ``cut_after(n)`` drops every connection once the clients have sent
    ``n`` more bytes, i.e. in the middle of whatever they were doing.
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self.client_bytes = 0
        self._cut_at: int | None = None
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() first: a bare close() leaves a thread blocked in accept() listening on.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        self.cut()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut_after(self, n: int) -> None:
        with self._lock:
            self._cut_at = self.client_bytes + n

    def url(self, db_url: str) -> str:
        return make_url(db_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if from_client:
                with self._lock:
                    self.client_bytes += len(data)
                    cut = self._cut_at is not None and self.client_bytes >= self._cut_at
                    if cut:
                        self._cut_at = None
                if cut:
                    self.cut()
                    return
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def pg_scenario(_pg_schema: Database, tmp_path: Path) -> Iterator[tuple[Runtime, TcpProxy, LoopbackSMTP]]:
    """The scenario on PostgreSQL, seen through a proxy; the seeding goes direct."""
    from tests.conftest import _truncate

    _truncate(_pg_schema)
    proxy = TcpProxy(make_url(_pg_schema.url).port or 5432).start()
    with LoopbackSMTP() as smtp:
        direct = make_runtime(_pg_schema.url, tmp_path / "home", smtp_port=smtp.port)
        seed_scenario(direct)
        direct.db.dispose()
        rt = make_runtime(proxy.url(_pg_schema.url), tmp_path / "home", smtp_port=smtp.port)
        yield rt, proxy, smtp
        rt.db.dispose()
    proxy.stop()


class _OnFirstError(logging.Handler):
    """Records the service's log; brings the database back the moment it is reported unreachable."""

    def __init__(self, action: Any) -> None:
        super().__init__()
        self.action = action
        self.messages: list[str] = []
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if "数据库无法访问" in message and not self.fired:
            self.fired = True
            self.action()


@pytest.fixture
def service_log() -> Iterator[list[logging.Handler]]:
    logger = logging.getLogger("shenbao.service")
    handlers: list[logging.Handler] = []
    yield handlers
    for h in handlers:
        logger.removeHandler(h)


def _watch_log(service_log: list[logging.Handler], action: Any) -> _OnFirstError:
    handler = _OnFirstError(action)
    logging.getLogger("shenbao.service").addHandler(handler)
    service_log.append(handler)
    return handler


def test_the_cli_says_the_database_is_unreachable_with_exit_code_4(
    pg_scenario: tuple[Runtime, TcpProxy, LoopbackSMTP], tmp_path: Path
) -> None:
    rt, proxy, smtp = pg_scenario
    proxy.stop()
    # The CLI's entry point in-process (a refused connection fails at once; tests/flows/
    # test_cli_outages.py runs the console script against a server that never answers).
    sb = Shenbao(tmp_path / "home", SHENBAO_DATABASE_URL=rt.db.url, SHENBAO_SMTP_PORT=str(smtp.port))
    done = sb("tick", now=MORNING_AFTER.isoformat(), code=4)
    assert "数据库无法访问" in done.stderr and "SHENBAO_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sweep_retries_while_the_database_is_down_and_completes_once_it_is_back(
    pg_scenario: tuple[Runtime, TcpProxy, LoopbackSMTP], service_log: list[logging.Handler]
) -> None:
    rt, proxy, _smtp = pg_scenario
    proxy.stop()
    log = _watch_log(service_log, proxy.start)
    result = sweep_at(rt, MORNING_AFTER)
    assert result.attempts == 2 and result.error is None
    assert any("数据库无法访问" in m and "第 1/3 次" in m for m in log.messages)
    assert len(lapse_events(rt)) == 11 and drafts(rt) == 0


def test_a_connection_cut_mid_transaction_leaves_no_trace_and_the_retry_completes(
    pg_scenario: tuple[Runtime, TcpProxy, LoopbackSMTP], service_log: list[logging.Handler]
) -> None:
    rt, proxy, smtp = pg_scenario
    log = _watch_log(service_log, lambda: None)
    # 40 kB into a sweep of ~190 kB: inside reconcile's transaction (lapses, notices, emails).
    proxy.cut_after(40000)
    result = sweep_at(rt, MORNING_AFTER)
    assert result.attempts == 2 and result.error is None, log.messages
    assert any("数据库无法访问" in m for m in log.messages)
    # Exactly the state of an undisturbed run: each draft lapsed once, each notice once, each
    # email sent once, the audit chain intact.
    events = lapse_events(rt)
    assert len(events) == 11 and len({e.case_id for e in events}) == 11
    again = sweep_at(rt, MORNING_AFTER)
    assert again.tick.nothing_new and again.sent.sent == 0
    with rt.db.read() as session:
        keys = session.execute(select(Notification.key)).scalars().all()
        report = rt.audit().verify(session)
    assert len(keys) == len(set(keys))
    assert report.ok, report.problems
    assert Counter(smtp.message_ids()) == Counter(e.message_id for e in emails(rt) if e.status == E_SENT)
    assert max(Counter(smtp.message_ids()).values()) == 1


# -- down across a deadline ------------------------------------------------------------------------------


def _lapse_notices(rt: Runtime) -> list[str]:
    seqs = {e.seq for e in lapse_events(rt)}
    with rt.db.read() as session:
        rows = session.execute(select(Notification.key, Notification.audit_seq)).all()
    return [key for key, seq in rows if seq in seqs]


def test_down_across_a_deadline_the_drafts_lapse_once_and_their_notices_are_written_once(
    scenario_db: Database,  # noqa: F811
    tmp_path: Path,
    smtp: LoopbackSMTP,
) -> None:
    rt = scenario_runtime(scenario_db, tmp_path, smtp_port=smtp.port)
    evening = sweep_at(rt, EVENING_BEFORE)
    assert evening.tick.lapsed == [] and drafts(rt) == 11
    # Down from 20:00 to 09:00 next morning, across 24:00; the service starts and catches up.
    with running(Service(rt, quiet_options(), ServiceClock.starting_at(MORNING_AFTER))) as service:
        assert service.last_sweep is not None and len(service.last_sweep.tick.lapsed) == 11
    events = lapse_events(rt)
    assert len(events) == 11 and len({e.case_id for e in events}) == 11
    notices = _lapse_notices(rt)
    assert notices and len(notices) == len(set(notices))
    mails = len(smtp)
    # Started again (or a sweep, or a Prefect run): nothing new.
    with running(
        Service(rt, quiet_options(), ServiceClock.starting_at(MORNING_AFTER.replace(minute=5)))
    ) as again:
        assert again.last_sweep is not None and again.last_sweep.tick.nothing_new
    assert len(lapse_events(rt)) == 11 and _lapse_notices(rt) == notices
    assert len(smtp) == mails
    rt.db.dispose()


def test_shenbao_serve_started_after_a_deadline_does_the_catch_up(
    tmp_path: Path, sqlite_db: Database, smtp: LoopbackSMTP
) -> None:
    rt = make_runtime(sqlite_db.url, tmp_path / "home", smtp_port=smtp.port)
    seed_scenario(rt)
    env = serve_env(tmp_path / "home", sqlite_db.url, smtp.port)
    sb = Shenbao(tmp_path / "home", SHENBAO_DATABASE_URL=sqlite_db.url, SHENBAO_SMTP_PORT=str(smtp.port))
    evening = sb("tick", now="2026-06-25T20:00")
    assert "逾期关闭 0 件" in evening.stdout
    serve = ServeProcess(["--now", "2026-06-26T09:00", "serve", "--no-web"], env)
    try:
        line = serve.wait_for_line("启动补跑")
        serve.wait_for_line("调度服务已就绪")
    finally:
        assert serve.stop() == 0, serve.log
    assert "2026-06-26（周五）09:00 启动补跑" in line and "逾期关闭 11 件" in line
    assert len(lapse_events(rt)) == 11
    notices = _lapse_notices(rt)
    again = ServeProcess(["--now", "2026-06-26T09:10", "serve", "--no-web"], env)
    try:
        line = again.wait_for_line("启动补跑")
    finally:
        assert again.stop() == 0, again.log
    assert "逾期关闭 0 件" in line and "新写入 无" in line
    assert len(lapse_events(rt)) == 11 and _lapse_notices(rt) == notices
    rt.db.dispose()


# -- several dispatchers at once -------------------------------------------------------------------------------


def test_several_dispatchers_at_once_on_postgresql_send_each_message_once(
    pg_db: Database, tmp_path: Path
) -> None:
    add_emails(pg_db, 600)
    home = tmp_path / "home"
    make_runtime(pg_db.url, home).db.dispose()
    with LoopbackSMTP(keep_raw=False) as smtp:
        # Paced (200 mails/s each) so that the three overlap instead of the first taking all.
        env = serve_env(home, pg_db.url, smtp.port) | {"SHENBAO_MAIL_RATE_PER_SECOND": "200"}
        now = CURRENT_TIME.isoformat()
        dispatchers = [
            subprocess.Popen(
                [str(SHENBAO), "--now", now, "send"],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        for d in dispatchers:
            d.wait(timeout=120)
            assert d.returncode == 0
        received = Counter(smtp.message_ids())
    with pg_db.read() as session:
        sent = session.execute(
            select(func.count()).select_from(Email).where(Email.status == E_SENT)
        ).scalar_one()
    assert sent == 600 and len(received) == 600 and max(received.values()) == 1


@pytest.fixture
def pg_db(_pg_schema: Database) -> Database:
    from tests.conftest import _truncate

    _truncate(_pg_schema)
    return _pg_schema
