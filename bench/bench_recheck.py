"""The pre-send recheck with a large roster: per email (a Directory of every contact, as before)
against per claimed batch (compose.Rechecker.prepare), side by side in one run.

    .venv/bin/python bench/bench_recheck.py [--contacts 50000] [--emails 300] [--no-pg]

The town of the notification tests (杭州市, two counties with a cluster application each) plus
``--contacts`` extra active contacts spread over every county; one tick at a reminder instant
writes the real reminder and supervisor emails, which are then copied (with their
notifications) up to ``--emails``. Each variant re-checks every email inside one transaction
that is rolled back, so both see the same database.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calendars.campaign import builtin_campaign_files
from calendars.timeutil import parse_instant
from models.audit import AuditLog
from models.context import Actor, Ctx
from models.db import Database
from models.org import Contact, Organisation
from models.outbox import Email, Notification
from models.registry import load_campaign, seed_divisions
from models.schema import upgrade
from notifications.audience import Directory
from notifications.compose import CHASING, Rechecker, _Campaigns, _write_message, section_for
from tests.notifications.world import CALENDAR, IDENTITY, RENDERER, build_town, tick_at

REMINDER_TIME = "2026-06-18T10:00"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def old_recheck(session: Any, email: Email, now: Any) -> Any:
    """The recheck as it was before batching (notifications/compose.py at c6d6d5b)."""
    notes = session.exec(
        select(Notification).where(Notification.email_id == email.id).order_by(Notification.id)
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
        if section.get("shown", []) != (n.payload or {}).get("shown", []):
            changed = True
        sections.append(section)
    if not sections:
        return None
    if not changed:
        return "keep"
    _write_message(email, RENDERER, IDENTITY, contact, d.name(contact.org_id), sections, now)
    return email.raw


def build(db: Database, folder: Path, contacts: int, emails: int) -> None:
    audit = AuditLog.from_key_file(folder / "audit.key", folder / "anchor.json", create=True)

    def make_ctx(now: Any = "2026-05-26T09:00", actor: Actor | None = None) -> Ctx:
        return Ctx(
            now=parse_instant(now) if isinstance(now, str) else now,
            actor=actor or Actor(name="bench"),
            audit=audit,
        )

    upgrade(db)
    with db.write() as session:
        seed_divisions(session)
        for path in builtin_campaign_files():
            load_campaign(session, make_ctx(), path.read_text(encoding="utf-8"), origin=path.name)
    build_town(db, make_ctx)
    with db.write() as session:
        counties = [o.id for o in session.exec(select(Organisation).where(Organisation.tier == "county"))]
        at = parse_instant("2026-05-26T09:00")
        rows = [
            {
                "org_id": counties[i % len(counties)],
                "name": f"联系人{i}",
                "email": f"c{i}@roster.example",
                "mobile": "13800000000",
                "title": "科员",
                "programs": "cluster,jingpin",
                "department": "产业科",
                "source": "bench",
                "updated_at": at,
                "active": True,
            }
            for i in range(contacts)
        ]
        for start in range(0, len(rows), 5000):
            session.execute(insert(Contact.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]
    tick_at(db, make_ctx, REMINDER_TIME)
    with db.write() as session:
        originals = list(session.exec(select(Email)).all())
        notes: dict[int, list[Notification]] = defaultdict(list)
        for n in session.exec(select(Notification).where(Notification.email_id.is_not(None))):  # type: ignore[union-attr]
            notes[n.email_id].append(n)  # type: ignore[index]
        copies = 0
        while len(originals) + copies < emails:
            for e in originals:
                copies += 1
                tag = uuid.uuid4().hex[:10]
                clone = Email(**{k: v for k, v in e.model_dump().items() if k != "id"})
                clone.key, clone.message_id = f"{e.key}:{tag}", f"<{tag}{e.message_id[1:]}"
                session.add(clone)
                session.flush()
                for n in notes[e.id]:  # type: ignore[index]
                    fields = {k: v for k, v in n.model_dump().items() if k != "id"}
                    session.add(Notification(**(fields | {"key": f"{n.key}:{tag}", "email_id": clone.id})))
        session.flush()


def _kind(verdict: Any) -> str:
    return "keep" if verdict == "keep" else "cancel" if verdict is None else "rerender"


def measure(db: Database, variant: str) -> tuple[float, int, dict[str, int]]:
    now = parse_instant(REMINDER_TIME)
    with db.writer.connect() as conn:
        trans = conn.begin()
        from sqlmodel import Session

        session = Session(bind=conn)
        emails = list(session.exec(select(Email).order_by(Email.id)).all())
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--emails", type=int, default=300)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        targets = [("SQLite", Database(f"sqlite:///{folder / 'bench.db'}"), None)]
        if not args.no_pg:
            import psycopg

            name = f"shenbao_bench_recheck_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            targets.append(("PostgreSQL", Database(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"), name))
        try:
            for label, db, _ in targets:
                build(db, folder / label, args.contacts, args.emails)
                with db.read() as session:
                    n = session.execute(text("SELECT count(*) FROM contact")).scalar_one()
                for variant in ("before", "after"):
                    elapsed, count, verdicts = measure(db, variant)
                    print(
                        f"{label:10s} {variant:6s} {n} contacts, {count} mails: "
                        f"{elapsed:7.2f} s, {count / elapsed:8.1f} mails/s, {1000 * elapsed / count:7.1f} ms/mail  {verdicts}",
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
