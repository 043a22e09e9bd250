"""A small world for the reminder tests: contacts, cases, and one call per reconcile/tick/send.

Cases are built with the spine helpers (the columns an import writes); contacts are written
directly, the way a roster import leaves them. Every helper takes the instant it acts at:
nothing here reads the clock.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from calendars.timeutil import parse_deadline, parse_instant
from calendars.workdays import load_default_calendar
from models.actions import perform, set_deadline
from models.audit import AuditEvent
from models.context import Actor
from models.db import Database
from models.org import Contact
from models.outbox import DeliveryAttempt, Email, Notification
from notifications.compose import MailIdentity, Rechecker
from notifications.dispatcher import DispatchReport, SmtpConfig, dispatch
from notifications.reconcile import TickReport, reconcile, tick
from notifications.render import Renderer
from tests.models.spine import actor_for, code

CALENDAR = load_default_calendar({})
IDENTITY = MailIdentity(from_addr="shenbao@jxt.zj.example", from_name="浙江省申报工作提醒")
RENDERER = Renderer()
SYSTEM = Actor(name="system")
PROVINCE = Actor(name="祝博艺", org_id="330000", tier="province")


def at(text: str) -> datetime:
    """Shanghai wall-clock text -> UTC instant."""
    return parse_instant(text)


def add_contact(
    db: Database,
    org: str,
    name: str,
    email: str,
    *,
    mobile: str = "13800000000",
    programs: str = "cluster,jingpin",
    title: str = "科长",
) -> int:
    """A roster person of a division (by name or code) or of any organisation id."""
    org_id = org if org.isdigit() or "-" in org else code(org)
    with db.write() as session:
        contact = Contact(
            org_id=org_id,
            name=name,
            email=email,
            mobile=mobile,
            title=title,
            programs=programs,
            department="产业科",
            source="test",
            updated_at=at("2026-05-26T09:00"),
        )
        session.add(contact)
        session.flush()
        assert contact.id is not None
        return contact.id


def quiet_rosters(
    db: Database, make_ctx: Any, when: str = "2026-05-27T10:00", *, keep: tuple[str, ...] = ()
) -> None:
    """Every city's 附件3 roster task submitted (but the refs in ``keep``), so the roster stage is quiet."""
    from models.actions import act as act_on
    from models.case import Case

    with db.write() as session:
        ctx = make_ctx(when)
        for case in session.exec(select(Case).where(Case.kind == "roster").order_by(Case.ref)).all():
            if case.ref not in keep:
                act_on(session, ctx, case, "submit", reason="已报送")


def build_town(db: Database, make_ctx: Any, *, keep_rosters: tuple[str, ...] = ()) -> dict[str, Any]:
    """杭州市 with two counties applying for a cluster (西湖区, 余杭区), and the people to tell.

    Contacts: 李娜 (西湖区), 王强 (余杭区), 陈静 (杭州市), 严梦玲 (province, cluster only) and
    陈诗瑶 (province, 精品 only). Every roster task is done unless named in ``keep_rosters``.
    """
    from tests.models.spine import cluster_case

    ids = {
        "xihu": add_contact(db, "西湖区", "李娜", "lina@xihu.example", mobile="13905710001"),
        "yuhang": add_contact(db, "余杭区", "王强", "wangqiang@yuhang.example", mobile="13905710002"),
        "hz": add_contact(db, "杭州市", "陈静", "chenjing@hz.example", mobile="13905710003", title="处长"),
        "prov": add_contact(
            db, "330000", "严梦玲", "yml@jxt.example", mobile="0571-87058343", programs="cluster"
        ),
        "prov_jp": add_contact(
            db, "330000", "陈诗瑶", "csy@jxt.example", mobile="0571-88229695", programs="jingpin"
        ),
    }
    with db.write() as session:
        ctx = make_ctx("2026-06-01T10:00")
        xihu = cluster_case(session, ctx, county="西湖区").ref
        yuhang = cluster_case(session, ctx, county="余杭区", subtrack="模型数据服务").ref
    quiet_rosters(db, make_ctx, keep=keep_rosters)
    return {"db": db, "ids": ids, "xihu": xihu, "yuhang": yuhang}


def town_world(db: Database, make_ctx: Any, folder: Path) -> dict[str, Any]:
    """``build_town`` as a world template (tests/conftest.py ``built_world``)."""
    return build_town(db, make_ctx)


def reconcile_at(db: Database, make_ctx: Any, when: datetime | str) -> TickReport:
    """Steps 1–4 only: rows stay pending (no email composed)."""
    with db.write() as session:
        return reconcile(session, make_ctx(when, SYSTEM), CALENDAR)


def tick_at(
    db: Database,
    make_ctx: Any,
    when: datetime | str,
    *,
    identity: MailIdentity = IDENTITY,
    renderer: Renderer = RENDERER,
) -> TickReport:
    with db.write() as session:
        return tick(session, make_ctx(when, SYSTEM), CALENDAR, identity, renderer)


def send_at(
    db: Database, when: datetime | str, port: int, *, identity: MailIdentity = IDENTITY
) -> DispatchReport:
    """The real dispatcher with the domain's last look before sending."""
    now = parse_instant(when) if isinstance(when, str) else when

    # The object the runtime hands the dispatcher: it re-checks a claimed batch at once.
    last_look = Rechecker(CALENDAR, identity, RENDERER)
    config = SmtpConfig(host="127.0.0.1", port=port, timeout=5.0, local_hostname="test.local", concurrency=2)
    return dispatch(db, now, config, worker="test", recheck=last_look)


def act(db: Database, make_ctx: Any, when: str, ref: str, action: str, org: str, **kw: Any) -> None:
    perform(db, make_ctx(when, actor_for(org)), ref, action, **kw)


def move_deadline(
    db: Database, make_ctx: Any, when: str, campaign: str, stage: str, due: str, reason: str = "统一延期"
) -> None:
    with db.write() as session:
        set_deadline(session, make_ctx(when, PROVINCE), campaign, stage, parse_deadline(due), reason)


def notifications(db: Database, **where: Any) -> list[Notification]:
    with db.read() as session:
        query = select(Notification).order_by(Notification.id)  # type: ignore[arg-type]
        for key, value in where.items():
            query = query.where(getattr(Notification, key) == value)
        return list(session.exec(query))


def emails(db: Database, **where: Any) -> list[Email]:
    with db.read() as session:
        query = select(Email).order_by(Email.id)  # type: ignore[arg-type]
        for key, value in where.items():
            query = query.where(getattr(Email, key) == value)
        return list(session.exec(query))


def attempts(db: Database, email_id: int) -> list[DeliveryAttempt]:
    with db.read() as session:
        return list(session.exec(select(DeliveryAttempt).where(DeliveryAttempt.email_id == email_id)))


def row_counts(db: Database) -> dict[str, int]:
    """How many rows the engine's own tables hold: the same before and after means nothing was written."""
    from sqlalchemy import func

    from models.case import Case

    with db.read() as session:
        return {
            model.__name__: int(session.exec(select(func.count()).select_from(model)).one())
            for model in (Notification, Email, DeliveryAttempt, AuditEvent, Case)
        }
