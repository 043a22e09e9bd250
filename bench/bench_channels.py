"""Channels under the governor: a flood for one robot's group, and mixed channels through an SMTP
outage.

1. ``--notifications`` (10,000; 2,000 with --quick) notifications for the people of one bureau,
   who all read their work group's robot, arrive within one hour of simulated time. Every
   ``--every`` seconds a run composes (one robot message per run, a digest) and dispatches
   through the real robot transport over HTTP to the local robot server, whose clock is the
   simulation's. Judged by the server from the signed timestamps: the busiest minute (≤ 20), no
   130101, and every notification inside a message the robot accepted. The same notifications
   then go by email (real SMTP, aiosmtpd) in the same run: cost per notification side by side.
2. Mixed channels (email, 浙政钉, SMS) while the SMTP server is down for the first half hour:
   afterwards nothing lost, nothing received twice.

    .venv/bin/python bench/bench_channels.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from calendars.workdays import load_default_calendar
from models.channels import C_SENT, ChannelItem, ChannelMessage
from models.db import Database
from models.org import Contact, Organisation
from models.outbox import E_SENT, Email, Notification
from models.schema import upgrade
from notifications.channel_dispatch import dispatch_channels_due
from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.robot import RobotTransport
from notifications.channels.sms import SmsTransport
from notifications.channels.zzd import MemoryUserIds, ZzdTransport
from notifications.compose import MailIdentity, compose_all
from notifications.dispatcher import SmtpConfig, dispatch
from notifications.governor import Governor
from notifications.loopback import LoopbackSMTP
from notifications.render import Renderer

START = datetime(2026, 6, 22, 1, 30, tzinfo=UTC)  # Monday 09:30 in Shanghai
CALENDAR = load_default_calendar({})
IDENTITY = MailIdentity(dashboard_url="https://sb.example")
RENDERER = Renderer()
ROBOT = "西湖区经信局工作群"


def _people(db: Database, n: int, tag: str = "", **columns: str) -> list[int]:
    with db.write() as session:
        session.merge(Organisation(id="B1", name="西湖区经济和信息化局", tier="county", city_code="330100"))
        session.flush()
        ids = []
        for i in range(n):
            c = Contact(
                org_id="B1",
                name=f"联系人{tag}{i}",
                email=f"p{tag}{i}@xihu.example.cn",
                updated_at=START,
                **columns,
            )
            session.add(c)
            session.flush()
            ids.append(int(c.id))  # type: ignore[arg-type]
    return ids


def _arrive(db: Database, people: list[int], count: int, now: datetime, tag: str) -> None:
    rows = []
    for i in range(count):
        who = people[i % len(people)]
        rows.append(
            {
                "key": f"b:{tag}:{now.timestamp()}:{i}",
                "kind": "notice",
                "contact_id": who,
                "email_addr": "",
                "urgent": False,
                "due_at": now,
                "created_at": now,
                "status": "pending",
                "status_reason": "",
                "payload": {
                    "ref": f"JQ-{tag}-{i}",
                    "title": f"申报{i}",
                    "label": "退回修改",
                    "from": "已提交",
                    "to": "退回修改",
                    "reason": "",
                    "actor": "杭州市经信局",
                    "at": now.isoformat(),
                    "defence_at": None,
                },
            }
        )
    with db.write() as session:
        session.execute(insert(Notification.__table__), rows)  # type: ignore[attr-defined]


def _tick(db: Database, now: datetime) -> None:
    with db.write() as session:
        compose_all(session, now, CALENDAR, IDENTITY, RENDERER)


async def _send(db: Database, transports: dict, clock: ManualClock) -> None:  # type: ignore[type-arg]
    await dispatch_channels_due(
        db, clock(), transports, worker="bench", governor=Governor.for_transports(transports), clock=clock
    )


def robot_flood(
    folder: Path, total: int, every: float, seconds: float, platforms: LocalPlatforms, clock: ManualClock
) -> float:
    db = Database(f"sqlite:///{folder / 'robot.db'}")
    upgrade(db)
    people = _people(db, 50, robot=ROBOT, prefers="robot")
    transports = {"robot": RobotTransport(platforms.robot_config(ROBOT), clock=clock)}
    runs = int(seconds / every)
    per_run, extra = divmod(total, runs)
    clock.set(START)
    spent = 0.0

    async def go() -> float:
        spent = 0.0
        for step in range(runs):
            _arrive(db, people, per_run + (1 if step < extra else 0), clock(), "r")
            started = time.perf_counter()
            _tick(db, clock())
            await _send(db, transports, clock)
            spent += time.perf_counter() - started
            clock.advance(every)
        for _ in range(60):  # the last summaries drain after the hour
            clock.advance(30)
            started = time.perf_counter()
            await _send(db, transports, clock)
            spent += time.perf_counter() - started
        await transports["robot"].aclose()
        return spent

    spent = asyncio.run(go())
    with db.read() as session:
        notes = set(session.execute(select(Notification.id)).scalars())
        carried = set(
            session.execute(
                select(ChannelItem.notification_id)
                .join(ChannelMessage, ChannelMessage.id == ChannelItem.message_id)  # type: ignore[arg-type]
                .where(ChannelMessage.status == C_SENT)
            ).scalars()
        )
        sent = session.execute(
            text("SELECT count(*) FROM channel_message WHERE status = 'sent'")
        ).scalar_one()
        folded = session.execute(
            text("SELECT count(*) FROM channel_message WHERE status = 'folded'")
        ).scalar_one()
    accepted = len(platforms.robot.messages(ROBOT))
    busiest = platforms.robot.busiest_minute(ROBOT)
    codes = Counter(platforms.robot.codes())
    print(
        f"robot: {len(notes)} notifications in {runs} runs over {runs * every / 60:.0f} min → {sent} messages sent "
        f"({accepted} accepted by the robot, {folded} folded into summaries); busiest minute {busiest}; "
        f"130101: {codes.get('130101', 0)}; notifications not in a delivered message: {len(notes - carried)}"
    )
    assert busiest <= 20 and not codes.get("130101") and notes == carried and accepted == sent
    per_note = spent / len(notes)
    db.dispose()
    return per_note


def email_same(folder: Path, total: int, every: float, seconds: float) -> float:
    db = Database(f"sqlite:///{folder / 'email.db'}")
    upgrade(db)
    people = _people(db, 50)
    runs = int(seconds / every)
    per_run, extra = divmod(total, runs)
    now = START
    spent = 0.0
    with LoopbackSMTP(keep_raw=False) as smtp:
        config = SmtpConfig(port=smtp.port, local_hostname="bench.local")
        for step in range(runs):
            _arrive(db, people, per_run + (1 if step < extra else 0), now, "e")
            started = time.perf_counter()
            _tick(db, now)
            dispatch(db, now, config, worker="bench")
            spent += time.perf_counter() - started
            now += timedelta(seconds=every)
        received = len(smtp.messages)
    with db.read() as session:
        sent = session.execute(select(Email.id).where(Email.status == E_SENT)).all()
    assert received == len(sent)
    db.dispose()
    return spent / total


def mixed_outage(folder: Path, platforms: LocalPlatforms, clock: ManualClock, people_n: int) -> None:
    db = Database(f"sqlite:///{folder / 'mixed.db'}")
    upgrade(db)
    mobiles = iter(range(13_800_000_001, 13_900_000_000))
    given: dict[str, list[str]] = {"zzd": [], "sms": []}

    def new_mobile(channel: str) -> str:
        given[channel].append(str(next(mobiles)))
        return given[channel][-1]

    zzd_people = [
        _people(db, 1, f"z{i}", zzd_mobile=new_mobile("zzd"), prefers="zzd")[0] for i in range(people_n)
    ]
    sms_people = [
        _people(db, 1, f"s{i}", sms_mobile=new_mobile("sms"), prefers="sms")[0] for i in range(people_n)
    ]
    mail_people = _people(db, people_n, "m")
    everyone = zzd_people + sms_people + mail_people
    transports = {
        "zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=clock),
        "sms": SmsTransport(platforms.sms_config(), clock=clock),
    }
    clock.set(START)
    closed = SmtpConfig(port=1, timeout=2.0, local_hostname="bench.local")  # nothing listens on port 1

    async def channels() -> None:
        await _send(db, transports, clock)

    with LoopbackSMTP(keep_raw=True) as smtp:
        up = SmtpConfig(port=smtp.port, local_hostname="bench.local")
        for step in range(12):  # every 5 minutes for an hour; SMTP down for the first 30 minutes
            _arrive(db, everyone, len(everyone), clock(), f"m{step}")
            _tick(db, clock())
            asyncio.run(channels())
            dispatch(db, clock(), closed if step < 6 else up, worker="bench")
            clock.advance(300)
        for _ in range(24):
            asyncio.run(channels())
            dispatch(db, clock(), up, worker="bench")
            clock.advance(900)
        ids = [m["Message-ID"] for m in (smtp.decoded(i) for i in range(len(smtp.messages)))]
    for t in transports.values():
        asyncio.run(t.aclose())
    with db.read() as session:
        notes = session.execute(text("SELECT count(*) FROM notification")).scalar_one()
        in_mail = set(
            session.execute(
                select(Notification.id)
                .join(Email, Email.id == Notification.email_id)
                .where(Email.status == E_SENT)  # type: ignore[arg-type]
            ).scalars()
        )
        in_channels = set(
            session.execute(
                select(ChannelItem.notification_id)
                .join(ChannelMessage, ChannelMessage.id == ChannelItem.message_id)  # type: ignore[arg-type]
                .where(ChannelMessage.status == C_SENT)
            ).scalars()
        )
        sent_on = dict(
            session.execute(
                text("SELECT channel, count(*) FROM channel_message WHERE status = 'sent' GROUP BY channel")
            ).all()
        )
        statuses = session.execute(
            text("SELECT channel, status, count(*) FROM channel_message GROUP BY channel, status")
        ).all()
    lost = notes - len(in_mail | in_channels)
    if lost:
        print("channel messages by status:", statuses)
    duplicates = len(ids) - len(set(ids))
    # What the platforms received, against the outbox: one each, no repeats.
    received = {
        "zzd": sum(len(platforms.zzd.notifications_to(m)) for m in given["zzd"]),
        "sms": sum(len(platforms.sms.texts_to(m)) for m in given["sms"]),
    }
    duplicates += sum(abs(received[ch] - sent_on.get(ch, 0)) for ch in received)
    print(
        f"mixed, SMTP down 30 min: {notes} notifications; delivered by mail {len(in_mail)}, on 浙政钉/SMS "
        f"{len(in_channels)} ({received['zzd']} 浙政钉 and {received['sms']} SMS messages received, as in "
        f"the outbox); lost {lost}; duplicates {duplicates}"
    )
    assert lost == 0 and duplicates == 0
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--every", type=float, default=2.0, help="simulated seconds between runs")
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated time they arrive in")
    parser.add_argument("--part", choices=["all", "robot", "mixed"], default="all")
    args = parser.parse_args()
    if args.quick:
        # A quarter of the hour at the same pace of runs (the quota is hit as often).
        args.notifications, args.every, args.minutes = 2500, 3.0, 15.0
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    clock = ManualClock(START)
    with tempfile.TemporaryDirectory() as tmp, LocalPlatforms(clock=clock) as platforms:
        folder = Path(tmp)
        if args.part in ("all", "robot"):
            robot = robot_flood(folder, args.notifications, args.every, args.minutes * 60, platforms, clock)
            mail = email_same(folder, args.notifications, args.every, args.minutes * 60)
            print(
                f"cost per notification, same run: robot {robot * 1000:.2f} ms, email {mail * 1000:.2f} ms "
                f"(ratio {robot / mail:.2f})"
            )
        if args.part in ("all", "mixed"):
            mixed_outage(folder, platforms, clock, 10 if args.quick else 30)


if __name__ == "__main__":
    main()
