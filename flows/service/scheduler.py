"""APScheduler as the service uses it: the job stores, the periodic jobs, the wake-up calls.

The database is the only source of truth. APScheduler's job store (its own table in the same
database) holds wake-up calls, nothing more: losing one delays a reminder, never loses it. The
periodic jobs live in memory and are re-added at every start. APScheduler is imported here only,
and only when a scheduler is built.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from calendars.timeutil import LOCAL_TZ
from flows.service.outage import JobStoreOutage, is_db_unreachable
from flows.service.plan import WAKE_PREFIX, PlannedWake, ServiceClock, wake_id
from models.db import Database

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from flows.service.process import ServiceOptions

# APScheduler's table in the shenbao database; the name says whose it is.
JOB_TABLE = "shenbao_scheduler_jobs"
# APScheduler's in-memory store for the jobs re-added at every start (see build_scheduler).
PERIODIC_STORE = "periodic"
PERIODIC_JOBS = ("sweep", "watch", "heartbeat")
# The job functions, by name: a persistent job store keeps a reference, never an object.
JOBS = "flows.service.jobs"


def _scheduler_class() -> type[BackgroundScheduler]:
    from apscheduler.schedulers.background import BackgroundScheduler

    class StopsItsLoopFirst(BackgroundScheduler):
        """A BackgroundScheduler whose shutdown stops its own loop before its executors.

        APScheduler 3's ``shutdown()`` marks the scheduler stopped, shuts the executors down,
        then wakes its loop thread to let it see that; but the loop only checks for *paused*
        before it looks for due jobs, so the wake-up (or a wait that times out just then)
        submits due jobs to an executor already shut down: "cannot schedule new futures after
        shutdown" at every stop that meets a due job. Here the loop is told to stop under the
        job-store lock it takes to submit (an RLock), so after that nothing more is submitted
        and the executors can go.
        """

        _stopping = False

        def _process_jobs(self) -> float | None:
            with self._jobstores_lock:
                if self._stopping:
                    return None
                try:
                    return super()._process_jobs()
                except Exception as exc:
                    # APScheduler guards only get_due_jobs(): a database lost between that and
                    # get_next_run_time() / update_job() escaped and ended the loop thread, and
                    # with it every wake-up and periodic sweep, while the process ran on. Handled
                    # as APScheduler handles a store it cannot read (the outage filter reports it
                    # once, in Chinese): try again after the store's retry interval.
                    if not is_db_unreachable(exc):
                        raise
                    self._logger.warning("Error getting due jobs from job store %r: %s", "default", exc)
                    return float(self.jobstore_retry_interval)

        def shutdown(self, wait: bool = True) -> None:
            with self._jobstores_lock:
                self._stopping = True
            super().shutdown(wait)

    return StopsItsLoopFirst


def build_scheduler(
    db: Database, options: ServiceOptions
) -> tuple[BackgroundScheduler, Database, JobStoreOutage]:
    """The scheduler, the job store's own database engines (disposed at stop) and its outage filter."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    # Its own engines (with the same SQLite pragmas): the store's shutdown disposes them.
    store_db = Database(db.url, timeouts=db.timeouts)
    outage = JobStoreOutage(db.timeouts, options.sweep_minutes)
    logging.getLogger("apscheduler.scheduler").addFilter(outage)
    scheduler = _scheduler_class()(
        jobstores={
            # The periodic jobs are re-added at every start, so they need no database, and in
            # memory they keep firing while the database is down: APScheduler skips a store it
            # cannot read, which would otherwise stop the sweeps and their retries too.
            PERIODIC_STORE: MemoryJobStore(),
            # The wake-ups at deadlines stay in the database: they survive a restart.
            "default": SQLAlchemyJobStore(engine=store_db.writer, tablename=JOB_TABLE),
        },
        # Sweeps are serialised by a lock; spare threads keep the heartbeat and the watch on
        # time while a long sweep runs.
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": options.misfire_grace_seconds,
        },
        timezone=LOCAL_TZ,
    )
    return scheduler, store_db, outage


def release_outage_filter(outage: JobStoreOutage) -> None:
    logging.getLogger("apscheduler.scheduler").removeFilter(outage)


def add_periodic_jobs(scheduler: BackgroundScheduler, options: ServiceOptions) -> None:
    o = options
    common: dict[str, Any] = {
        "replace_existing": True,
        "coalesce": True,
        "max_instances": 1,
        "jobstore": PERIODIC_STORE,
    }
    for job_id in PERIODIC_JOBS:
        # Earlier versions stored them in the database: one copy of each is enough.
        with contextlib.suppress(Exception):
            scheduler.remove_job(job_id, jobstore="default")
    scheduler.add_job(
        f"{JOBS}:sweep_job",
        "interval",
        seconds=o.sweep_minutes * 60,
        id="sweep",
        name="周期对账与发送",
        kwargs={"reason": "周期"},
        misfire_grace_time=int(o.sweep_minutes * 60),
        **common,
    )
    scheduler.add_job(
        f"{JOBS}:watch_job",
        "interval",
        seconds=o.watch_seconds,
        id="watch",
        name="检查截止时间调整",
        misfire_grace_time=int(o.watch_seconds),
        **common,
    )
    scheduler.add_job(
        f"{JOBS}:heartbeat_job",
        "interval",
        seconds=o.heartbeat_seconds,
        id="heartbeat",
        name="调度锁心跳",
        misfire_grace_time=int(o.heartbeat_seconds),
        **common,
    )
    scheduler.add_job(
        f"{JOBS}:inbox_job",
        "interval",
        seconds=o.inbox_seconds,
        id="inbox",
        name="同步收件箱中的平台导出",
        misfire_grace_time=max(int(o.inbox_seconds), 1),
        **common,
    )


def sync_wakeups(
    scheduler: BackgroundScheduler,
    wanted: list[PlannedWake],
    clock: ServiceClock,
    misfire_grace_seconds: int,
) -> tuple[int, int]:
    """Make the stored wake-up calls exactly ``wanted``; returns (added, removed)."""
    from apscheduler.triggers.date import DateTrigger

    by_id = {wake_id(w.at): w for w in wanted}
    existing = {job.id: job for job in scheduler.get_jobs() if job.id.startswith(WAKE_PREFIX)}
    removed = 0
    for job_id in existing.keys() - by_id.keys():
        with contextlib.suppress(Exception):  # it may have just fired and gone
            scheduler.remove_job(job_id)
            removed += 1
    added = 0
    for job_id, w in by_id.items():
        run_at = clock.to_real(w.at)
        job = existing.get(job_id)
        if (
            job is not None
            and job.next_run_time is not None
            and abs(job.next_run_time - run_at) < timedelta(seconds=1)
        ):
            continue
        scheduler.add_job(
            f"{JOBS}:wake_job",
            DateTrigger(run_date=run_at, timezone=UTC),
            id=job_id,
            name=w.what[:190],
            kwargs={"at": w.at.isoformat(), "what": w.what},
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=misfire_grace_seconds,
        )
        added += 1
    return added, removed
