"""The scheduler service: its lock, its plan of wake-ups, its sweeps, and `shenbao serve` itself.

Real parts throughout: APScheduler with its SQLAlchemy job store in the test database, the
PostgreSQL advisory lock and the SQLite file lock across real processes, a loopback SMTP server.
The service's clock is an offset from real time, so a test can start it three seconds before a
24:00 deadline and watch the window close.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import LOCAL_TZ, parse_deadline, parse_instant
from flows.service import (
    JOB_TABLE,
    FileServiceLock,
    PostgresServiceLock,
    Service,
    ServiceClock,
    ServiceLocked,
    ServiceOptions,
    running,
    service_lock,
    wake_id,
)
from models.actions import set_deadline
from models.audit import AuditEvent
from models.case import Case
from models.context import Actor
from models.db import Database
from models.imports import import_cases, import_roster
from models.registry import load_campaign, seed_divisions
from notifications.loopback import LoopbackSMTP
from operations.runtime import Runtime
from operations.settings import Settings
from operations.sweep import reconcile
from tests.conftest import MakeCtx, anchor_file, built_world, key_file
from tests.notifications.conftest import free_port

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "scenario"
SHENBAO = Path(sys.executable).parent / "shenbao"
CLUSTER = "2026-cluster-selection"
# 线上申报 closes 2026-06-25 24:00: the drafts still open then lapse.
APPLICATION_CLOSES = parse_deadline("2026-06-25 24:00")
REPO = Path(__file__).resolve().parents[2]


# -- a campaign with people and applications, built the way `shenbao init` + imports build it ----


def make_runtime(db_url: str, home: Path, **settings: Any) -> Runtime:
    values: dict[str, Any] = {
        "home": home,
        "database_url": db_url,
        "smtp_timeout": 5.0,
        "mail_from": "noreply@jxt.zj.gov.cn",
        "mail_from_name": "浙江省经济和信息化厅",
    }
    values.update(settings)
    rt = Runtime(Settings(**values))
    rt.audit(create=True)
    return rt


def seed_scenario(rt: Runtime) -> None:
    """Divisions, both 2026 campaigns, 杭州's roster and its 11 cluster applications (all drafts)."""
    system = Actor(name="tester")
    with rt.db.write() as session:
        seed_divisions(session)
        ctx = rt.ctx(system, now=parse_instant("2026-05-26T09:00"))
        for path in builtin_campaign_files():
            load_campaign(session, ctx, path.read_text(encoding="utf-8"), origin=path.name)
    with rt.db.write() as session:
        ctx = rt.ctx(system, now=parse_instant("2026-06-01T09:00"))
        sent = rt.ctx(Actor(name="tester", admin_reason="代杭州市报送名单"), now=ctx.now)
        import_roster(session, sent, SCENARIO / "roster_hangzhou.xlsx", submit=True)
        import_cases(session, ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")


def _hangzhou(database: Database, make_ctx: MakeCtx, folder: Path) -> None:
    """seed_scenario's imports on a seeded database (the world `scenario_db` copies)."""
    with database.write() as session:
        sent = make_ctx("2026-06-01T09:00", Actor(name="tester", admin_reason="代杭州市报送名单"))
        import_roster(session, sent, SCENARIO / "roster_hangzhou.xlsx", submit=True)
        ctx = make_ctx("2026-06-01T09:00", Actor(name="tester"))
        import_cases(session, ctx, CLUSTER, SCENARIO / "cluster_hangzhou.csv")


@pytest.fixture
def scenario_db(request: pytest.FixtureRequest, seeded: Database) -> Database:
    """What seed_scenario leaves, on the test's own database: built once per session and backend."""
    built_world(request, "hangzhou-scenario", _hangzhou)
    return seeded


def scenario_runtime(db: Database, tmp_path: Path, **settings: Any) -> Runtime:
    """A runtime on ``scenario_db``: its events are chained with the session's key (tests/conftest.py)."""
    return make_runtime(
        db.url,
        tmp_path / "home",
        audit_key_file=key_file(tmp_path),
        audit_anchor_file=anchor_file(tmp_path),
        **settings,
    )


def drafts(rt: Runtime) -> int:
    with rt.db.read() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(Case)
                .where(Case.campaign_id == CLUSTER, Case.kind == "cluster_application", Case.state == "draft")
            ).scalar_one()
        )


