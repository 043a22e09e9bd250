"""The channel outbox, governor and dispatcher driving the real transports over real HTTP to the
local platform servers (one set per session, notifications/channels/local_servers.py)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta

from sqlmodel import select

from models.channels import C_DEAD, C_FOLDED, C_SENT, ChannelAttempt, ChannelItem, ChannelMessage
from models.db import Database
from models.org import Contact, Organisation
from models.outbox import Email, Notification
from notifications.channel_dispatch import ChannelReport, dispatch_channels_due
from notifications.channels.base import Transport
from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.robot import RobotTransport
from notifications.channels.sms import SmsTransport
from notifications.channels.zzd import MemoryUserIds, ZzdTransport
from notifications.compose import MailIdentity, compose_all
from notifications.governor import Governor
from notifications.render import Renderer
from tests.notifications.channels.conftest import NOW, new_mobile, outgoing, run

_seq = itertools.count(1)
RENDERER = Renderer()
IDENTITY = MailIdentity(dashboard_url="https://sb.example")


def _org(db: Database, name: str) -> str:
    org_id = f"T{next(_seq)}"
    with db.write() as session:
        session.add(Organisation(id=org_id, name=name, tier="county", city_code="330100"))
    return org_id


def person(
    db: Database,
    org: str,
    *,
    email: str = "",
    zzd: str = "",
    sms: str = "",
    robot: str = "",
    prefers: str = "email",
) -> int:
    n = next(_seq)
    with db.write() as session:
        c = Contact(
            org_id=org,
            name=f"联系人{n}",
            email=email,
            zzd_mobile=zzd,
            sms_mobile=sms,
            robot=robot,
            prefers=prefers,
            updated_at=NOW,
        )
        session.add(c)
        session.flush()
        return int(c.id)  # type: ignore[arg-type]


def notify(db: Database, contact_id: int, now: datetime, *, count: int = 1, urgent: bool = False) -> None:
    with db.write() as session:
        for _ in range(count):
            n = next(_seq)
            session.add(
                Notification(
                    key=f"t:{n}:{contact_id}",
                    kind="notice",
                    contact_id=contact_id,
                    email_addr="",
                    urgent=urgent,
                    due_at=now,
                    created_at=now,
                    payload={
                        "ref": f"JQ-{n}",
                        "title": f"申报{n}",
                        "label": "退回修改",
                        "from": "已提交",
                        "to": "退回修改",
                        "reason": "",
                        "actor": "杭州市经信局",
                        "at": now.isoformat(),
                        "defence_at": None,
                    },
                )
            )


def tick(db: Database, now: datetime) -> tuple[int, Counter[str]]:
    with db.write() as session:
        return compose_all(session, now, _calendar(), IDENTITY, RENDERER)


def _calendar():  # type: ignore[no-untyped-def]
    from calendars.workdays import load_default_calendar

    return load_default_calendar({})


def send(db: Database, transports: dict[str, Transport], clock: ManualClock, **kw: object) -> ChannelReport:
    async def go() -> ChannelReport:
        try:
            return await dispatch_channels_due(
                db,
                clock(),
                transports,
                worker="test",
                governor=Governor.for_transports(transports),
                clock=clock,
                **kw,  # type: ignore[arg-type]
            )
        finally:
            for t in transports.values():
                await t.aclose()

    return run(go())


def messages(db: Database, **where: object) -> list[ChannelMessage]:
    with db.read() as session:
        query = select(ChannelMessage).order_by(ChannelMessage.id)  # type: ignore[arg-type]
        for k, v in where.items():
            query = query.where(getattr(ChannelMessage, k) == v)
        return list(session.exec(query).all())


def carried_by_sent(db: Database, channel: str) -> set[int]:
    with db.read() as session:
        return set(
            session.exec(
                select(ChannelItem.notification_id)
                .join(ChannelMessage, ChannelMessage.id == ChannelItem.message_id)  # type: ignore[arg-type]
                .where(ChannelMessage.channel == channel, ChannelMessage.status == C_SENT)
            ).all()
        )


def all_notes(db: Database, contact_ids: list[int]) -> set[int]:
    with db.read() as session:
        return set(
            session.exec(select(Notification.id).where(Notification.contact_id.in_(contact_ids))).all()
        )  # type: ignore[union-attr]


def attempts(db: Database, message_id: int) -> list[ChannelAttempt]:
    with db.read() as session:
        return list(
            session.exec(
                select(ChannelAttempt)
                .where(ChannelAttempt.message_id == message_id)
                .order_by(ChannelAttempt.id)  # type: ignore[arg-type]
            ).all()
        )


def test_a_robot_flooded_for_ten_minutes_folds_and_never_goes_over_20_a_minute(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    name = f"机器人{next(_seq)}"
    org = _org(db, "西湖区经信局")
    people = [person(db, org, email=f"p{i}@x.cn", robot=name, prefers="robot") for i in range(3)]
    transports: dict[str, Transport] = {"robot": RobotTransport(platforms.robot_config(name), clock=sim)}
    # A run every 2 s of simulated time for four minutes: 30 a minute each with new items, and
    # the governor's bucket (4 + 15/min) cannot take them all.
    for step in range(120):
        notify(db, people[step % 3], sim(), count=2)
        tick(db, sim())
        send(db, transports, sim)
        sim.advance(2)
    for _ in range(30):  # quiet afterwards: the summaries drain
        sim.advance(30)
        send(db, transports, sim)
    assert platforms.robot.busiest_minute(name) <= 20
    assert "130101" not in platforms.robot.codes()
    assert messages(db, channel="robot", status=C_FOLDED), "the quota was hit on purpose"
    assert carried_by_sent(db, "robot") == all_notes(db, people)  # nothing lost
    # no email: everybody prefers the robot, and nothing was urgent
    with db.read() as session:
        assert session.exec(select(Email)).all() == []


def test_the_platforms_130101_locks_the_robot_and_what_waits_is_folded(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    name = f"机器人{next(_seq)}"
    config = platforms.robot_config(name)
    outsider = RobotTransport(config, clock=sim)  # another system posting to the same group
    for _ in range(20):
        assert run(outsider.deliver(outgoing("robot", name))).kind == "sent"
    org = _org(db, "余杭区经信局")
    who = person(db, org, email="a@x.cn", robot=name, prefers="robot")
    transports: dict[str, Transport] = {"robot": RobotTransport(config, clock=sim)}
    notify(db, who, sim())
    tick(db, sim())
    send(db, transports, sim)  # 130101 from the platform: the robot is locked for ten minutes
    notify(db, who, sim())
    tick(db, sim())
    send(db, transports, sim)
    [summary] = messages(db, channel="robot", status="pending")
    assert summary.items == 2 and summary.next_attempt_at >= NOW + timedelta(seconds=600)
    sim.advance(601)
    report = send(db, transports, sim)
    assert report.counts["robot"]["sent"] == 1
    assert carried_by_sent(db, "robot") == all_notes(db, [who])


def test_a_permanent_failure_falls_back_to_the_persons_email(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    mobile = new_mobile()
    platforms.zzd.absent.add(mobile)  # no 浙政钉 account has this number
    who = person(db, _org(db, "拱墅区经信局"), email="b@x.cn", zzd=mobile, prefers="zzd")
    notify(db, who, sim())
    assert tick(db, sim()) == (0, Counter({"zzd": 1}))
    transports: dict[str, Transport] = {
        "zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=sim)
    }
    report = send(db, transports, sim)
    assert report.counts["zzd"]["dead"] == 1 and report.counts["zzd"]["fallback"] == 1
    [dead] = messages(db, channel="zzd")
    assert dead.status == C_DEAD
    outcomes = [a.outcome for a in attempts(db, int(dead.id))]  # type: ignore[arg-type]
    assert outcomes == ["permanent", "fallback"]
    with db.read() as session:
        [email] = session.exec(select(Email)).all()
        assert email.to_addr == "b@x.cn" and email.status == "pending"
        assert email.key.startswith("fb:")


def test_a_person_with_only_one_channel_keeps_the_dead_letter(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    mobile = new_mobile()
    platforms.zzd.absent.add(mobile)
    who = person(db, _org(db, "上城区经信局"), zzd=mobile, prefers="zzd")
    notify(db, who, sim(), urgent=True)
    tick(db, sim())
    send(db, {"zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=sim)}, sim)
    [dead] = messages(db, channel="zzd")
    assert dead.status == C_DEAD
    assert attempts(db, int(dead.id))[-1].detail == "此人没有其他渠道，留作死信"  # type: ignore[arg-type]


def test_a_5xx_burst_is_retried_with_backoff_and_the_same_key(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    mobile = new_mobile()
    who = person(db, _org(db, "滨江区经信局"), email="c@x.cn", zzd=mobile, prefers="zzd")
    notify(db, who, sim())
    tick(db, sim())
    transports: dict[str, Transport] = {
        "zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=sim)
    }
    platforms.zzd.fail_next(3, 503)
    for _ in range(6):
        send(db, transports, sim)
        sim.advance(300)
    [m] = messages(db, channel="zzd")
    assert m.status == C_SENT
    kinds = [a.outcome for a in attempts(db, int(m.id))]  # type: ignore[arg-type]
    assert kinds.count("sent") == 1 and kinds[0] == "temporary"
    assert len(platforms.zzd.notifications_to(mobile)) == 1


def test_an_sms_gateway_down_for_an_hour_loses_nothing_and_sends_once(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    number = new_mobile()
    who = person(db, _org(db, "某某科技有限公司"), email="d@x.cn", sms=number, prefers="sms")
    notify(db, who, sim())
    tick(db, sim())
    transports: dict[str, Transport] = {"sms": SmsTransport(platforms.sms_config(), clock=sim)}
    platforms.sms.outage(NOW + timedelta(hours=1))
    for _ in range(16):  # every 5 minutes for 80 minutes
        send(db, transports, sim)
        sim.advance(300)
    [m] = messages(db, channel="sms")
    assert m.status == C_SENT
    assert len(platforms.sms.texts_to(number)) == 1
    assert carried_by_sent(db, "sms") == all_notes(db, [who])


def test_an_expired_token_is_renewed_and_the_message_goes(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    mobile = new_mobile()
    who = person(db, _org(db, "萧山区经信局"), email="e@x.cn", zzd=mobile, prefers="zzd")
    transports: dict[str, Transport] = {
        "zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=sim)
    }
    notify(db, who, sim())
    tick(db, sim())
    send(db, transports, sim)
    sim.advance(7300)  # the access token (7,200 s) has expired
    notify(db, who, sim())
    tick(db, sim())
    send(db, transports, sim)
    assert [m.status for m in messages(db, channel="zzd")] == [C_SENT, C_SENT]
    assert len(platforms.zzd.notifications_to(mobile)) == 2


def test_urgent_items_go_to_every_channel_and_the_counts_match_the_outbox(
    sqlite_db: Database, platforms: LocalPlatforms, sim: ManualClock
) -> None:
    db = sqlite_db
    mobile, number, name = new_mobile(), new_mobile(), f"机器人{next(_seq)}"
    org = _org(db, "临平区经信局")
    everyone = person(db, org, email="f@x.cn", zzd=mobile, sms=number, robot=name)
    email_only = person(db, org, email="g@x.cn")
    notify(db, everyone, sim(), urgent=True)
    notify(db, everyone, sim())  # not urgent: email only (the default preference)
    notify(db, email_only, sim(), urgent=True)
    emails, channels = tick(db, sim())
    assert emails == 2 and channels == Counter({"zzd": 1, "sms": 1, "robot": 1})
    transports: dict[str, Transport] = {
        "zzd": ZzdTransport(platforms.zzd_config(), MemoryUserIds(), clock=sim),
        "sms": SmsTransport(platforms.sms_config(), clock=sim),
        "robot": RobotTransport(platforms.robot_config(name), clock=sim),
    }
    send(db, transports, sim)
    received = {
        "zzd": len(platforms.zzd.notifications_to(mobile)),
        "sms": len(platforms.sms.texts_to(number)),
        "robot": len(platforms.robot.messages(name)),
    }
    in_outbox = Counter(m.channel for m in messages(db, status=C_SENT))
    assert received == dict(in_outbox) == {"zzd": 1, "sms": 1, "robot": 1}


def test_the_bucket_is_shared_and_never_overspent(db: Database) -> None:
    governor = Governor()
    spent = 0
    for i in range(25):
        with db.write() as session:
            m = ChannelMessage(
                key=f"k{i}",
                channel="robot",
                address="群",
                title="t",
                text="x",
                created_at=NOW,
                next_attempt_at=NOW,
            )
            if governor.take(session, m, NOW).go:
                spent += 1
    assert spent == 4  # the capacity: the refill needs time, and the clock did not move
    with db.write() as session:
        m = ChannelMessage(
            key="later",
            channel="robot",
            address="群",
            title="t",
            text="x",
            created_at=NOW,
            next_attempt_at=NOW,
        )
        assert governor.take(session, m, NOW + timedelta(seconds=4)).go
