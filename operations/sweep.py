"""The engine's own work at an instant: reconcile (lapses, reminders, escalations, mails) and
dispatch (send what is due, each message re-checked just before it goes), and the simulation
step that does both. Everything here acts as SYSTEM.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session

from models.audit import AuditLog
from models.context import SYSTEM, Ctx
from operations.runtime import Runtime, SettingsRecheck

if TYPE_CHECKING:
    from notifications.channel_dispatch import ChannelReport
    from notifications.channels.base import Transport
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
    _receipts(session, rt, ctx.now)
    return tick(session, ctx, rt.calendar, rt.identity, rt.renderer)


def _witness_checkpoint(session: Session, rt: Runtime, now: datetime) -> None:
    """The day's signed checkpoint into the witnesses' outbox, composed with the rest of their
    digest by the tick that follows (none when this machine has no signing key: said in the log
    once a day, operations.checkpoints.warn_unsigned)."""
    from notifications.checkpoint_notice import plan, witness_contacts
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


def _receipts(session: Session, rt: Runtime, now: datetime) -> None:
    """Each action's receipt into its actor's outbox, composed by the tick that follows; held,
    and said, while no checkpoint can cover them (operations.checkpoints.receipt_checkpoint)."""
    from models.checkpoint import CheckpointInvalid, KeyProblem
    from notifications.receipt_notice import plan
    from operations.checkpoints import receipt_checkpoint, warn_unsigned

    try:
        # Signed at the sweep's instant, not the machine's clock: a simulated season's receipt
        # checkpoints carry its days (and count as that day's checkpoint, daily_checkpoint).
        plan(session, now, lambda size: receipt_checkpoint(rt, session, size, now))
    except (KeyProblem, CheckpointInvalid) as exc:
        # The reminders and lapses of this pass must not wait on the audit's key: only the
        # receipts do, and the warning says why.
        warn_unsigned(rt, exc)
    except LookupError as exc:
        # An event no longer matching its leaf: the receipts wait for `audit verify` and a
        # person; the deadlines' mail does not.
        logging.getLogger("shenbao.audit").error("操作回执暂不发送：%s", exc)


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
    """Send what is due at ``now`` on every channel: first 浙政钉, robots and SMS (each within its
    quotas; a dead one falls back, possibly to email), then email, in one process or
    ``processes``, always with the pre-send recheck (a county that acted after the tick is not
    reminded); safe beside other dispatchers."""
    from notifications.dispatcher import dispatch as dispatch_due
    from notifications.dispatcher import dispatch_in_processes

    channels = dispatch_channels(rt, now, worker=worker, limit=limit)
    config = rt.smtp_config(**smtp)
    if processes > 1:
        # A child process cannot receive a closure: it rebuilds the recheck from the settings.
        report = dispatch_in_processes(
            rt.db.url, now, config, processes, recheck=SettingsRecheck(rt.settings), timeouts=rt.db.timeouts
        )
    else:
        report = dispatch_due(
            rt.db, now, config, worker=worker or worker_name("send"), recheck=rt.recheck(), limit=limit
        )
    report.channels = channels.as_dict()
    return report


def dispatch_channels(
    rt: Runtime,
    now: datetime,
    *,
    worker: str | None = None,
    limit: int | None = None,
    transports: Mapping[str, Transport] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ChannelReport:
    """Send the due 浙政钉, robot and SMS messages through the configured transports (none
    configured: nothing to do), re-checked and governed. ``clock``: the instant the governor and
    the transports' signatures use (a simulation's); the transports are closed afterwards."""
    import asyncio

    from notifications.channel_dispatch import ChannelConfig, ChannelReport, dispatch_channels_due
    from notifications.compose import ChannelRechecker
    from notifications.governor import Governor
    from operations.channels import build_transports

    if clock is None:
        # The governor's decisions and the transports' signed timestamps follow one clock: the
        # sweep's instant plus the time the run has taken (a simulation's instant, or now).
        import time

        started = time.monotonic()

        def clock() -> datetime:
            return now + timedelta(seconds=time.monotonic() - started)

    owned = transports is None
    if transports is None:
        built: Mapping[str, Transport] = {
            str(k): v for k, v in build_transports(rt.settings, rt.db, clock=clock).items()
        }
        transports = built
    if not transports:
        return ChannelReport()
    given = transports

    async def run() -> ChannelReport:
        try:
            return await dispatch_channels_due(
                rt.db,
                now,
                given,
                worker=worker or worker_name("send"),
                governor=Governor.for_transports(given),
                config=ChannelConfig(
                    from_addr=rt.identity.from_addr,
                    from_name=rt.identity.from_name,
                    max_attempts=rt.settings.mail_max_attempts,
                ),
                recheck=ChannelRechecker(rt.calendar, rt.identity, rt.renderer),
                clock=clock,
                limit=limit,
            )
        finally:
            if owned:
                for transport in given.values():
                    await transport.aclose()

    return asyncio.run(run())


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
