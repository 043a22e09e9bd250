"""`shenbao serve`: one process that wakes at the instants that matter, and the lock that keeps it one.

Split along its concepts:

- :mod:`flows.service.process`: the service itself (life cycle, sweeps, re-planning);
- :mod:`flows.service.lock`: one scheduler per database (advisory lock / flock);
- :mod:`flows.service.plan`: the service's clock and the wake-up instants;
- :mod:`flows.service.scheduler`: APScheduler's job stores, periodic jobs and wake-up calls;
- :mod:`flows.service.jobs`: the job functions APScheduler calls by name;
- :mod:`flows.service.outage`: the database not answering;
- :mod:`flows.service.signals`: SIGTERM/SIGINT; :mod:`flows.service.web`: the dashboard thread;
- :mod:`flows.service.logs`: Chinese log lines in Shanghai time.

The names below are re-exported for the edges, and ``flows.service:wake_job`` for the wake-up
calls that a job store written by an earlier version still holds by that name.
"""

from __future__ import annotations

from flows.service.jobs import heartbeat_job, inbox_job, sweep_job, wake_job, watch_job
from flows.service.lock import (
    EXIT_LOCKED,
    SERVICE_LOCK_KEY,
    FileServiceLock,
    PostgresServiceLock,
    ServiceLock,
    ServiceLocked,
    service_lock,
)
from flows.service.logs import ShanghaiFormatter, configure_logging, describe_dispatch, describe_tick
from flows.service.outage import JobStoreOutage, is_db_unreachable
from flows.service.plan import (
    PlannedWake,
    PlanReport,
    ServiceClock,
    deadline_signature,
    plan_wakeups,
    wake_id,
)
from flows.service.process import Service, ServiceOptions, SweepResult, running
from flows.service.scheduler import JOB_TABLE

__all__ = [
    "EXIT_LOCKED",
    "JOB_TABLE",
    "SERVICE_LOCK_KEY",
    "FileServiceLock",
    "JobStoreOutage",
    "PlanReport",
    "PlannedWake",
    "PostgresServiceLock",
    "Service",
    "ServiceClock",
    "ServiceLock",
    "ServiceLocked",
    "ServiceOptions",
    "ShanghaiFormatter",
    "SweepResult",
    "configure_logging",
    "deadline_signature",
    "describe_dispatch",
    "describe_tick",
    "heartbeat_job",
    "inbox_job",
    "is_db_unreachable",
    "plan_wakeups",
    "running",
    "service_lock",
    "sweep_job",
    "wake_id",
    "wake_job",
    "watch_job",
]
