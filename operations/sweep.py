"""The engine's own work at an instant: reconcile (lapses, reminders, escalations, mails) and
dispatch (send what is due, each message re-checked just before it goes), and the simulation
step that does both. Everything here acts as SYSTEM.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session

from models.audit import AuditLog
from models.context import SYSTEM, Ctx
from operations.runtime import Runtime, SettingsRecheck

if TYPE_CHECKING:
    from notifications.dispatcher import DispatchReport
    from notifications.reconcile import TickReport


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# Reconcile takes this one per transaction: two reconciles at once (the service and `shenbao
# tick`, a Prefect sweep, two workers) would both write the same keys and one would fail on the
# unique index. SQLite's BEGIN IMMEDIATE already queues writers.
RECONCILE_LOCK_KEY = advisory_key("shenbao:reconcile")


def worker_name(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


@dataclass
class Rehearsal:
    """One transaction that is rolled back at the end: a dry run writes, reads, and keeps nothing."""

    session: Session
    audit: AuditLog


@contextmanager
def rehearsal(rt: Runtime) -> Iterator[Rehearsal]:
    with rt.db.writer.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        audit = rt.audit()
        audit.anchor_path = None  # nothing is committed, so nothing is anchored
        try:
            yield Rehearsal(session, audit)
        finally:
            session.close()
            trans.rollback()


def _reconcile_in(session: Session, rt: Runtime, ctx: Ctx) -> TickReport:
    from notifications.reconcile import tick

    if not rt.db.is_sqlite:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RECONCILE_LOCK_KEY})
    _witness_checkpoint(session, rt, ctx.now)
    return tick(session, ctx, rt.calendar, rt.identity, rt.renderer)


def _witness_checkpoint(session: Session, rt: Runtime, now: datetime) -> None:
    """The day's signed checkpoint into the witnesses' outbox, composed with the rest of their
    digest by the tick that follows (nothing when this machine has no signing key)."""
    from notifications.witness import plan, witness_contacts
    from operations.checkpoints import daily_checkpoint

    checkpoint = daily_checkpoint(rt, session, now)
    if checkpoint is None:
        return
    keyring = rt.settings.resolved_keyring_file
    keys = "\n".join(
        line
        for line in (keyring.read_text().splitlines() if keyring.exists() else [])
        if line and not line.startswith("#")
    )
    plan(session, checkpoint, witness_contacts(session, rt.settings.witness_orgs), keys, now)


def reconcile(rt: Runtime, now: datetime, *, within: Rehearsal | None = None) -> TickReport:
    """One reconcile + compose at ``now``, serialised across processes by the reconcile lock."""
    if within is not None:
        report = _reconcile_in(within.session, rt, Ctx(now=now, actor=SYSTEM, audit=within.audit))
        within.session.flush()
        return report
    with rt.db.write() as session:
        return _reconcile_in(session, rt, rt.ctx(SYSTEM, now=now))


def dispatch(
    rt: Runtime,
    now: datetime,
    *,
    processes: int = 1,
    worker: str | None = None,
    limit: int | None = None,
    **smtp: Any,
) -> DispatchReport:
    """Send what is due at ``now``, in one process or ``processes``, always with the pre-send
    recheck (a county that acted after the tick is not reminded); safe beside other dispatchers."""
    from notifications.dispatcher import dispatch as dispatch_due
    from notifications.dispatcher import dispatch_in_processes

    config = rt.smtp_config(**smtp)
    if processes > 1:
        # A child process cannot receive a closure: it rebuilds the recheck from the settings.
        return dispatch_in_processes(
            rt.db.url, now, config, processes, recheck=SettingsRecheck(rt.settings), timeouts=rt.db.timeouts
        )
    return dispatch_due(
        rt.db, now, config, worker=worker or worker_name("send"), recheck=rt.recheck(), limit=limit
    )


@dataclass
class Step:
    at: datetime
    tick: TickReport
    sent: DispatchReport | None = None


def step(rt: Runtime, now: datetime, *, send: bool, within: Rehearsal | None = None) -> Step:
    """What the scheduler does at an instant: reconcile, then (unless rehearsing) dispatch."""
    report = reconcile(rt, now, within=within)
    sent = dispatch(rt, now) if send and within is None else None
    return Step(at=now, tick=report, sent=sent)
