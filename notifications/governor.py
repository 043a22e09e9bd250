"""The delivery governor: each channel's quotas, shared by every process through the database.

The platforms' rules (as their documentation gives them):

- DingTalk group robot: 20 messages a minute per robot; going over answers errcode 130101 and
  locks the robot for 10 minutes. A token bucket of ``capacity`` c refilled at r per second lets
  at most ``c + 60·r`` through in any sliding minute, so c + 60·r ≤ 20 keeps every minute (as the
  robot judges it from the signed timestamps) within the limit: c = 4, r = 16/60.
- 浙政钉 / DingTalk work notification: the same content to the same person once a day (the
  platform drops the repeat silently: the person already has it, so a repeat is not sent and the
  outbox says so), and a daily cap per person per app.
- SMS: per number one a minute, five an hour, ten a day (the gateways' usual defaults), and a
  message is cut into segments (70 characters in one, 67 each when longer) that are each paid.

Buckets are rows of ``delivery_bucket``: a take reads the row under the write lock (``FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already admits one writer), computes the
refill from the injected clock and writes it back with a conditional ``UPDATE … WHERE tokens =
:seen AND refilled_at = :seen_at``, so two processes can never both spend the last token. Daily
counts are rows of ``delivery_ledger`` (a conditional ``UPDATE … WHERE count < :cap``).

When a quota would be exceeded nothing is dropped: the dispatcher folds everything waiting for
that destination into one summary message, due when the quota allows (:func:`fold`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from calendars.timeutil import LOCAL_TZ, local_date
from models.channels import (
    C_FOLDED,
    C_PENDING,
    C_RETRY,
    ChannelAttempt,
    ChannelItem,
    ChannelMessage,
    DeliveryBucket,
    DeliveryLedger,
)
from notifications.channels.base import Limit

_bucket = DeliveryBucket.__table__  # type: ignore[attr-defined]
_ledger = DeliveryLedger.__table__  # type: ignore[attr-defined]
_message = ChannelMessage.__table__  # type: ignore[attr-defined]
_item = ChannelItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Rate:
    """A token bucket: at most ``capacity + window·per_second`` in any window."""

    name: str  # a suffix of the bucket's row name (minute, hour)
    capacity: float
    per_second: float
    note: str = ""


@dataclass(frozen=True)
class ChannelRules:
    channel: str
    rates: tuple[Rate, ...] = ()
    daily_cap: int | None = None  # per destination (a person in an app, a number)
    same_content_once_a_day: bool = False
    # What the platform's lock-out lasts when a rate is exceeded anyway (robot: 130101).
    lockout_seconds: float = 0.0
    max_chars: int | None = None  # a summary is cut to this
    segment_chars: tuple[int, int] | None = None  # SMS: (one segment, each of several)


ROBOT = ChannelRules("robot", rates=(Rate("minute", 4, 16 / 60),), lockout_seconds=600.0, max_chars=5000)
ZZD = ChannelRules(
    "zzd", rates=(Rate("minute", 10, 1.0),), daily_cap=100, same_content_once_a_day=True, max_chars=2000
)
SMS = ChannelRules(
    "sms",
    rates=(Rate("minute", 1, 1 / 60), Rate("hour", 5, 5 / 3600)),
    daily_cap=10,
    max_chars=180,
    segment_chars=(70, 67),
)
DEFAULT_RULES: dict[str, ChannelRules] = {"robot": ROBOT, "zzd": ZZD, "sms": SMS}


def rules_from_limits(channel: str, limits: Sequence[Limit]) -> ChannelRules:
    """A transport's documented limits as the governor's rules. A rolling limit of N in S seconds
    becomes a bucket of capacity c = N//5 refilled at (N - 1 - c)/S: a bucket lets at most c + r·S
    through in any window of S, and the one left spare absorbs the few milliseconds between the
    governor's decision and the timestamp the transport signs."""
    base = DEFAULT_RULES.get(channel, ChannelRules(channel))
    rates: list[Rate] = []
    daily: int | None = None
    once = False
    lockout = 0.0
    for limit in limits:
        if limit.window == "local_day":
            if limit.scope == "address_content":
                once = True
            else:
                daily = limit.count if daily is None else min(daily, limit.count)
            continue
        n, seconds = limit.count, limit.seconds or 60.0
        capacity = max(1, n // 5)
        spare = n - 1 - capacity if n > capacity + 1 else 0
        per_second = (spare if spare > 0 else 1) / seconds
        rates.append(Rate(limit.name, float(capacity), per_second, limit.note))
        lockout = max(lockout, limit.lockout_seconds or 0.0)
    return ChannelRules(
        channel,
        rates=tuple(rates),
        daily_cap=daily,
        same_content_once_a_day=once,
        lockout_seconds=lockout,
        max_chars=base.max_chars,
        segment_chars=base.segment_chars,
    )


def segments(text: str, rules: ChannelRules = SMS) -> int:
    """How many SMS segments a text costs: one up to 70 characters, else 67 each."""
    if rules.segment_chars is None:
        return 1
    single, each = rules.segment_chars
    return 1 if len(text) <= single else math.ceil(len(text) / each)


@dataclass(frozen=True)
class Verdict:
    """``go``: send now (the tokens are spent). Otherwise wait until ``until`` (``duplicate``:
    the same content already reached the person today; nothing to send)."""

    go: bool
    until: datetime | None = None
    reason: str = ""
    duplicate: bool = False


def _day(now: datetime) -> str:
    return local_date(now).isoformat()


def _next_local_midnight(now: datetime) -> datetime:
    day = local_date(now) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).astimezone(now.tzinfo)


