"""The pre-send recheck with a large roster, and the first mail out of a large outbox.

    .venv/bin/python bench/bench_recheck.py [--quick] [--contacts 50000] [--emails 300]
        [--old-emails 20] [--outbox 50000] [--first 1000] [--no-pg]

The town of the notification tests (杭州市, two counties with a cluster application each); one
tick at a reminder instant writes the real reminder and supervisor emails. Then, with Core
executemany (the ORM is ~15× slower on SQLite; the seeding took over 15 minutes through it):
``--contacts`` extra active contacts spread over every county, and copies of those emails (with
their notifications) up to ``--outbox`` pending mails. The extra contacts come after the tick so
that they receive nothing; they only make the roster large, which is what the old recheck paid for.

1. Per-mail cost, side by side on the same database: the old recheck (a Directory of every
   active contact and a fresh campaign cache per email, over the first ``--old-emails`` mails)
   against ``compose.Rechecker.prepare`` (once per claimed batch of 200, over the first
   ``--emails``). Each runs inside one transaction that is rolled back.
2. The symptom of issue 9: the real dispatcher (``notifications.dispatcher.dispatch`` with the
   ``Rechecker`` the runtime hands it) draining the outbox to a loopback SMTP server, stopped
   after ``--first`` mails: the time to the first mail received and to the last.

Both on SQLite and on PostgreSQL (127.0.0.1:5432, trust; a database of its own, dropped after).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlmodel import Session
from sqlmodel import select as sm_select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import parse_instant
from models.audit import AuditLog
from models.context import SYSTEM, Actor, Ctx
from models.db import Database
from models.org import Contact, Organisation
from models.outbox import Email, Notification
from models.registry import load_campaign, seed_divisions
from models.schema import upgrade
from notifications.audience import Directory
from notifications.compose import (
    CHASING,
    Rechecker,
    _Campaigns,
    _write_message,
    section_for,
    shown_in,
    shown_of,
)
from notifications.dispatcher import SmtpConfig, dispatch
from notifications.loopback import LoopbackSMTP
from tests.notifications.world import CALENDAR, IDENTITY, RENDERER, build_town, tick_at

REMINDER_TIME = "2026-06-18T10:00"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 5000


def old_recheck(session: Any, email: Email, now: Any) -> Any:
    """The recheck as it was before batching (notifications/compose.py at c6d6d5b)."""
    notes = session.exec(
        sm_select(Notification).where(Notification.email_id == email.id).order_by(Notification.id)
    ).all()
    if not any(n.kind in CHASING for n in notes):
        return "keep"
    d = Directory(session)
    contact = d.contact(email.contact_id)
    if contact is None:
        return None
    d.preload({o for n in notes for o in (n.payload or {}).get("orgs", [])} | {contact.org_id})
    campaigns = _Campaigns(session)
    sections, changed = [], False
    for n in notes:
        section = section_for(session, d, campaigns, CALENDAR, n, contact, now)
        if section is None:
            changed = True
            continue
        if shown_in(section) != shown_of(n):
            changed = True
        sections.append(section)
    if not sections:
        return None
    if not changed:
        return "keep"
    _write_message(email, RENDERER, IDENTITY, contact, d.name(contact.org_id), sections, now)
    return email.raw


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[start : start + CHUNK])


def build(db: Database, folder: Path, contacts: int, outbox: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    audit = AuditLog.from_key_file(folder / "audit.key", folder / "anchor.json", create=True)

    def make_ctx(now: Any = "2026-05-26T09:00", actor: Actor | None = None) -> Ctx:
        return Ctx(
            now=parse_instant(now) if isinstance(now, str) else now,
            actor=actor or SYSTEM,
            audit=audit,
        )

    upgrade(db)
    with db.write() as session:
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, make_ctx(), path.read_text(encoding="utf-8"), origin=path.name)
    build_town(db, make_ctx)
    tick_at(db, make_ctx, REMINDER_TIME)
    contact_t, email_t, note_t = Contact.__table__, Email.__table__, Notification.__table__  # type: ignore[attr-defined]
    with db.write() as session:
        counties = list(
            session.execute(select(Organisation.id).where(Organisation.tier == "county")).scalars()
        )
        at = parse_instant("2026-05-26T09:00")
        common = {"mobile": "13800000000", "title": "科员", "programs": "cluster,jingpin"}
        common |= {"department": "产业科", "source": "bench", "updated_at": at, "active": True}
        _insert(
            session,
            contact_t,
            [
                {"org_id": counties[i % len(counties)], "name": f"联系人{i}", "email": f"c{i}@roster.example"}
                | common
                for i in range(contacts)
            ],
        )
        originals = [dict(r) for r in session.execute(select(email_t).order_by(email_t.c.id)).mappings()]
        notes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in session.execute(
            select(note_t).where(note_t.c.email_id.is_not(None)).order_by(note_t.c.id)
        ).mappings():
            notes[r["email_id"]].append(dict(r))
        next_email = max(e["id"] for e in originals) + 1
        next_note = session.execute(select(func.max(note_t.c.id))).scalar_one() + 1
        emails, notifications = [], []
        for i in range(outbox - len(originals)):
            e = originals[i % len(originals)]
            tag = f"b{i:06d}"
            emails.append(
                e
                | {"id": next_email, "key": f"{e['key']}:{tag}", "message_id": f"<{tag}{e['message_id'][1:]}"}
            )
            for n in notes[e["id"]]:
                notifications.append(
                    n | {"id": next_note, "key": f"{n['key']}:{tag}", "email_id": next_email}
                )
                next_note += 1
            next_email += 1
        _insert(session, email_t, emails)
        _insert(session, note_t, notifications)
        if db.url.startswith("postgresql"):
            # Explicit ids leave the sequences behind; the dispatcher's own inserts need them.
            for table in ("email", "notification"):
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )


def _kind(verdict: Any) -> str:
    return "keep" if verdict == "keep" else "cancel" if verdict is None else "rerender"


def measure(db: Database, variant: str, count: int) -> tuple[float, int, dict[str, int]]:
    now = parse_instant(REMINDER_TIME)
    with db.writer.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn)
        emails = list(session.exec(sm_select(Email).order_by(Email.id).limit(count)).all())  # type: ignore[arg-type]
        verdicts: dict[str, int] = defaultdict(int)
        started = time.perf_counter()
        if variant == "before":
            for e in emails:
                verdicts[_kind(old_recheck(session, e, now))] += 1
        else:
            rechecker = Rechecker(CALENDAR, IDENTITY, RENDERER)
            for start in range(0, len(emails), 200):  # the dispatcher's claim size
                batch = emails[start : start + 200]
                check = rechecker.prepare(session, batch, now)
                for e in batch:
                    verdicts[_kind(check(session, e, now))] += 1
        elapsed = time.perf_counter() - started
        session.close()
        trans.rollback()
    return elapsed, len(emails), dict(verdicts)


def first_mails(db: Database, first: int) -> tuple[float, float, int]:
    """Seconds from the dispatcher's start to the first and to the last mail the server received."""
    with LoopbackSMTP(keep_raw=False) as server:
        config = SmtpConfig(host="127.0.0.1", port=server.port, timeout=30.0, local_hostname="bench.local")
        started = datetime.now(UTC)
        report = dispatch(
            db,
            parse_instant(REMINDER_TIME),
            config,
            worker="bench",
            recheck=Rechecker(CALENDAR, IDENTITY, RENDERER),
            limit=first,
        )
        received = sorted(m.received_at for m in server.messages)
    if not received:
        raise SystemExit(f"the dispatcher sent nothing: {report}")
    return (received[0] - started).total_seconds(), (received[-1] - started).total_seconds(), len(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: 2,000 contacts, 2,000 mails, 200 sent"
    )
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--emails", type=int, default=300, help="mails re-checked by Rechecker.prepare")
    parser.add_argument(
        "--old-emails", type=int, default=20, help="mails re-checked the old way (each costs ~1 s)"
    )
    parser.add_argument("--outbox", type=int, default=50_000, help="pending mails in the outbox")
    parser.add_argument("--first", type=int, default=1000, help="stop the dispatcher after this many mails")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.emails, args.old_emails, args.outbox, args.first = 2000, 200, 20, 2000, 200
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        targets: list[tuple[str, Database, str | None]] = [
            ("SQLite", Database(f"sqlite:///{folder / 'bench.db'}"), None)
        ]
        if not args.no_pg:
            import psycopg

            name = f"shenbao_bench_recheck_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            targets.append(("PostgreSQL", Database(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"), name))
        try:
            for label, db, _ in targets:
                started = time.perf_counter()
                build(db, folder / label, args.contacts, args.outbox)
                with db.read() as session:
                    n = session.execute(text("SELECT count(*) FROM contact")).scalar_one()
                    m = session.execute(text("SELECT count(*) FROM email")).scalar_one()
                print(
                    f"{label:10s} set-up: {n} contacts, {m} mails in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                per_mail = {}
                for variant, count in (("before", args.old_emails), ("after", args.emails)):
                    elapsed, count, verdicts = measure(db, variant, count)
                    per_mail[variant] = elapsed / count
                    print(
                        f"{label:10s} recheck {variant:6s} {count:5d} mails: {elapsed:7.2f} s, "
                        f"{count / elapsed:8.1f} mails/s, {1000 * elapsed / count:8.2f} ms/mail  {verdicts}",
                        flush=True,
                    )
                print(
                    f"{label:10s} recheck before ÷ after: {per_mail['before'] / per_mail['after']:.0f}×",
                    flush=True,
                )
                first, last, sent = first_mails(db, args.first)
                print(
                    f"{label:10s} dispatch from {m} pending: first mail after {first:.2f} s, "
                    f"{sent} mails after {last:.2f} s ({sent / last:.0f} mails/s), load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                db.dispose()
        finally:
            for _, _, name in targets:
                if name:
                    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
