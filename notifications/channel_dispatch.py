"""The outbox dispatcher for 浙政钉, DingTalk group robots and SMS: claims due ``channel_message``
rows, re-checks each, asks the governor, hands it to the channel's transport and records what
came of it. Email keeps its own, faster dispatcher (notifications/dispatcher.py); the two share
the claim and lease semantics, the back-off and the attempt rows' meaning.

How a row moves
---------------
``pending``/``retry`` (due) --claim--> ``sending`` --> one of

- ``sent``       the platform accepted it;
- ``retry``      temporary (5xx, a timeout, an expired token the transport could not renew):
                 again after ``backoff``; unknown (handed over, answer lost): again after
                 ``unknown_retry_seconds`` with the same idempotency key, which the platform
                 recognises (浙政钉 refuses a repeated bizMsgId);
- ``folded``     the destination's quota would be exceeded (the governor's buckets, or the
                 platform said so: 130101 locks a robot for ten minutes): everything waiting for
                 that destination becomes ONE summary message, due when the quota allows;
- ``dead``       permanent (unknown user, bad number, a robot removed), or ``max_attempts``
                 tries: a dead letter; the person's next channel gets the message instead
                 (``fallback_of``), recorded as a ``fallback`` attempt;
- ``cancelled``  the re-check found nothing left to say, or the same content already reached the
                 person today (浙政钉's once-a-day rule; outcome ``duplicate``).

Leases are those of email (models/outbox.py): a claim sets ``claimed_by``, ``claimed_at`` (the
real clock) and this run's ``lease_token``; a row whose lease ran out is claimed again; a result
is written only for rows still holding this run's token. PostgreSQL claims with ``FOR UPDATE SKIP
LOCKED``; SQLite's ``BEGIN IMMEDIATE`` admits one writer, and the conditional UPDATE re-checks.

Time: ``clock()`` (injected; by default ``now`` plus the real time elapsed in the run) stamps the
governor's decisions and the attempts; a simulation passes its own clock, and the transports it
built sign with the same one.
"""

from __future__ import annotations

import hashlib
import html
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

from sqlalchemy import and_, or_, select, true, update
from sqlmodel import Session, col

from models.channels import (
    C_CANCELLED,
    C_DEAD,
    C_PENDING,
    C_RETRY,
    C_SENDING,
    C_SENT,
    ChannelAttempt,
    ChannelItem,
    ChannelMessage,
    idempotency_key,
)
from models.db import Database
from models.org import Contact
from models.outbox import E_PENDING, Email, Notification
from notifications.channels.base import Delivered, Outgoing, Transport
from notifications.channels.route import address_of, fallback_for
from notifications.governor import Governor, fold, waiting_for
from notifications.mime import build_mime, message_id_for

ChannelRecheck: TypeAlias = Callable[
    [Session, ChannelMessage, datetime], "tuple[str, str] | Literal['keep'] | None"
]

_message = ChannelMessage.__table__  # type: ignore[attr-defined]
_DUE = (C_PENDING, C_RETRY)
CANCELLED_DETAIL = "已办结，无需再催"


@dataclass(frozen=True)
class ChannelConfig:
    max_attempts: int = 6
    backoff_base_seconds: float = 60.0
    backoff_cap_seconds: float = 6 * 3600.0
    unknown_retry_seconds: float = 6 * 3600.0
    lease_seconds: float = 600.0
    batch_size: int = 100
    # Sender name and address of a fallback email (a channel message that died goes on by mail).
    from_addr: str = "shenbao@localhost"
    from_name: str = "申报提醒"

    def backoff(self, attempts: int) -> timedelta:
        seconds = self.backoff_base_seconds * 2 ** min(max(attempts - 1, 0), 40)
        return timedelta(seconds=min(seconds, self.backoff_cap_seconds))


OUTCOMES = ("sent", "retry", "dead", "cancelled", "folded", "fallback", "duplicate", "unknown", "lost")