def content_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:24]


class Governor:
    """Quota decisions for one channel message at a time, inside the caller's write transaction
    (the caller owns the session and the commit, so a spent token and the attempt it paid for
    commit together)."""

    def __init__(self, rules: dict[str, ChannelRules] | None = None) -> None:
        self.rules = dict(DEFAULT_RULES if rules is None else rules)

    @classmethod
    def for_transports(cls, transports: Mapping[str, object]) -> Governor:
        """The rules each transport documents (``limits``), else the defaults above."""
        rules = dict(DEFAULT_RULES)
        for channel, transport in transports.items():
            limits = getattr(transport, "limits", None)
            if limits:
                rules[channel] = rules_from_limits(channel, limits)
        return cls(rules)

    def rules_for(self, channel: str) -> ChannelRules:
        return self.rules.get(channel, ChannelRules(channel))

    # -- buckets ----------------------------------------------------------------------------
    def _bucket(self, session: Session, name: str, rate: Rate, now: datetime) -> DeliveryBucket:
        query = select(_bucket).where(_bucket.c.name == name)
        if session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
        row = session.execute(query).first()
        if row is None:
            try:
                with session.begin_nested():
                    session.execute(
                        insert(_bucket).values(
                            name=name,
                            tokens=rate.capacity,
                            capacity=rate.capacity,
                            per_second=rate.per_second,
                            refilled_at=now,
                            locked_until=None,
                        )
                    )
            except IntegrityError:
                pass  # another process created it first
            row = session.execute(query).one()
        return DeliveryBucket(**row._mapping)

    @staticmethod
    def _level(bucket: DeliveryBucket, rate: Rate, now: datetime) -> float:
        elapsed = max(0.0, (now - bucket.refilled_at).total_seconds())
        return min(rate.capacity, bucket.tokens + elapsed * rate.per_second)

    def take(self, session: Session, message: ChannelMessage, now: datetime) -> Verdict:
        """Spend what sending ``message`` now costs on its destination, or say until when to wait."""
        rules = self.rules_for(message.channel)
        destination = f"{message.channel}:{message.address}"
        day = _day(now)
        if rules.same_content_once_a_day:
            seen = f"{destination}:{day}:{content_hash(message.title, message.text)}"
            if session.execute(select(_ledger.c.count).where(_ledger.c.name == seen)).first():
                return Verdict(False, None, "今日已向此人发送过相同内容", duplicate=True)
        buckets: list[tuple[DeliveryBucket, Rate]] = []
        wait_until: datetime | None = None
        reason = ""
        for rate in rules.rates:
            bucket = self._bucket(session, f"{destination}:{rate.name}", rate, now)
            if bucket.capacity != rate.capacity or bucket.per_second != rate.per_second:
                # The settings changed (a new cap): the row keeps its level, takes the new rule.
                bucket.capacity, bucket.per_second = rate.capacity, rate.per_second
                session.execute(
                    update(_bucket)
                    .where(_bucket.c.name == bucket.name)
                    .values(capacity=rate.capacity, per_second=rate.per_second)
                )
            if bucket.locked_until is not None and bucket.locked_until > now:
                return Verdict(False, bucket.locked_until, "平台限流锁定中")
            level = self._level(bucket, rate, now)
            if level < 1.0:
                until = now + timedelta(seconds=(1.0 - level) / rate.per_second)
                if wait_until is None or until > wait_until:
                    wait_until, reason = (
                        until,
                        rate.note or f"超过每{_RATE_WORDS.get(rate.name, rate.name)}限额",
                    )
            buckets.append((bucket, rate))
        if rules.daily_cap is not None:
            count = session.execute(
                select(_ledger.c.count).where(_ledger.c.name == f"{destination}:{day}")
            ).scalar()
            if (count or 0) >= rules.daily_cap:
                return Verdict(False, _next_local_midnight(now), f"已达每日上限 {rules.daily_cap} 条")
        if wait_until is not None:
            return Verdict(False, wait_until, reason)
        for bucket, rate in buckets:
            level = self._level(bucket, rate, now)
            changed = session.execute(
                update(_bucket)
                .where(
                    _bucket.c.name == bucket.name,
                    _bucket.c.tokens == bucket.tokens,
                    _bucket.c.refilled_at == bucket.refilled_at,
                )
                .values(tokens=level - 1.0, refilled_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if changed != 1:
                # Cannot happen under the write lock; if it ever does, wait rather than overspend.
                raise RuntimeError(f"bucket {bucket.name} changed under its lock")
        if rules.daily_cap is not None:
            self._count(session, f"{destination}:{day}", day, rules.daily_cap)
        return Verdict(True)

    def _count(self, session: Session, name: str, day: str, cap: int | None = None) -> None:
        where = [_ledger.c.name == name]
        if cap is not None:
            where.append(_ledger.c.count < cap)
        changed = session.execute(
            update(_ledger).where(and_(*where)).values(count=_ledger.c.count + 1)
        ).rowcount  # type: ignore[attr-defined]
        if changed == 0:
            session.execute(insert(_ledger).values(name=name, count=1, day=day))

    def delivered(self, session: Session, message: ChannelMessage, now: datetime) -> None:
        """Record what the daily rules must remember of a message that went out."""
        rules = self.rules_for(message.channel)
        if rules.same_content_once_a_day:
            day = _day(now)
            name = f"{message.channel}:{message.address}:{day}:{content_hash(message.title, message.text)}"
            if not session.execute(select(_ledger.c.name).where(_ledger.c.name == name)).first():
                session.execute(insert(_ledger).values(name=name, count=1, day=day))

    def refund(self, session: Session, message: ChannelMessage, now: datetime) -> None:
        """Give back the day's count of a message the platform refused before sending it (a
        temporary failure): the cap counts what reached the person."""
        rules = self.rules_for(message.channel)
        if rules.daily_cap is not None:
            name = f"{message.channel}:{message.address}:{_day(now)}"
            session.execute(
                update(_ledger)
                .where(_ledger.c.name == name, _ledger.c.count > 0)
                .values(count=_ledger.c.count - 1)
            )

    def lock(self, session: Session, message: ChannelMessage, until: datetime, now: datetime) -> None:
        """The platform locked the destination (130101): every bucket of it waits until ``until``,
        whatever this process believed about its tokens; the lock-out empties the platform's
        window, so the bucket is full again when it ends."""
        rules = self.rules_for(message.channel)
        for rate in rules.rates:
            name = f"{message.channel}:{message.address}:{rate.name}"
            self._bucket(session, name, rate, now)
            session.execute(
                update(_bucket)
                .where(_bucket.c.name == name)
                .values(locked_until=until, tokens=rate.capacity, refilled_at=until)
            )


_RATE_WORDS = {"minute": "分钟", "hour": "小时"}


# -- folding -----------------------------------------------------------------------------------


def waiting_for(session: Session, channel: str, address: str) -> list[ChannelMessage]:
    """Every message for one destination that has not gone yet (claimable or waiting)."""
    return list(
        session.scalars(
            select(ChannelMessage)
            .where(
                ChannelMessage.channel == channel,  # type: ignore[arg-type]
                ChannelMessage.address == address,  # type: ignore[arg-type]
                ChannelMessage.status.in_((C_PENDING, C_RETRY)),  # type: ignore[attr-defined]
            )
            .order_by(ChannelMessage.id)  # type: ignore[arg-type]
        )
    )


def summary_text(channel: str, parts: Sequence[ChannelMessage], rules: ChannelRules) -> tuple[str, str]:
    """One summary (title, text) of what several messages said: each message's title, with how
    many items it carried, cut to the channel's length (the rest counted, never silently lost)."""
    total = sum(p.items for p in parts)
    title = f"申报提醒汇总（{total} 项）"
    lines: list[str] = []
    for p in parts:
        # A summary folded again keeps its own lines, not its title.
        lines += p.text.split("\n")[1:] if p.title.startswith("申报提醒汇总") else [f"- {p.title}"]
    limit = rules.max_chars
    if channel == "sms":
        text = f"{title}：" + "；".join(line.lstrip("- ") for line in lines)
    else:
        text = f"### {title}\n" + "\n".join(lines)
    if limit is not None and len(text) > limit:
        kept, size = [], len(title) + 40
        for line in lines:
            if size + len(line) + 1 > limit:
                break
            kept.append(line)
            size += len(line) + 1
        rest = len(lines) - len(kept)
        if channel == "sms":
            text = (
                f"{title}："
                + "；".join(line.lstrip("- ") for line in kept)
                + f"；等{rest}条，详见邮件或工作台"
            )
        else:
            text = f"### {title}\n" + "\n".join(kept) + f"\n- 另有 {rest} 条，详见工作台"
    return title, text


def fold(
    session: Session,
    governor: Governor,
    parts: Sequence[ChannelMessage],
    due: datetime,
    now: datetime,
    worker: str,
    reason: str,
) -> ChannelMessage:
    """Fold ``parts`` (all waiting for one destination) into ONE summary due at ``due``: it
    carries every notification they carried; each part becomes ``folded`` with an attempt row."""
    first = parts[0]
    ids = sorted(int(p.id) for p in parts)  # type: ignore[arg-type]
    key = (
        f"fold:{first.channel}:{first.address}:"
        + hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()[:20]
    )
    title, text = summary_text(first.channel, parts, governor.rules_for(first.channel))
    summary = ChannelMessage(
        key=key,
        channel=first.channel,
        address=first.address,
        contact_id=first.contact_id,
        to_name=first.to_name,
        title=title,
        text=text,
        link=first.link,
        urgent=any(p.urgent for p in parts),
        kinds=",".join(sorted({k for p in parts for k in p.kinds.split(",") if k})),
        items=sum(p.items for p in parts),
        created_at=now,
        next_attempt_at=due,
        status=C_PENDING,
    )
    session.add(summary)
    session.flush()
    notes = (
        session.execute(select(_item.c.notification_id).where(_item.c.message_id.in_(ids)).distinct())
        .scalars()
        .all()
    )
    if notes:
        session.execute(insert(_item), [{"message_id": summary.id, "notification_id": n} for n in notes])
    session.execute(
        update(_message)
        .where(_message.c.id.in_(ids))
        .values(status=C_FOLDED, folded_into=summary.id, lease_token=None, last_error=reason[:1000])
    )
    session.add_all(
        ChannelAttempt(
            message_id=i,
            channel=first.channel,
            at=now,
            worker=worker,
            outcome="folded",
            detail=f"{reason}：并入汇总 #{summary.id}"[:1000],
        )
        for i in ids
    )
    session.flush()
    return summary