def lapse_events(rt: Runtime) -> list[AuditEvent]:
    with rt.db.read() as session:
        events = (
            session.execute(
                select(AuditEvent).where(AuditEvent.action == "state_change").order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
    return [e for e in events if e.to_value == "lapsed"]


@pytest.fixture
def smtp() -> Iterator[LoopbackSMTP]:
    with LoopbackSMTP() as server:
        yield server


@pytest.fixture
def scenario(scenario_db: Database, tmp_path: Path, smtp: LoopbackSMTP) -> Iterator[Runtime]:
    """The scenario on each backend, mail going to a loopback SMTP server."""
    rt = scenario_runtime(scenario_db, tmp_path, smtp_port=smtp.port)
    yield rt
    rt.db.dispose()


def quiet_options(**overrides: Any) -> ServiceOptions:
    """No dashboard, and periodic jobs far enough apart that only what a test triggers runs."""
    values: dict[str, Any] = {
        "web": False,
        "sweep_minutes": 60.0,
        "watch_seconds": 3600.0,
        "heartbeat_seconds": 3600.0,
        "db_retry_seconds": 0.2,
    }
    values.update(overrides)
    return ServiceOptions(**values)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy: waiting for a real process, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the lock ------------------------------------------------------------------------------------


def test_it_refuses_a_second_service_on_the_same_database_and_names_the_holder(db: Database) -> None:
    first = service_lock(db, "shenbao-serve@machine-a:4242")
    second = service_lock(db, "shenbao-serve@machine-b:777")
    first.acquire()
    try:
        with pytest.raises(ServiceLocked) as refused:
            second.acquire()
        message = str(refused.value)
        assert "已有调度服务在运行" in message
        assert "machine-a:4242" in message
        assert "--standby" in message
    finally:
        first.release()
    second.acquire()
    second.release()


def test_it_uses_an_advisory_lock_on_postgresql_and_a_file_lock_on_sqlite(db: Database) -> None:
    lock = service_lock(db)
    if db.is_sqlite:
        assert isinstance(lock, FileServiceLock)
        assert lock.path.name.endswith(".db.serve.lock")
    else:
        assert isinstance(lock, PostgresServiceLock)


_HOLD_LOCK = """
import sys, time
from models.db import Database
from flows.service import service_lock
lock = service_lock(Database(sys.argv[1]), "shenbao-serve@victim:1")
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_holder_killed_with_sigkill_does_not_block_the_next_service(db: Database) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, db.url], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ServiceLocked, match="victim:1"):
            service_lock(db).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    lock = service_lock(db)

    def acquired() -> bool:
        # PostgreSQL ends the dead client's session when it sees the socket close: a moment.
        try:
            lock.acquire()
            return True
        except ServiceLocked:
            return False

    wait_for(acquired, what="the lock of a killed holder to be released")
    lock.release()


def test_it_takes_the_lock_back_after_losing_its_connection(_pg_schema: Database) -> None:
    lock = service_lock(_pg_schema, "shenbao-serve@reconnecting:1")
    lock.acquire()
    try:
        assert lock.verify() is True
        with _pg_schema.writer.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'shenbao-serve@reconnecting:1'"
                )
            )
            conn.commit()
        # The heartbeat finds the connection gone, reconnects and takes the lock again.
        assert lock.verify() is True
    finally:
        lock.release()


def test_it_knows_when_someone_else_got_the_lock_while_it_was_cut_off(_pg_schema: Database) -> None:
    lock = service_lock(_pg_schema, "shenbao-serve@cut-off:1")
    lock.acquire()
    with _pg_schema.writer.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'shenbao-serve@cut-off:1'"
            )
        )
        conn.commit()
    usurper = service_lock(_pg_schema, "shenbao-serve@usurper:2")
    wait_for(lambda: _try(usurper), what="the usurper to get the lock")
    try:
        assert lock.verify() is False
    finally:
        usurper.release()
        lock.release()


def _try(lock: Any) -> bool:
    try:
        lock.acquire()
        return True
    except ServiceLocked:
        return False


def test_a_deleted_lock_file_counts_as_a_lost_lock(tmp_path: Path) -> None:
    lock = FileServiceLock(tmp_path / "shenbao.db.serve.lock", "shenbao-serve@here:1")
    lock.acquire()
    assert lock.verify() is True
    (tmp_path / "shenbao.db.serve.lock").unlink()
    # Otherwise a newcomer could lock a new file of the same name while we still run.
    assert lock.verify() is False
    lock.release()


# -- the plan of wake-ups ------------------------------------------------------------------------------


def test_it_plans_a_wake_up_at_each_deadline_with_explicit_ids_in_its_own_table(scenario: Runtime) -> None:
    clock = ServiceClock.starting_at(parse_instant("2026-06-20T10:00"))
    with running(Service(scenario, quiet_options(), clock)) as service:
        assert service.scheduler is not None
        jobs = {job.id: job for job in service.scheduler.get_jobs()}
        assert {"sweep", "watch", "heartbeat"} <= jobs.keys()
        closing = jobs[wake_id(APPLICATION_CLOSES)]
        assert "截止" in closing.name
        assert abs(closing.next_run_time - clock.to_real(APPLICATION_CLOSES)) < timedelta(seconds=1)
        # Nothing before the start is planned (the catch-up sweep covered it).
        assert all(
            job.next_run_time > clock.to_real(parse_instant("2026-06-20T10:00")) for job in jobs.values()
        )
    with scenario.db.read() as session:
        stored = session.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars().all()
    assert wake_id(APPLICATION_CLOSES) in stored


def test_a_restart_replaces_its_jobs_instead_of_adding_copies(scenario: Runtime) -> None:
    clock = ServiceClock.starting_at(parse_instant("2026-06-20T10:00"))
    with running(Service(scenario, quiet_options(), clock)):
        pass
    with running(Service(scenario, quiet_options(), clock)) as service:
        report = service.replan("测试")
        assert report.added == 0 and report.removed == 0
    with scenario.db.read() as session:
        ids = session.execute(text(f"SELECT id FROM {JOB_TABLE}")).scalars().all()
    assert len(ids) == len(set(ids))


def test_a_moved_deadline_is_replanned_by_the_watch(scenario: Runtime) -> None:
    clock = ServiceClock.starting_at(parse_instant("2026-06-20T10:00"))
    extended = parse_deadline("2026-06-30 24:00")
    with running(Service(scenario, quiet_options(), clock)) as service:
        assert service.watch() is False
        with scenario.db.write() as session:
            set_deadline(
                session,
                scenario.ctx(Actor(name="省经信厅"), now=clock.now()),
                CLUSTER,
                "application",
                extended,
                "统一延期",
            )
        assert service.watch() is True
        assert service.scheduler is not None
        ids = {job.id for job in service.scheduler.get_jobs()}
    assert wake_id(extended) in ids
    assert wake_id(APPLICATION_CLOSES) not in ids


def test_a_deadline_moved_into_the_past_is_acted_on_at_once(scenario: Runtime) -> None:
    start = parse_instant("2026-06-20T10:00")
    with running(Service(scenario, quiet_options(), ServiceClock.starting_at(start))) as service:
        with scenario.db.write() as session:
            set_deadline(
                session,
                scenario.ctx(Actor(name="省经信厅"), now=start),
                CLUSTER,
                "application",
                parse_deadline("2026-06-19 24:00"),
                "提前截止（演练）",
            )
        assert service.watch() is True
    assert drafts(scenario) == 0
    assert len(lapse_events(scenario)) == 11


# -- sweeps -------------------------------------------------------------------------------------------


# SQLite only: the wake-up is APScheduler's on either backend, and the PostgreSQL job store has its
# own test (test_it_plans_a_wake_up_at_each_deadline_with_explicit_ids_in_its_own_table).
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_24_00_closing_happens_at_24_00_not_at_the_next_poll(scenario: Runtime, smtp: LoopbackSMTP) -> None:
    # Shortly before the deadline, and an hourly poll: only the wake-up can close it in time. The
    # start, catch-up sweep included, must be over by 24:00, on a busy machine too (a fixed 3 s
    # were too few at a load average of 10, and a fixed 10 s were waited for on a quiet one): the
    # lead is three times what the same start and stop took just now, an hour before (when
    # nothing closes), and at least 2 s.
    rehearsal = time.monotonic()
    with running(
        Service(scenario, quiet_options(), ServiceClock.starting_at(APPLICATION_CLOSES - timedelta(hours=1)))
    ):
        pass
    lead = max(2.0, 3 * (time.monotonic() - rehearsal))
    start = APPLICATION_CLOSES - timedelta(seconds=lead)
    with running(Service(scenario, quiet_options(), ServiceClock.starting_at(start))) as service:
        assert drafts(scenario) == 11  # the catch-up ran before the deadline
        woke = wait_for(
            lambda: service.last_sweep if service.last_sweep.reason.startswith("唤醒") else None,  # type: ignore[union-attr]
            what="the wake-up at 24:00",
        )
    assert woke.tick.lapsed and "截止" in woke.reason
    events = lapse_events(scenario)
    assert len(events) == 11
    for event in events:
        assert APPLICATION_CLOSES <= event.at < APPLICATION_CLOSES + timedelta(minutes=60)


def test_a_sweep_reads_the_clock_once_for_reconcile_and_dispatch(
    scenario: Runtime, smtp: LoopbackSMTP
) -> None:
    seen: list[datetime] = []

    def ticking() -> datetime:
        # Each reading of the real clock moves it a minute: two readings would show.
        seen.append(datetime(2026, 6, 18, 2, 0, tzinfo=UTC) + timedelta(minutes=len(seen)))
        return seen[-1]

    service = Service(scenario, quiet_options(), ServiceClock(real=ticking))
    result = service.sweep("测试")
    assert len(seen) == 1
    assert result.error is None and result.tick is not None and result.sent is not None
    assert result.tick.now == seen[0]
    assert result.sent.sent == len(smtp) > 0


def test_two_reconciles_at_once_write_each_reminder_once(scenario: Runtime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from models.outbox import Notification

    now = parse_instant("2026-06-18T10:00")
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: reconcile(scenario, now), range(4)))
    assert sum(sum(r.written.values()) for r in reports) > 0
    with scenario.db.read() as session:
        keys = session.execute(select(Notification.key)).scalars().all()
    assert len(keys) == len(set(keys)) == sum(sum(r.written.values()) for r in reports)


# -- the dashboard ----------------------------------------------------------------------------------------


def test_it_serves_the_dashboard_when_it_is_installed(scenario: Runtime) -> None:
    pytest.importorskip("dashboard.app")
    port = free_port()
    options = quiet_options(web=True, port=port)
    with running(Service(scenario, options, ServiceClock.starting_at(parse_instant("2026-06-20T10:00")))):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:  # a login page may answer 401/303; it answered
            status = exc.code
    assert status < 500


def test_it_runs_without_the_dashboard_when_it_is_absent(
    scenario: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "dashboard.app", None)  # type: ignore[arg-type]
    caplog.set_level("INFO", logger="shenbao.service")
    logger = __import__("logging").getLogger("shenbao")
    monkeypatch.setattr(logger, "propagate", True)
    with running(
        Service(
            scenario, quiet_options(web=True), ServiceClock.starting_at(parse_instant("2026-06-20T10:00"))
        )
    ):
        pass
    assert "未安装看板模块" in caplog.text


# -- `shenbao serve`, a real process ------------------------------------------------------------------------


def serve_env(home: Path, db_url: str, smtp_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHENBAO_")}
    return env | {
        "SHENBAO_HOME": str(home),
        "SHENBAO_DATABASE_URL": db_url,
        "SHENBAO_SMTP_PORT": str(smtp_port),
        "COLUMNS": "200",
    }


class ServeProcess:
    """`shenbao serve` in a subprocess, its log collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import threading

        self.proc = subprocess.Popen(
            [str(SHENBAO), *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, fragment: str, timeout: float = 60.0) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"shenbao serve exited with {self.proc.returncode}:\n{self.log}")
            return next((line for line in self.lines if fragment in line), None)

        return wait_for(found, timeout, what=f"{fragment!r} in the log:\n{self.log}")  # type: ignore[no-any-return]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def test_shenbao_serve_refuses_a_second_instance_and_stops_cleanly_on_sigterm(
    tmp_path: Path, db: Database, smtp: LoopbackSMTP
) -> None:
    rt = make_runtime(db.url, tmp_path / "home", smtp_port=smtp.port)
    seed_scenario(rt)
    env = serve_env(tmp_path / "home", db.url, smtp.port)
    first = ServeProcess(["--now", "2026-06-20T10:00", "serve", "--no-web"], env)
    try:
        first.wait_for_line("调度服务已就绪")
        second = subprocess.run(
            [str(SHENBAO), "serve", "--no-web"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 5
        assert "已有调度服务在运行" in second.stderr
        assert f":{first.proc.pid}" in second.stderr  # names the holder's process
    finally:
        code = first.stop()
    assert code == 0, first.log
    assert "收到 SIGTERM" in first.log
    assert "调度锁已释放" in first.log
    # The lock is free again.
    lock = service_lock(rt.db)
    lock.acquire()
    lock.release()
    rt.db.dispose()


def test_shenbao_serve_logs_in_chinese_with_shanghai_time(
    tmp_path: Path, sqlite_db: Database, smtp: LoopbackSMTP
) -> None:
    rt = make_runtime(sqlite_db.url, tmp_path / "home", smtp_port=smtp.port)
    seed_scenario(rt)
    serve = ServeProcess(
        ["--now", "2026-06-20T10:00", "serve", "--no-web"],
        serve_env(tmp_path / "home", sqlite_db.url, smtp.port),
    )
    try:
        ready = serve.wait_for_line("调度服务已就绪")
    finally:
        serve.stop()
    shanghai_now = datetime.now(LOCAL_TZ)
    stamp = datetime.strptime(ready[:19], "%Y-%m-%d %H:%M:%S")
    # The stamp is Shanghai wall time (the machine's own zone may be anything).
    assert abs(stamp - shanghai_now.replace(tzinfo=None)) < timedelta(hours=1)
    assert "2026-06-20（周六）10:00 启动补跑" in serve.log
    assert "排定唤醒时刻" in serve.log


def test_the_service_commands_do_not_import_prefect() -> None:
    code = (
        "import sys\n"
        "from flows import cli\n"
        "cli._load_extensions(); cli._add_common_options(cli.cli)\n"
        "import flows.service\n"
        "assert 'prefect' not in sys.modules, 'prefect imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_a_standby_takes_over_when_the_running_service_stops(scenario: Runtime) -> None:
    import threading

    clock = ServiceClock.starting_at(parse_instant("2026-06-20T10:00"))
    first = Service(scenario, quiet_options(), clock)
    first.start()
    standby = Service(scenario, quiet_options(standby=True, standby_poll_seconds=0.1), clock)
    starting = threading.Thread(target=standby.start)
    try:
        starting.start()
        starting.join(timeout=1.0)
        assert starting.is_alive()  # waiting for the lock, not running
        assert standby.scheduler is None
    finally:
        first.stop()
    starting.join(timeout=30)
    try:
        assert standby.scheduler is not None and standby.last_sweep is not None
    finally:
        standby.stop()


def test_a_sweep_only_reconciles_while_a_long_dispatch_is_still_draining(scenario: Runtime) -> None:
    service = Service(scenario, quiet_options(), ServiceClock.starting_at(parse_instant("2026-06-18T10:00")))
    with service._dispatch_lock:  # another sweep's dispatch, still at work
        result = service.sweep("测试")
    assert result.tick is not None and result.tick.emails > 0
    assert result.sent is None and result.dispatch_skipped


def test_a_newline_in_someone_s_text_cannot_forge_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from flows.service import configure_logging

    logger = logging.getLogger("shenbao")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        configure_logging()
        reason = "延期\n2026-06-01 10:00:00 信息 调度服务已停止\r\x1b[2K"
        logging.getLogger("shenbao.service").error("导入出错：%s", reason)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith("错误 导入出错：延期\\n2026-06-01 10:00:00 信息 调度服务已停止\\r␛[2K")
