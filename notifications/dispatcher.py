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
import collections
import contextlib
import functools
import importlib
import multiprocessing
import os
import re
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any, Literal, TypeAlias

import aiosmtplib
from sqlalchemy import Integer, and_, bindparam, func, insert, or_, select, text, true, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from sqlmodel import Session

from models.db import Database, Timeouts
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


# --------------------------------------------------------------------------------------------
# Configuration and report


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    user: str | None = None
    password: str | None = None
    # Seconds for each stage but the last: connecting, the greeting, EHLO/STARTTLS/AUTH, and the
    # MAIL/RCPT/DATA commands. 0 = no limit.
    timeout: float = 30.0
    # Seconds for the reply after the message data: RFC 5321 4.5.3.2.6 gives the server 10
    # minutes, since it may be writing the message to disk or scanning it. 0 = no limit.
    data_timeout: float = 600.0
    # A message whose final reply never came may have been delivered: it is tried again only
    # after this long, with the same Message-ID, so the far side can tell the two apart.
    unknown_retry_seconds: float = 6 * 3600.0
    # The longest wait before a run tries an unreachable server again (per server, not per
    # message: an outage is not an attempt on the mail).
    outage_backoff_cap_seconds: float = 900.0
    rate_per_second: float = 0.0  # per SMTP server and process; 0 = unlimited
    max_attempts: int = 6
    concurrency: int = 4  # SMTP connections per process, each reused for many messages
    backoff_base_seconds: float = 60.0
    lease_seconds: float = 600.0
    backoff_cap_seconds: float = 6 * 3600.0
    # Tokens that may be spent at once; 1 spaces every message evenly (servers flag bursts).
    rate_burst: int = 1
    # MAIL FROM; empty = the address in each message's From header.
    envelope_from: str = ""
    # EHLO name; empty = this machine's FQDN, looked up once per process.
    local_hostname: str = ""
    validate_certs: bool = True
    batch_size: int = 200  # rows per claim transaction
    # Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    pipelining: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.security not in ("none", "starttls", "tls"):
            problems.append(f"security must be none, starttls or tls, not {self.security!r}")
        if not 0 < self.port < 65536:
            problems.append(f"port must be 1..65535, not {self.port}")
        for name in ("max_attempts", "concurrency", "batch_size", "rate_burst"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "rate_per_second",
            "backoff_base_seconds",
            "lease_seconds",
            "timeout",
            "data_timeout",
            "unknown_retry_seconds",
            "outage_backoff_cap_seconds",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, not {getattr(self, name)}")
        if self.lease_seconds == 0:
            problems.append("lease_seconds must be positive")
        if self.envelope_from and not _ENVELOPE_ADDRESS.fullmatch(self.envelope_from):
            problems.append(f"envelope_from {self.envelope_from!r} is not a plain ASCII address")
        if problems:
            raise ValueError("SmtpConfig: " + "; ".join(problems))

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class DispatchReport:
    sent: int = 0
    retry: int = 0
    dead: int = 0
    cancelled: int = 0
    # Claimed but not tried because the server was unreachable; released for a later run.
    deferred: int = 0
    # Handed to the server, final reply never came (timeout, dropped): maybe delivered.
    unknown: int = 0
    # Claimed, then taken over by another dispatcher after this run's lease ran out: not sent
    # and not counted by this run.
    lost: int = 0
    elapsed_seconds: float = 0.0
    server_unreachable: bool = False
    # Why the server could not be reached (the last connection error), for the operator.
    server_error: str = ""

    @property
    def handled(self) -> int:
        return self.sent + self.retry + self.dead + self.cancelled + self.deferred + self.unknown

    @property
    def per_second(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def __add__(self, other: DispatchReport) -> DispatchReport:
        return DispatchReport(
            sent=self.sent + other.sent,
            retry=self.retry + other.retry,
            dead=self.dead + other.dead,
            cancelled=self.cancelled + other.cancelled,
            deferred=self.deferred + other.deferred,
            unknown=self.unknown + other.unknown,
            lost=self.lost + other.lost,
            elapsed_seconds=max(self.elapsed_seconds, other.elapsed_seconds),
            server_unreachable=self.server_unreachable or other.server_unreachable,
            server_error=self.server_error or other.server_error,
        )


# --------------------------------------------------------------------------------------------
# Rate limiting


class TokenBucket:
    """A token bucket whose clock is a parameter, so tests compute waits instead of sleeping.

    ``reserve()`` takes a token at once and says how long to wait before using it; the balance
    may go negative, which queues callers in arrival order without a lock held across a sleep.
    Thread-safe, so one bucket can pace every worker of a process.
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = float(max(burst, 1))
        self.clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


_buckets: dict[tuple[str, int], TokenBucket] = {}
_buckets_lock = threading.Lock()


def rate_limiter_for(config: SmtpConfig) -> TokenBucket | None:
    """The process-wide bucket of one SMTP server (host:port), shared by all its workers."""
    if config.rate_per_second <= 0:
        return None
    key = (config.host, config.port)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None or bucket.rate != config.rate_per_second or bucket.capacity != config.rate_burst:
            bucket = _buckets[key] = TokenBucket(config.rate_per_second, config.rate_burst)
        return bucket


# --------------------------------------------------------------------------------------------
# Outcomes


def backoff(config: SmtpConfig, attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones (1 → base, 2 → 2·base, …)."""
    exponent = max(attempts - 1, 0)
    # Cap the exponent too: 2**attempts overflows a float long before anyone notices.
    seconds = config.backoff_base_seconds * 2 ** min(exponent, 40)
    return timedelta(seconds=min(seconds, config.backoff_cap_seconds))


class _ServerOutages:
    """How many runs in a row found each SMTP server unreachable (per process): the delay before
    the next try grows per server, while the messages' own attempt counts stay as they were."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def delay(self, config: SmtpConfig) -> timedelta:
        with self._lock:
            runs = self._runs.get((config.host, config.port), 0)
        seconds = config.backoff_base_seconds * 2 ** min(runs, 20)
        return timedelta(seconds=min(seconds, config.outage_backoff_cap_seconds))

    def down(self, config: SmtpConfig) -> None:
        with self._lock:
            key = (config.host, config.port)
            self._runs[key] = self._runs.get(key, 0) + 1

    def up(self, config: SmtpConfig) -> None:
        with self._lock:
            self._runs.pop((config.host, config.port), None)


server_outages = _ServerOutages()


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


class DeliveryUnknown(Exception):
    """The message data went out but the server's final reply did not come back (a timeout,
    a dropped connection): it may or may not have been delivered."""


UNKNOWN_DETAIL = "结果未知"


def classify(
    exc: BaseException,
) -> tuple[Literal["temporary", "permanent", "unknown"], int | None, str, bool]:
    """(outcome, SMTP code, detail, connection still usable) for a failed mail transaction."""
    if isinstance(exc, DeliveryUnknown):
        return "unknown", None, f"{UNKNOWN_DETAIL}: {exc}", False
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusal = exc.recipients[0]
        kind: Literal["temporary", "permanent"] = "permanent" if refusal.code >= 500 else "temporary"
        return kind, refusal.code, f"{refusal.code} {refusal.message}", True
    if isinstance(exc, aiosmtplib.SMTPDataError):
        # The server read the message and refused it: 5xx is about this message (size,
        # content), so retrying it cannot help.
        kind = "permanent" if exc.code >= 500 else "temporary"
        return kind, exc.code, f"{exc.code} {exc.message}", exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        # Refusing our sender is about our account or the server's mood, not this message:
        # dead-lettering every mail because of it would be wrong, so it counts as temporary.
        return "temporary", exc.code, f"{exc.code} {exc.message} (MAIL FROM)", exc.code != 421
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return "temporary", exc.code, f"{exc.code} {exc.message}", exc.code != 421
    if isinstance(exc, (ValueError, aiosmtplib.SMTPNotSupported)):
        # An address that cannot be put in an SMTP envelope (e.g. non-ASCII without SMTPUTF8).
        return "permanent", None, f"invalid address: {exc}", True
    return "temporary", None, f"{type(exc).__name__}: {exc}", False


# --------------------------------------------------------------------------------------------
# The dispatcher


_FROM_HEADER = re.compile(rb"^from:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
# What may stand between < and > on a MAIL/RCPT line without SMTPUTF8: printable ASCII, no
# brackets or spaces. Anything else would let a stored address inject SMTP commands.
_ENVELOPE_ADDRESS = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")


@functools.lru_cache(maxsize=64)
def _address_in(header: bytes) -> str:
    return parseaddr(header.decode("ascii", "replace").replace("\r\n", "").replace("\n", ""))[1]


def envelope_sender(raw: bytes) -> str:
    """The bare address of the From header (``=?utf-8?…?= <a@b>`` → ``a@b``)."""
    match = _FROM_HEADER.search(raw.split(b"\r\n\r\n", 1)[0])
    return _address_in(match.group(1).strip()) if match else ""


@functools.lru_cache(maxsize=1024)
def envelope_address(address: str) -> bytes:
    """``a@b`` → ``<a@b>`` for a MAIL or RCPT line; ValueError if it cannot go there."""
    if not _ENVELOPE_ADDRESS.fullmatch(address):
        raise ValueError(f"{address!r} is not an address an SMTP envelope can carry")
    return b"<" + address.encode("ascii") + b">"


_LONE_CR_OR_LF = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def data_block(raw: bytes) -> bytes:
    """The bytes after DATA: CRLF line ends, leading dots doubled (RFC 5321 4.5.2), the end mark.

    Stored messages already have CRLF and, being base64, no leading dots; the checks that prove
    it are a few microseconds, the rewriting only happens when they fail.
    """
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _LONE_CR_OR_LF.sub(b"\r\n", raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


class _Channel(asyncio.Protocol):
    """An SMTP connection that aiosmtplib opened (TLS, STARTTLS, AUTH, EHLO all done by it),
    taken over to pipeline commands (RFC 2920), which aiosmtplib cannot do.

    Replies are queued as they arrive and handed out in order to whoever asked for the next n.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.closed = False
        self._buffer = bytearray()
        self._text: list[str] = []
        self._replies: list[aiosmtplib.SMTPResponse] = []
        self._waiters: collections.deque[tuple[int, asyncio.Future[list[aiosmtplib.SMTPResponse]]]] = (
            collections.deque()
        )

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP) -> _Channel:
        transport = smtp.transport
        if not isinstance(transport, asyncio.Transport):
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        channel = cls(transport)
        # From here on the aiosmtplib object is left alone; it never sees the socket again.
        transport.set_protocol(channel)
        return channel

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._text.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            self._replies.append(aiosmtplib.SMTPResponse(code, "\n".join(self._text)))
            self._text = []
        while self._waiters and len(self._replies) >= self._waiters[0][0]:
            count, waiter = self._waiters.popleft()
            replies, self._replies = self._replies[:count], self._replies[count:]
            if not waiter.done():
                waiter.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(aiosmtplib.SMTPServerDisconnected(f"connection lost: {exc or 'closed'}"))
                waiter.exception()  # read by whoever awaits it; no "never retrieved" noise

    async def command(self, data: bytes, replies: int) -> list[aiosmtplib.SMTPResponse]:
        if self.closed or self.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection closed")
        if self._replies and not self._waiters:
            # A reply nobody asked for (a server's "421 closing" before it hangs up, say) would
            # be paired with this command; drop the connection instead and start a clean one.
            unsolicited = self._replies[0]
            self.transport.close()
            raise aiosmtplib.SMTPServerDisconnected(
                f"unsolicited reply {unsolicited.code} {unsolicited.message}"
            )
        waiter: asyncio.Future[list[aiosmtplib.SMTPResponse]] = asyncio.get_running_loop().create_future()
        self._waiters.append((replies, waiter))
        self.transport.write(data)
        return await waiter


