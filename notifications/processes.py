"""Several dispatcher processes draining one outbox: each a dispatcher with its own database
connections and SMTP connections, started together, their reports summed. Split from
notifications/dispatcher.py (issue 13).
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading
import time
import traceback
from dataclasses import fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from models.db import Database, Timeouts
from notifications.outcomes import DispatchReport
from notifications.smtp import SmtpConfig

if TYPE_CHECKING:
    from notifications.dispatcher import Recheck


def load_recheck(path: str) -> Recheck:
    """``"package.module:function"`` → the function (a child process cannot receive a closure)."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"recheck path {path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attr)


def _report_fields(report: DispatchReport) -> dict[str, Any]:
    return {f.name: getattr(report, f.name) for f in fields(report)}


def _dispatch_child(
    db_url: str,
    now: datetime,
    config: SmtpConfig,
    worker: str,
    recheck_path: str | Recheck | None,
    start: Any,
    results: Any,
    timeouts: Timeouts | None = None,
) -> None:
    try:
        db = Database(db_url, timeouts=timeouts or Timeouts())
        recheck = load_recheck(recheck_path) if isinstance(recheck_path, str) else recheck_path
    except BaseException:
        start.abort()
        results.put((worker, "error", traceback.format_exc()))
        return
    try:
        # Everyone starts together, after the imports: the parent times the sending only.
        start.wait(timeout=120)
        from notifications.dispatcher import dispatch

        report = dispatch(db, now, config, worker=worker, recheck=recheck)
        results.put((worker, "ok", _report_fields(report)))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))
    finally:
        db.dispose()


def per_process_config(config: SmtpConfig, processes: int) -> SmtpConfig:
    """The server's rate is shared: each of ``processes`` dispatchers gets its part."""
    return replace(config, rate_per_second=config.rate_per_second / processes)


def dispatch_in_processes(
    db_url: str,
    now: datetime,
    config: SmtpConfig,
    processes: int,
    recheck_path: str | None = None,
    recheck: Recheck | None = None,
    timeouts: Timeouts | None = None,
) -> DispatchReport:
    """Run ``processes`` OS processes, each a dispatcher with its own database connections and
    ``config.concurrency`` SMTP connections, until nothing is due; return the summed report.

    The rate limit is per process, so each gets ``rate_per_second / processes`` to keep the
    server's total within the configured rate. ``recheck`` must be picklable (each child gets a
    copy); ``recheck_path`` names a module-level function instead. ``elapsed_seconds`` is the wall time from the
    moment all processes were ready to the last one finishing.
    """
    if processes < 1:
        raise ValueError("processes must be at least 1")
    child_config = per_process_config(config, processes)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    from notifications.dispatcher import default_worker_name

    base = default_worker_name()
    children = [
        ctx.Process(
            target=_dispatch_child,
            args=(
                db_url,
                now,
                child_config,
                f"{base}/{i}",
                recheck or recheck_path,
                start,
                results,
                timeouts,
            ),
            name=f"shenbao-dispatch-{i}",
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    total = DispatchReport()
    errors: list[str] = []
    try:
        try:
            start.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass  # a child failed to start; its error is in the queue
        started = time.perf_counter()
        pending = processes
        while pending:
            try:
                worker, status, payload = results.get(timeout=1.0)
            except Exception:  # queue.Empty: check that nobody died without a word
                if all(not c.is_alive() for c in children) and results.empty():
                    errors.append("dispatcher process exited without a report")
                    break
                continue
            pending -= 1
            if status == "ok":
                total = total + DispatchReport(**payload)
            else:
                errors.append(f"{worker}: {payload}")
        total.elapsed_seconds = time.perf_counter() - started
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
                child.join()
    if errors:
        raise RuntimeError("dispatcher process failed:\n" + "\n".join(errors))
    return total
