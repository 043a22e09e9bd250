"""The service's scheduler stops its own loop before its executors (APScheduler's stop-time race)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from flows.service.scheduler import _scheduler_class


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