@dataclass
class ChannelReport:
    """What one run did, per channel: ``counts[channel][outcome]``."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def add(self, channel: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(channel, Counter())[outcome] += n

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {ch: dict(c) for ch, c in sorted(self.counts.items())}

    def __add__(self, other: ChannelReport) -> ChannelReport:
        out = ChannelReport(elapsed_seconds=max(self.elapsed_seconds, other.elapsed_seconds))
        for report in (self, other):
            for ch, c in report.counts.items():
                out.counts.setdefault(ch, Counter()).update(c)
        return out


def _real_clock() -> datetime:
    return datetime.now(UTC)


class _Run:
    def __init__(
        self,
        db: Database,
        now: datetime,
        transports: Mapping[str, Transport],
        *,
        worker: str,
        governor: Governor,
        config: ChannelConfig,
        recheck: ChannelRecheck | None,
        clock: Callable[[], datetime] | None,
        lease_clock: Callable[[], datetime],
        limit: int | None,
    ) -> None:
        self.db = db
        self.now = now
        self.transports = transports
        self.worker = worker
        self.governor = governor
        self.config = config
        self.recheck = recheck
        started = time.monotonic()
        self.clock = clock or (lambda: now + timedelta(seconds=time.monotonic() - started))
        self.lease_clock = lease_clock
        self.lease = timedelta(seconds=config.lease_seconds)
        self.limit = limit
        self.token = uuid.uuid4().hex
        self.report = ChannelReport()

    # -- claiming -----------------------------------------------------------------------------
    def _claim(self, n: int) -> list[int]:
        channels = list(self.transports)
        stale = and_(_message.c.status == C_SENDING, _message.c.claimed_at < self.lease_clock() - self.lease)
        due = and_(_message.c.status.in_(_DUE), _message.c.next_attempt_at <= self.now)
        claimable = and_(_message.c.channel.in_(channels), or_(due, stale))
        with self.db.write() as session:
            candidates = (
                select(_message.c.id)
                .where(claimable)
                .order_by(_message.c.next_attempt_at, _message.c.id)
                .limit(n)
            )
            if self.db.is_sqlite:
                chosen: Any = _message.c.id.in_(candidates)
                check: Any = claimable
            else:
                locked = candidates.with_for_update(skip_locked=True).cte("chosen")
                chosen, check = _message.c.id == locked.c.id, true()
            ids = (
                session.execute(
                    update(_message)
                    .where(chosen, check)
                    .values(
                        status=C_SENDING,
                        claimed_by=self.worker,
                        claimed_at=self.lease_clock(),
                        lease_token=self.token,
                    )
                    .returning(_message.c.id)
                )
                .scalars()
                .all()
            )
        return sorted(ids)

    def _held(self, session: Session, message_id: int) -> ChannelMessage | None:
        """The row if this run still holds it, with its lease renewed (a send may be slow)."""
        changed = session.execute(
            update(_message)
            .where(
                _message.c.id == message_id,
                _message.c.lease_token == self.token,
                _message.c.status == C_SENDING,
                _message.c.claimed_at >= self.lease_clock() - self.lease,
            )
            .values(claimed_at=self.lease_clock())
        ).rowcount  # type: ignore[attr-defined]
        if changed != 1:
            return None
        return session.get(ChannelMessage, message_id, populate_existing=True)

    async def run(self) -> ChannelReport:
        started = time.perf_counter()
        done = 0
        while self.limit is None or done < self.limit:
            n = (
                self.config.batch_size
                if self.limit is None
                else min(self.config.batch_size, self.limit - done)
            )
            ids = self._claim(n)
            if not ids:
                break
            for message_id in ids:
                await self._one(message_id)
            done += len(ids)
        self.report.elapsed_seconds = time.perf_counter() - started
        return self.report

    # -- one message --------------------------------------------------------------------------
    def _attempt(
        self, session: Session, m: ChannelMessage, at: datetime, outcome: str, code: str | None, detail: str
    ) -> None:
        session.add(
            ChannelAttempt(
                message_id=int(m.id),  # type: ignore[arg-type]
                channel=m.channel,
                at=at,
                worker=self.worker,
                outcome=outcome,
                code=code,
                detail=detail[:1000],
            )
        )

    def _decide(self, message_id: int) -> tuple[Outgoing, datetime] | None:
        """Re-check and govern in one transaction; the message to send, or None (settled here)."""
        with self.db.write() as session:
            m = self._held(session, message_id)
            if m is None:
                self.report.add("?", "lost")
                return None
            at = self.clock()
            if self.recheck is not None:
                with session.begin_nested():
                    verdict = self.recheck(session, m, at)
                if verdict is None:
                    m.status, m.lease_token, m.last_error = C_CANCELLED, None, CANCELLED_DETAIL
                    self._attempt(session, m, at, "cancelled", None, CANCELLED_DETAIL)
                    self.report.add(m.channel, "cancelled")
                    return None
                if isinstance(verdict, tuple):
                    m.title, m.text = verdict[0][:200], verdict[1]
            decision = self.governor.take(session, m, at)
            if decision.duplicate:
                m.status, m.lease_token, m.last_error = C_CANCELLED, None, decision.reason
                self._attempt(session, m, at, "duplicate", None, decision.reason)
                self.report.add(m.channel, "duplicate")
                return None
            if not decision.go:
                assert decision.until is not None
                self._wait(session, m, decision.until, at, decision.reason)
                return None
            session.add(m)
            outgoing = Outgoing(
                key=idempotency_key(m.key),
                channel=m.channel,  # type: ignore[arg-type]
                address=m.address,
                title=m.title,
                text=m.text,
                link=m.link,
                urgent=m.urgent,
            )
            return outgoing, at

    def _wait(self, session: Session, m: ChannelMessage, until: datetime, at: datetime, reason: str) -> None:
        """The quota says not yet: fold everything waiting for this destination into one summary
        (nothing dropped); a message waiting alone just waits."""
        others = [w for w in waiting_for(session, m.channel, m.address) if w.id != m.id]
        if not others:
            m.status = C_RETRY if m.attempts else C_PENDING
            m.next_attempt_at, m.lease_token, m.last_error = until, None, reason
            session.add(m)
            return
        session.flush()
        fold(session, self.governor, [*others, m], until, at, self.worker, reason)
        self.report.add(m.channel, "folded", len(others) + 1)

    async def _one(self, message_id: int) -> None:
        decided = self._decide(message_id)
        if decided is None:
            return
        outgoing, _at = decided
        transport = self.transports[outgoing.channel]
        try:
            delivered = await transport.deliver(outgoing)
        except Exception as exc:  # a transport bug or a network error it did not classify
            delivered = Delivered("temporary", None, f"{type(exc).__name__}: {exc}")
        self._record(message_id, delivered)

    def _record(self, message_id: int, d: Delivered) -> None:
        c = self.config
        with self.db.write() as session:
            m = session.get(ChannelMessage, message_id, populate_existing=True)
            assert m is not None
            at = self.clock()
            # The attempt happened whoever holds the row now.
            self._attempt(session, m, at, d.kind, d.code, d.detail)
            if m.lease_token != self.token or m.status != C_SENDING:
                self.report.add(m.channel, "lost")
                return
            m.lease_token = None
            if d.kind == "sent":
                m.status, m.sent_at, m.attempts, m.last_error = C_SENT, at, m.attempts + 1, ""
                m.provider_id = d.provider_id
                self.governor.delivered(session, m, at)
                self.report.add(m.channel, "sent")
                return
            self.governor.refund(session, m, at)
            if d.kind == "rate_limited":
                # The platform's word beats our buckets: lock the destination and fold.
                rules = self.governor.rules_for(m.channel)
                wait = d.retry_after if d.retry_after is not None else (rules.lockout_seconds or 60.0)
                until = at + timedelta(seconds=wait)
                self.governor.lock(session, m, until, at)
                m.status = C_SENDING  # still ours while it is folded
                self._wait(session, m, until, at, f"平台限流（{d.code or ''}）：{d.detail}")
                return
            tried = m.attempts + 1
            m.attempts = tried
            if d.kind == "permanent" or tried >= c.max_attempts:
                m.status = C_DEAD
                m.last_error = (
                    d.detail
                    if d.kind == "permanent"
                    else f"{d.detail}（第 {tried} 次，共 {c.max_attempts} 次）"
                )[:1000]
                self.report.add(m.channel, "dead")
                self._fall_back(session, m, at)
                return
            m.status = C_RETRY
            if d.kind == "unknown":
                m.next_attempt_at = at + timedelta(seconds=c.unknown_retry_seconds)
                self.report.add(m.channel, "unknown")
            else:
                delay = c.backoff(tried)
                if d.retry_after is not None:
                    delay = max(delay, timedelta(seconds=d.retry_after))
                m.next_attempt_at = at + delay
                self.report.add(m.channel, "retry")
            m.last_error = f"{d.detail}（第 {tried} 次，共 {c.max_attempts} 次）"[:1000]
            session.add(m)

    # -- fallback -------------------------------------------------------------------------------
    def _fall_back(self, session: Session, dead: ChannelMessage, at: datetime) -> None:
        """The message can never go this way: each person it was for gets it on their next
        channel (a robot's group: every person whose items it carried)."""
        tried = {dead.channel}
        parent = dead
        while parent.fallback_of is not None:
            earlier = session.get(ChannelMessage, parent.fallback_of)
            if earlier is None:
                break
            tried.add(earlier.channel)
            parent = earlier
        notes = list(
            session.scalars(
                select(Notification)
                .join(ChannelItem, ChannelItem.notification_id == Notification.id)  # type: ignore[arg-type]
                .where(col(ChannelItem.message_id) == dead.id)
                .order_by(Notification.id)  # type: ignore[arg-type]
            )
        )
        by_contact: dict[int, list[Notification]] = {}
        for n in notes:
            by_contact.setdefault(n.contact_id, []).append(n)
        if not by_contact and dead.contact_id is not None:
            by_contact[dead.contact_id] = []
        went: list[str] = []
        for contact_id, carried in by_contact.items():
            contact = session.get(Contact, contact_id)
            if contact is None or not contact.active:
                continue
            channel = fallback_for(contact, tried)
            if channel is None:
                continue
            went.append(self._fallback_message(session, dead, contact, channel, carried, at))
        detail = "改由" + "、".join(went) + "发送" if went else "此人没有其他渠道，留作死信"
        self._attempt(session, dead, at, "fallback", None, detail)
        if went:
            self.report.add(dead.channel, "fallback")

    def _fallback_message(
        self,
        session: Session,
        dead: ChannelMessage,
        contact: Contact,
        channel: str,
        carried: list[Notification],
        at: datetime,
    ) -> str:
        key = f"fb:{dead.key}:{channel}:{contact.id}"
        key = key if len(key) <= 200 else "fb:" + hashlib.sha1(key.encode()).hexdigest()
        if channel == "email":
            c = self.config
            domain = c.from_addr.rsplit("@", 1)[-1] or "shenbao.local"
            message_id = message_id_for(key, domain)
            body = f"{contact.name}：\n\n{dead.text}\n\n（原经{dead.channel}发送失败：{dead.last_error}）"
            # Nothing a person typed is markup: the HTML part is the text, escaped.
            html_body = "<pre>" + html.escape(body) + "</pre>"
            email = Email(
                key=key,
                message_id=message_id,
                contact_id=int(contact.id),  # type: ignore[arg-type]
                to_addr=contact.email,
                to_name=contact.name,
                subject=dead.title,
                text_body=body,
                html_body=html_body,
                raw=build_mime(
                    message_id=message_id,
                    from_addr=c.from_addr,
                    from_name=c.from_name,
                    to_addr=contact.email,
                    to_name=contact.name,
                    subject=dead.title,
                    text=body,
                    html=html_body,
                    date=at,
                    extra_headers={"X-Shenbao-Key": key},
                ),
                urgent=dead.urgent,
                kinds=dead.kinds,
                created_at=at,
                next_attempt_at=at,
                status=E_PENDING,
            )
            session.add(email)
            session.flush()
            for n in carried:
                if n.email_id is None:
                    n.email_id = email.id
                    session.add(n)
            return f"邮件 #{email.id}"
        message = ChannelMessage(
            key=key,
            channel=channel,
            address=address_of(contact, channel),
            contact_id=contact.id,
            to_name=contact.name if channel != "robot" else "各位同事",
            title=dead.title,
            text=dead.text
            if channel != "sms"
            else f"{contact.name}您好：{dead.title}" + (f" 详见 {dead.link}" if dead.link else ""),
            link=dead.link,
            urgent=dead.urgent,
            kinds=dead.kinds,
            items=len(carried) or 1,
            created_at=at,
            next_attempt_at=at,
            status=C_PENDING,
            fallback_of=dead.id,
        )
        session.add(message)
        session.flush()
        session.add_all(ChannelItem(message_id=int(message.id), notification_id=int(n.id)) for n in carried)  # type: ignore[arg-type]
        return f"{channel} #{message.id}"


async def dispatch_channels_due(
    db: Database,
    now: datetime,
    transports: Mapping[str, Transport],
    *,
    worker: str,
    governor: Governor | None = None,
    config: ChannelConfig | None = None,
    recheck: ChannelRecheck | None = None,
    clock: Callable[[], datetime] | None = None,
    lease_clock: Callable[[], datetime] | None = None,
    limit: int | None = None,
) -> ChannelReport:
    """Send every channel message due at ``now`` on the channels that have a transport, until
    none is left to claim. Safe beside other dispatchers (leases) and processes (the buckets)."""
    run = _Run(
        db,
        now,
        transports,
        worker=worker,
        governor=governor or Governor(),
        config=config or ChannelConfig(),
        recheck=recheck,
        clock=clock,
        lease_clock=lease_clock or _real_clock,
        limit=limit,
    )
    return await run.run()
