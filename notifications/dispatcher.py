"""The outbox dispatcher: drains due ``email`` rows to an SMTP server and records every attempt.

How a row moves
---------------
``pending``/``retry`` (due: ``next_attempt_at <= now``) --claim--> ``sending`` --> one of

- ``sent``       the server accepted it (2xx after DATA);
- ``retry``      a temporary failure (4xx, connection lost before the data): tried again at
                 ``now + backoff_base * 2**(attempts-1)``, capped; or an *unknown* outcome (the
                 data went out, the final reply never came): tried again only after
                 ``unknown_retry_seconds``, with the same Message-ID;
- ``dead``       a permanent failure for this message (5xx for the recipient or its content),
                 or ``max_attempts`` failed tries in a row: a dead letter with the reason, until
                 a person re-queues it (``models.outbox.requeue``);
- ``cancelled``  the re-check found nothing left to say (the person did it meanwhile);
- back to ``pending``/``retry`` unchanged when the server could not be reached at all (refused,
  DNS, TLS, 421 greeting, login refused): that is not an attempt on the message, and the delay
  grows per server (``server_outages``), not per message.

Every try is a ``DeliveryAttempt`` row (outcome sent / temporary / permanent / unknown /
cancelled).

Claiming and leases
-------------------
Several dispatchers (tasks, processes, machines) may drain one outbox at once. A batch is claimed
in one short write transaction that turns rows into ``sending`` with ``claimed_by``,
``claimed_at`` and this run's ``lease_token``, and returns them. On PostgreSQL the candidates are
locked with ``SELECT … FOR UPDATE SKIP LOCKED``, so dispatchers never wait for each other nor take
the same row. On SQLite (one writer at a time, ``BEGIN IMMEDIATE``) the claim is a conditional
``UPDATE … WHERE id IN (…) AND status IN ('pending', 'retry') … RETURNING id``: a row is ours only
if it was still claimable when the statement changed it (healthchecks' ``sendalerts`` checks
``rowcount == 1`` row by row; RETURNING gives the same answer for a whole batch).

A lease lasts ``lease_seconds`` from the claim, by the real clock, and is renewed every third of
it for every row the run still holds; a claim is no larger than the rate can send in a quarter
of a lease. A row whose lease was not renewed in time belongs to a dispatcher that died or
stalled, and is claimed again. Before each send the run checks that its lease, as last confirmed
in the database, has not run out; if it has, the row is skipped (not sent, not counted).
Results are written only for rows still holding this run's token.

Sending
-------
``concurrency`` workers per process each keep one SMTP connection open and send message after
message over it, reconnecting after a failure. aiosmtplib opens it (TLS, STARTTLS, AUTH, EHLO,
each stage within ``timeout``); then the connection is taken over: with PIPELINING (RFC 2920;
most servers offer it) MAIL, RCPT and DATA go out in one write, otherwise one by one, each
reply within ``timeout``; the reply after the data gets ``data_timeout`` (10 minutes, RFC 5321
4.5.3.2). A token bucket per SMTP server paces all workers of a process; with N processes each
gets rate/N.

Delivery guarantee: at least once
---------------------------------
A message can go out twice only if the server accepted it and its result was not recorded:
the dispatcher died (or lost the database) between the server's 250 and the write of that
result (results are written in small batches, a few hundred rows or 50 ms), or the final reply
was lost (an *unknown* outcome, retried hours later). Both copies carry the same Message-ID,
derived from the email's key and already inside ``Email.raw`` (see ``notifications.mime``), so a
mail client, the server's log or an auditor can tell they are one message. No message is lost:
a crash leaves rows in ``sending``, claimable again when their lease runs out.

Time
----
``now`` is injected (simulations run a fake clock): due times, attempts, back-off and
``sent_at`` are all stamped with it. The real clock (``clock``, injectable) times the leases,
measures elapsed time and paces the rate limiter, which throttle real traffic to a real server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

import aiosmtplib
from sqlalchemy import Integer, and_, bindparam, func, insert, or_, select, text, true, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from models.db import Database
from models.outbox import (
    E_CANCELLED,
    E_DEAD,
    E_PENDING,
    E_RETRY,
    E_SENDING,
    E_SENT,
    DeliveryAttempt,
    Email,
)
from models.types import UTCDateTime
from notifications.outcomes import (
    UNKNOWN_DETAIL,
    DispatchReport,
    _is_outage,
    _outage_in,
    backoff,
    classify,
    server_outages,
)
from notifications.pacing import TokenBucket, rate_limiter_for
from notifications.smtp import (
    DeliveryUnknown,
    SmtpConfig,
    _Connection,
    _fqdn,
    data_block,
    envelope_address,
    envelope_sender,
)

Recheck: TypeAlias = Callable[[Session, Email, datetime], "bytes | Literal['keep'] | None"]

CANCELLED_DETAIL = "已办结，无需再催"

_email = Email.__table__  # type: ignore[attr-defined]
_attempt = DeliveryAttempt.__table__  # type: ignore[attr-defined]
_DUE_STATUSES = (E_PENDING, E_RETRY)
# Literal, not bound: a partial index (ix_email_due) is only usable when the query repeats its
# predicate with the same constants.
_DUE_PREDICATE = text("email.status IN ('pending', 'retry')")
_SQLITE_DUE = (
    text(
        "SELECT id FROM email INDEXED BY ix_email_due"
        " WHERE status IN ('pending', 'retry') AND next_attempt_at <= :now"
        " ORDER BY next_attempt_at, id LIMIT :n"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()), bindparam("n", type_=Integer()))
    .columns(id=Integer())
)


@dataclass(slots=True)
class _Job:
    id: int
    to_addr: str
    raw: bytes
    attempts: int
    # Until when this run may send it: the lease as last confirmed in the database.
    held_until: datetime | None = None


Kind: TypeAlias = Literal["sent", "temporary", "permanent", "unknown", "deferred", "lost"]


@dataclass(slots=True)
class _Outcome:
    job: _Job
    kind: Kind
    code: int | None = None
    detail: str = ""


class _Run:
    """One ``dispatch_due`` call: a claimer, ``concurrency`` SMTP workers, a recorder, and a
    renewer that keeps this run's leases fresh while it holds rows.

    Database work is synchronous SQLAlchemy, so it runs on one dedicated thread: the event loop
    keeps the SMTP connections busy while a claim or a batch of results is being written.
    """

    FLUSH_SIZE = 300
    FLUSH_INTERVAL = 0.05

    def __init__(
        self,
        db: Database,
        now: datetime,
        config: SmtpConfig,
        worker: str,
        recheck: Recheck | None,
        limit: int | None,
        progress: Callable[[int, int], None] | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.now = now
        self.config = config
        self.worker = worker
        self.recheck = recheck
        self.limit = limit
        self.progress = progress
        self.clock = clock
        self.lease = timedelta(seconds=config.lease_seconds)
        # Worker names repeat (a restarted process, two runs in one); the token is this run's.
        self.token = uuid.uuid4().hex
        self.held: dict[int, _Job] = {}  # rows this run holds a lease on, by id
        self.report = DispatchReport()
        self.limiter = rate_limiter_for(config)
        # Claimed rows wait here; bounded by the claim size, so a run holds no more than it can
        # send inside a lease.
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=self._claim_size())
        self.outcomes: list[_Outcome] = []
        self.flush_wanted = asyncio.Event()
        self.sending_done = False
        self.connect_failures = 0  # consecutive, across workers
        self.breaker_open = False
        self.connected_once = False
        self.database_error: BaseException | None = None
        self.total = 0
        self.db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-db")

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    async def run(self) -> DispatchReport:
        started = time.perf_counter()
        try:
            self.total = await self._in_db(self._count_due)
            if self.limit is not None:
                self.total = min(self.total, self.limit)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._claimer())
                    renewer = group.create_task(self._renewer())
                    workers = [group.create_task(self._sender()) for _ in range(self.config.concurrency)]
                    recorder = group.create_task(self._recorder())
                    await asyncio.gather(*workers)
                    self.sending_done = True
                    self.flush_wanted.set()
                    await recorder
                    renewer.cancel()
            except BaseExceptionGroup as group_error:
                # Callers want the database or programming error, not asyncio's wrapper.
                raise group_error.exceptions[0] from group_error
        finally:
            self.db_thread.shutdown(wait=True)
        if self.database_error is not None:
            # What was sent is recorded; what was claimed and not tried goes back to the
            # outbox when its lease runs out. The caller sees an outage, not a traceback.
            raise self.database_error
        # Unreachable: tried to connect and never managed to (fewer rows than workers may
        # never open the breaker).
        unreachable = self.breaker_open or (self.connect_failures > 0 and not self.connected_once)
        if unreachable:
            server_outages.down(self.config)
        self.report.elapsed_seconds = time.perf_counter() - started
        self.report.server_unreachable = unreachable
        return self.report

    # -- leases -------------------------------------------------------------------------------
    def _stale_clause(self) -> Any:
        # A lease not renewed within lease_seconds belongs to a dispatcher that died or stalled.
        return and_(_email.c.status == E_SENDING, _email.c.claimed_at < self.clock() - self.lease)

    def _claim_size(self) -> int:
        """Rows per claim: no more than can be sent well inside a lease at the configured rate
        (a quarter of it: one batch is being sent while the next waits in the queue)."""
        n = self.config.batch_size
        if self.config.rate_per_second > 0:
            n = min(n, max(1, int(self.config.rate_per_second * self.config.lease_seconds / 4)))
        return n

    async def _renewer(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            try:
                await self._in_db(self._renew)
            except DBAPIError:
                # The leases run out on their own and the senders stop; the recorder or the
                # claimer reports the outage.
                continue

    def _renew(self) -> None:
        at = self.clock()
        with self.db.write() as session:
            kept = session.execute(
                update(_email)
                .where(_email.c.lease_token == self.token, _email.c.status == E_SENDING)
                .values(claimed_at=at)
                .returning(_email.c.id)
            ).scalars()
            for row_id in kept:
                job = self.held.get(row_id)
                if job is not None:
                    job.held_until = at + self.lease

    def _still_held(self, job: _Job) -> bool:
        # The lease was confirmed in the database at held_until - lease, so until held_until
        # nobody else can have claimed the row.
        return job.held_until is not None and self.clock() < job.held_until

    # -- claiming ---------------------------------------------------------------------------
    def _due_clause(self) -> Any:
        return or_(and_(_DUE_PREDICATE, _email.c.next_attempt_at <= self.now), self._stale_clause())

    def _count_due(self) -> int:
        with self.db.read() as session:
            return int(
                session.execute(
                    select(func.count()).select_from(_email).where(self._due_clause())
                ).scalar_one()
            )

    def _claim(self, n: int) -> tuple[int, list[_Job]]:
        """Claim up to ``n`` rows; (how many were claimed, those still to send after re-check)."""
        stale = self._stale_clause()
        due = and_(_DUE_PREDICATE, _email.c.next_attempt_at <= self.now)
        rows: list[Any] = []
        with self.db.write() as session:
            # The lease starts now, at the claim, not when the run began.
            claimed_at = self.clock()
            # Stale claims first (few, found through the status index), then due rows in the
            # order they fell due.
            for claimable, candidates in (
                (
                    stale,
                    select(_email.c.id).where(stale).order_by(_email.c.claimed_at, _email.c.id),
                ),
                (
                    due,
                    select(_email.c.id).where(due).order_by(_email.c.next_attempt_at, _email.c.id),
                ),
            ):
                wanted = n - len(rows)
                if wanted <= 0:
                    break
                if self.db.is_sqlite and claimable is due:
                    # Without statistics SQLite prefers the status index and sorts every pending
                    # row for each batch; the partial index is already in due order.
                    chosen: Any = _email.c.id.in_(_SQLITE_DUE.bindparams(now=self.now, n=wanted))
                elif self.db.is_sqlite:
                    chosen = _email.c.id.in_(candidates.limit(wanted))
                else:
                    # Rows another dispatcher is claiming are skipped, not waited for. A CTE,
                    # because PostgreSQL may run an IN (subquery) more than once, and with
                    # SKIP LOCKED each run can pick other rows: the LIMIT would not hold.
                    locked = candidates.limit(wanted).with_for_update(skip_locked=True).cte("chosen")
                    chosen = _email.c.id == locked.c.id
                    # Locked rows were re-checked against ``claimable`` by FOR UPDATE itself;
                    # repeating it here only makes the planner scan the table again.
                    claimable = true()
                # The conditional update is the claim: a row is ours only if it was still
                # claimable when this statement changed it, and RETURNING names exactly those
                # rows (healthchecks checks rowcount == 1 row by row; one statement does the
                # same check for a batch). BEGIN IMMEDIATE on SQLite and the row locks on
                # PostgreSQL make the re-check redundant today; it keeps the claim correct if
                # either ever changes.
                rows += session.execute(
                    update(_email)
                    .where(chosen, claimable)
                    .values(
                        status=E_SENDING,
                        claimed_by=self.worker,
                        claimed_at=claimed_at,
                        lease_token=self.token,
                    )
                    .returning(_email.c.id, _email.c.to_addr, _email.c.raw, _email.c.attempts)
                ).all()
            if not rows:
                return 0, []
            rows.sort(key=lambda r: r.id)
            jobs = [_Job(r.id, r.to_addr, r.raw, r.attempts) for r in rows]
            if self.recheck is not None:
                jobs = self._apply_recheck(session, jobs)
        for job in jobs:
            job.held_until = claimed_at + self.lease
            self.held[job.id] = job
        return len(rows), jobs

    def _apply_recheck(self, session: Session, jobs: list[_Job]) -> list[_Job]:
        """Ask the domain whether each message is still worth sending, in the claim transaction
        so its own changes (notifications marked done) commit together with ours.

        A recheck with a ``prepare(session, emails, now)`` method loads what the whole batch
        needs once and returns the per-email check to use. A database error is an outage: it
        propagates, the claim transaction rolls back and the rows stay claimable.
        """
        assert self.recheck is not None
        by_id = {e.id: e for e in session.scalars(select(Email).where(Email.id.in_([j.id for j in jobs])))}
        check: Recheck = self.recheck
        prepare = getattr(self.recheck, "prepare", None)
        if prepare is not None:
            try:
                check = prepare(session, list(by_id.values()), self.now)
            except Exception as exc:
                if _is_outage(exc):
                    raise
                # Each email is then re-checked alone, and one that fails waits (below).
        kept = []
        for job in jobs:
            email = by_id[job.id]
            try:
                with session.begin_nested():
                    verdict = check(session, email, self.now)
            except Exception as exc:
                if _is_outage(exc):
                    raise
                # A bug or a missing row in the re-check must not stall the whole outbox, nor
                # send something unchecked: this one waits, with the reason, the rest go on.
                attempts = email.attempts
                email.status = E_RETRY if attempts else E_PENDING
                email.lease_token = None
                email.next_attempt_at = self.now + backoff(self.config, max(attempts, 1))
                email.last_error = f"re-check failed: {type(exc).__name__}: {exc}"[:1000]
                self.report.deferred += 1
                continue
            if verdict is None:
                email.status = E_CANCELLED
                email.lease_token = None
                email.last_error = CANCELLED_DETAIL
                session.add(
                    DeliveryAttempt(
                        email_id=job.id,
                        at=self.now,
                        worker=self.worker,
                        outcome="cancelled",
                        detail=CANCELLED_DETAIL,
                    )
                )
                self.report.cancelled += 1
                continue
            if isinstance(verdict, bytes):
                email.raw = verdict
                job.raw = verdict
            elif verdict != "keep":
                raise TypeError(f"recheck returned {verdict!r}: expected bytes, None or 'keep'")
            kept.append(job)
        return kept

    async def _claimer(self) -> None:
        claimed = 0
        try:
            while not self.breaker_open:
                n = self._claim_size()
                if self.limit is not None:
                    n = min(n, self.limit - claimed)
                    if n <= 0:
                        break
                try:
                    count, jobs = await self._in_db(self._claim, n)
                except Exception as exc:
                    outage = _outage_in(exc)
                    if outage is None:
                        raise
                    # Stop claiming; the queued rows are released by the senders and what was
                    # sent is still recorded if the database lets us.
                    self.database_error = outage
                    break
                if count == 0:
                    break
                claimed += count
                for job in jobs:
                    await self.queue.put(job)
        finally:
            for _ in range(self.config.concurrency):
                await self.queue.put(None)

    # -- sending ------------------------------------------------------------------------------
    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            # Each handshake stage (connect, greeting, EHLO, STARTTLS, AUTH) gets this long.
            timeout=c.timeout or None,
            use_tls=c.security == "tls",
            start_tls=True if c.security == "starttls" else False,
            username=c.user or None,
            password=c.password or None,
            validate_certs=c.validate_certs,
            local_hostname=c.local_hostname or _fqdn(),
        )

    async def _connect(self) -> _Connection:
        smtp = self._client()
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()
            return _Connection(smtp, self.config)
        except BaseException:
            smtp.close()
            raise

    async def _sender(self) -> None:
        connection: _Connection | None = None
        try:
            while (job := await self.queue.get()) is not None:
                if self.breaker_open or self.database_error is not None:
                    self._record(_Outcome(job, "deferred", None, "not tried: " + self._stop_reason()))
                    continue
                if not self._still_held(job):
                    self._record(_Outcome(job, "lost"))
                    continue
                if connection is None or not connection.is_connected:
                    try:
                        connection = await self._connect()
                    except Exception as exc:
                        # Not an attempt on this message: the server, not the mail, failed.
                        connection = None
                        _, code, detail, _ = classify(exc)
                        self._connect_failed(f"connect {self.config.server}: {detail}")
                        self._record(_Outcome(job, "deferred", code, f"not tried: connect: {detail}"))
                        continue
                    self.connect_failures = 0
                    if not self.connected_once:
                        self.connected_once = True
                        server_outages.up(self.config)
                if self.limiter is not None:
                    await self.limiter.acquire()
                # The wait for a token can be long: make sure the row is still ours to send.
                if not self._still_held(job):
                    self._record(_Outcome(job, "lost"))
                    continue
                try:
                    sender = envelope_address(self.config.envelope_from or envelope_sender(job.raw))
                    await connection.send(sender, envelope_address(job.to_addr), job.raw)
                except Exception as exc:
                    kind, code, detail, usable = classify(exc)
                    self._record(_Outcome(job, kind, code, detail))
                    if not usable:
                        connection.close()
                        connection = None
                    continue
                self._record(_Outcome(job, "sent"))
        finally:
            if connection is not None and connection.is_connected:
                await connection.quit()

    def _stop_reason(self) -> str:
        if self.database_error is not None:
            return "database unavailable"
        return f"SMTP server {self.config.server} unreachable"

    def _connect_failed(self, detail: str) -> None:
        # When every worker in turn fails to connect, the server is down: stop claiming and
        # release what is queued, instead of spending a timeout on each of thousands of rows.
        self.connect_failures += 1
        self.report.server_error = detail
        if self.connect_failures >= self.config.concurrency:
            self.breaker_open = True

    def _record(self, outcome: _Outcome) -> None:
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self.FLUSH_SIZE:
            self.flush_wanted.set()

    # -- recording ----------------------------------------------------------------------------
    async def _recorder(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.flush_wanted.wait(), self.FLUSH_INTERVAL)
            except TimeoutError:
                pass
            self.flush_wanted.clear()
            finished = self.sending_done
            batch, self.outcomes = self.outcomes, []
            if batch:
                await self._in_db(self._write_outcomes, batch)
            if self.progress is not None and (batch or finished):
                # The counters are written only by the database thread, which is idle now.
                done = self.report.handled
                self.progress(done, max(self.total, done))
            if finished and not self.outcomes:
                return

    def _write_outcomes(self, batch: list[_Outcome]) -> None:
        c = self.config
        now = self.now
        # Only the run holding the lease writes the result: a row taken over by another
        # dispatcher is that one's to record.
        mine = and_(
            _email.c.id == bindparam("row_id"),
            _email.c.lease_token == self.token,
            _email.c.status == E_SENDING,
        )
        sent_ids: list[int] = []
        failed: list[dict[str, Any]] = []
        released: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        outage_delay = server_outages.delay(c)
        for o in batch:
            job = o.job
            if self.held.get(job.id) is job:  # not a newer claim of the same row
                del self.held[job.id]
            if o.kind == "lost":
                self.report.lost += 1
                continue
            if o.kind == "deferred":
                released.append(
                    {
                        "row_id": job.id,
                        "status": E_RETRY if job.attempts else E_PENDING,
                        "next_attempt_at": now + outage_delay,
                        "last_error": o.detail[:1000],
                    }
                )
                self.report.deferred += 1
                continue
            attempts.append(
                {
                    "email_id": job.id,
                    "at": now,
                    "worker": self.worker,
                    "outcome": o.kind,
                    "smtp_code": o.code,
                    "detail": o.detail[:1000],
                }
            )
            if o.kind == "sent":
                sent_ids.append(job.id)
                self.report.sent += 1
                continue
            tried = job.attempts + 1
            dead = o.kind == "permanent" or tried >= c.max_attempts
            reason = (
                o.detail if o.kind == "permanent" else f"{o.detail} (attempt {tried} of {c.max_attempts})"
            )
            if o.kind == "unknown":
                delay = timedelta(seconds=c.unknown_retry_seconds)
            else:
                delay = backoff(c, tried)
            failed.append(
                {
                    "row_id": job.id,
                    "status": E_DEAD if dead else E_RETRY,
                    "attempts": tried,
                    "next_attempt_at": now + delay,
                    "last_error": reason[:1000],
                }
            )
            if dead:
                self.report.dead += 1
            elif o.kind == "unknown":
                self.report.unknown += 1
            else:
                self.report.retry += 1
        with self.db.write() as session:
            if sent_ids:
                session.execute(
                    update(_email)
                    .where(
                        _email.c.id.in_(sent_ids),
                        _email.c.lease_token == self.token,
                        _email.c.status == E_SENDING,
                    )
                    .values(
                        status=E_SENT,
                        sent_at=now,
                        attempts=_email.c.attempts + 1,
                        last_error="",
                        lease_token=None,
                    )
                )
            if failed:
                session.execute(
                    update(_email)
                    .where(mine)
                    .values(
                        status=bindparam("status"),
                        attempts=bindparam("attempts"),
                        next_attempt_at=bindparam("next_attempt_at"),
                        last_error=bindparam("last_error"),
                        lease_token=None,
                    ),
                    failed,
                )
            if released:
                session.execute(
                    update(_email)
                    .where(mine)
                    .values(
                        status=bindparam("status"),
                        next_attempt_at=bindparam("next_attempt_at"),
                        last_error=bindparam("last_error"),
                        lease_token=None,
                    ),
                    released,
                )
            if attempts:
                # Every try is a row, including those whose email was meanwhile reclaimed by
                # another dispatcher: the attempt happened.
                session.execute(insert(_attempt), attempts)


def _real_clock() -> datetime:
    return datetime.now(UTC)


async def dispatch_due(
    db: Database,
    now: datetime,
    config: SmtpConfig,
    *,
    worker: str,
    recheck: Recheck | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """Send every email due at ``now`` (at most ``limit``), until none is left to claim.

    ``recheck(session, email, now)`` is asked about each claimed email inside the claim
    transaction: ``"keep"`` sends it as stored, bytes replace the message (re-rendered because
    part of it is done), ``None`` cancels it. ``progress(done, total)`` is called after each
    batch of results is written.

    ``now`` stamps what the run decides (attempts, back-off, ``sent_at``); ``clock`` (the real
    UTC clock unless given) times the leases, which guard against other dispatchers running
    now, whatever instant a simulation is at. A database outage raises the driver's
    ``OperationalError`` after recording what it can; rows not recorded are claimable again
    once their lease has run out.
    """
    run = _Run(db, now, config, worker, recheck, limit, progress, clock or _real_clock)
    return await run.run()


def dispatch(
    db: Database,
    now: datetime,
    config: SmtpConfig,
    *,
    worker: str,
    recheck: Recheck | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """:func:`dispatch_due` for synchronous callers (CLI, APScheduler jobs, Prefect tasks)."""
    return asyncio.run(
        dispatch_due(
            db, now, config, worker=worker, recheck=recheck, limit=limit, progress=progress, clock=clock
        )
    )


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# Several processes: notifications/processes.py (it imports this module's dispatch lazily).
from notifications.processes import (  # noqa: E402
    dispatch_in_processes,
    load_recheck,
    per_process_config,
)

__all__: Iterable[str] = (
    "CANCELLED_DETAIL",
    "UNKNOWN_DETAIL",
    "DeliveryUnknown",
    "DispatchReport",
    "Recheck",
    "SmtpConfig",
    "TokenBucket",
    "backoff",
    "classify",
    "data_block",
    "dispatch",
    "dispatch_due",
    "dispatch_in_processes",
    "envelope_address",
    "envelope_sender",
    "load_recheck",
    "per_process_config",
    "rate_limiter_for",
)