class _Connection:
    """One reused SMTP connection of a worker, taken over from aiosmtplib after the handshake.

    Each stage has its own deadline: ``timeout`` for the envelope commands and DATA, then
    ``data_timeout`` for the reply after the message, which a server may take minutes to give.
    When the server offers PIPELINING, MAIL, RCPT and DATA go out in one write (RFC 2920 3.1);
    otherwise one at a time.
    """

    def __init__(self, smtp: aiosmtplib.SMTP, config: SmtpConfig) -> None:
        self.pipelined = config.pipelining and smtp.supports_extension("pipelining")
        self.timeout = config.timeout or None
        self.data_timeout = config.data_timeout or None
        self._channel = _Channel.take_over(smtp)

    @property
    def is_connected(self) -> bool:
        return not self._channel.closed and not self._channel.transport.is_closing()

    async def _ask(self, data: bytes, replies: int = 1) -> list[aiosmtplib.SMTPResponse]:
        # A timeout mid-command leaves the connection out of step with the server; classify()
        # marks it unusable, so it is closed and a fresh one opened.
        async with asyncio.timeout(self.timeout):
            return await self._channel.command(data, replies)

    async def send(self, sender: bytes, recipient: bytes, raw: bytes) -> None:
        mail_line = b"MAIL FROM:" + sender + b"\r\n"
        rcpt_line = b"RCPT TO:" + recipient + b"\r\n"
        if self.pipelined:
            mail, rcpt, data = await self._ask(mail_line + rcpt_line + b"DATA\r\n", 3)
        else:
            [mail] = await self._ask(mail_line)
            [rcpt] = await self._ask(rcpt_line) if mail.code == 250 else [mail]
            envelope_ok = mail.code == 250 and rcpt.code in (250, 251)
            [data] = await self._ask(b"DATA\r\n") if envelope_ok else [rcpt]
        if data.code == 354:
            if mail.code == 250 and rcpt.code in (250, 251):
                await self._final_reply(data_block(raw))
                return
            # A server that says 354 after refusing the envelope gets an empty message.
            await self._ask(b".\r\n")
        # Leave the connection clean for the next message, as aiosmtplib's sendmail does.
        with contextlib.suppress(aiosmtplib.SMTPException):
            await self._ask(b"RSET\r\n")
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender.decode())
        if rcpt.code not in (250, 251):
            refusal = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient.decode())
            raise aiosmtplib.SMTPRecipientsRefused([refusal])
        raise aiosmtplib.SMTPDataError(data.code, data.message)

    async def _final_reply(self, block: bytes) -> None:
        try:
            async with asyncio.timeout(self.data_timeout):
                [done] = await self._channel.command(block, 1)
        except (TimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            # The server has the whole message and may have stored it: neither sent nor failed.
            self.close()
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise DeliveryUnknown(f"no reply after the message data ({what})") from exc
        if done.code != 250:
            raise aiosmtplib.SMTPDataError(done.code, done.message)

    async def quit(self) -> None:
        with contextlib.suppress(aiosmtplib.SMTPException, TimeoutError):
            await self._ask(b"QUIT\r\n")
        self.close()

    def close(self) -> None:
        self._channel.transport.close()


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


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


def _is_outage(exc: BaseException) -> bool:
    """A database that cannot be reached or dropped the connection, as opposed to a bad query."""
    if isinstance(exc, (OperationalError, InterfaceError, PendingRollbackError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _outage_in(exc: BaseException) -> BaseException | None:
    """The driver's error behind an outage: a rollback on a dead connection raises its own
    error (PendingRollbackError) with the one that matters as its context."""
    if not _is_outage(exc):
        return None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


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


# --------------------------------------------------------------------------------------------
# Several processes


def load_recheck(path: str) -> Recheck:
    """``"package.module:function"`` → the function (a child process cannot receive a closure)."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"recheck path {path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


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


__all__: Iterable[str] = (
    "CANCELLED_DETAIL",
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
    "per_process_config",
    "rate_limiter_for",
)
