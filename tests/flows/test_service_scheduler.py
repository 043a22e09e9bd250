"""The service's scheduler stops its own loop before its executors (APScheduler's stop-time race)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from flows.service.scheduler import JOB_TABLE, _scheduler_class
from models.db import Database


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _stop_with_a_job_due(
    cls: type[BackgroundScheduler], store: Path
) -> tuple[list[str], list[BaseException]]:
    """A stored wake-up already due while the scheduler is paused, then a shutdown: the stock loop,
    woken by shutdown itself after the executor is gone, tries to submit it."""
    handler = _Collect()
    logger = logging.getLogger("apscheduler")
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    crashes: list[BaseException] = []
    saved_hook = threading.excepthook
    threading.excepthook = lambda args: crashes.append(args.exc_value)  # type: ignore[assignment,arg-type]
    try:
        scheduler = cls(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{store}")},
        )
        scheduler.start(paused=True)
        scheduler.add_job(
            "os:getpid", "date", run_date=datetime.now(UTC) - timedelta(seconds=1), misfire_grace_time=3600
        )
        scheduler.shutdown(wait=True)  # joins the loop thread: whatever it did is done
    finally:
        threading.excepthook = saved_hook
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
    return handler.messages, crashes


def test_the_stock_scheduler_submits_to_its_shut_down_executor(tmp_path: Path) -> None:
    # The race flows/service/scheduler.py works around; when an APScheduler release fixes it, this
    # fails, and the subclass can go.
    messages, _ = _stop_with_a_job_due(BackgroundScheduler, tmp_path / "stock.sqlite")
    assert any(m.startswith("Error submitting job") for m in messages), messages


def test_it_stops_its_loop_before_its_executors(tmp_path: Path) -> None:
    messages, crashes = _stop_with_a_job_due(_scheduler_class(), tmp_path / "ours.sqlite")
    assert "Scheduler has been shut down" in messages
    assert not [m for m in messages if m.startswith("Error submitting job")], messages
    assert "Looking for jobs to run" not in messages
    assert crashes == []


def test_a_database_lost_between_two_reads_of_the_job_store_does_not_end_the_loop(
    _pg_schema: Database,
) -> None:
    # The outage of test_serve_outage.py, made to begin at the one instant that killed the loop
    # thread there under load: after get_due_jobs() answered, before get_next_run_time() asked.
    from apscheduler.events import EVENT_JOB_EXECUTED

    from tests.conftest import _truncate
    from tests.flows.test_faults import TcpProxy
    from tests.flows.test_service import wait_for

    _truncate(_pg_schema)
    proxy = TcpProxy(make_url(_pg_schema.url).port or 5432).start()
    engine = create_engine(proxy.url(_pg_schema.url))
    store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
    read_due_jobs = store.get_due_jobs
    cut: list[bool] = []

    def due_jobs_then_outage(now: datetime) -> Any:
        jobs = read_due_jobs(now)
        if not cut:
            cut.append(True)
            proxy.stop()  # refuses new connections and drops the store's open one
        return jobs

    store.get_due_jobs = due_jobs_then_outage  # type: ignore[method-assign]
    handler = _Collect()
    logger = logging.getLogger("apscheduler")
    logger.addHandler(handler)
    crashes: list[BaseException] = []
    saved_hook = threading.excepthook
    threading.excepthook = lambda args: crashes.append(args.exc_value)  # type: ignore[assignment,arg-type]
    ran: list[str] = []
    scheduler = _scheduler_class()(
        executors={"default": ThreadPoolExecutor(max_workers=2)}, jobstores={"default": store}
    )
    scheduler.add_listener(lambda event: ran.append(event.job_id), EVENT_JOB_EXECUTED)
    try:
        scheduler.start()
        wait_for(lambda: cut and (crashes or handler.messages), what="the first round after the outage")
        assert crashes == []
        assert any(m.startswith("Error getting due jobs from job store") for m in handler.messages)
        # Still looping: once the database is back, a wake-up added now runs now.
        proxy.start()
        scheduler.add_job("os:getpid", "date", run_date=datetime.now(UTC), id="after", misfire_grace_time=60)
        wait_for(lambda: "after" in ran, what="the job added after the outage")
        assert crashes == []
    finally:
        threading.excepthook = saved_hook
        logger.removeHandler(handler)
        scheduler.shutdown(wait=True)
        engine.dispose()
        proxy.stop()
