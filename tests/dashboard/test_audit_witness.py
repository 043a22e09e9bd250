"""The signed audit log at the edges: the day's checkpoint in the witnesses' digest, the audit
page, and a case's receipt (printable and JSON) that checks offline with the public key."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from calendars.timeutil import parse_instant
from models import receipts
from models.checkpoint import Keyring, open_checkpoint
from models.outbox import Email, Notification
from operations import checkpoints, sweep
from operations.runtime import Runtime
from tests.dashboard.conftest import sign_in
from tests.dashboard.world import World

# The checkpoint and the receipt read the audit chain verified on both backends in
# tests/models: SQLite only here (tests/README.md, rule 4).
pytestmark = pytest.mark.backends("sqlite")


def test_the_days_checkpoint_goes_to_the_provinces_contacts_once(world: World, runtime: Runtime) -> None:
    checkpoints.keygen(runtime)
    now = parse_instant("2026-06-20T09:00")
    sweep.reconcile(runtime, now)
    sweep.reconcile(runtime, parse_instant("2026-06-20T15:00"))
    with runtime.db.read() as session:
        rows = session.exec(select(Notification).where(Notification.kind == "audit_checkpoint")).all()
        assert rows and len({r.contact_id for r in rows}) == len(rows)  # one a contact that day
        note = rows[0].payload["note"]
        email = session.get(Email, rows[0].email_id)
    keyring = Keyring.read(runtime.settings.resolved_keyring_file)
    kept = open_checkpoint(note, keyring)  # what the witness saves from the mail verifies
    assert email is not None and note.splitlines()[0] in email.text_body
    sweep.reconcile(runtime, parse_instant("2026-06-21T09:00"))
    with runtime.db.read() as session:
        days = {
            r.step for r in session.exec(select(Notification).where(Notification.kind == "audit_checkpoint"))
        }
    assert days == {"2026-06-20", "2026-06-21"} and kept.size > 0


def test_a_cases_receipt_page_and_file_check_offline(
    world: World, runtime: Runtime, client: TestClient
) -> None:
    checkpoints.keygen(runtime)
    sign_in(client, world.token("hangzhou"))
    ref = world.refs["xihu_core"]
    page = client.get(f"/cases/{ref}/receipt")
    assert page.status_code == 200 and "签名检查点" in page.text
    data = client.get(f"/cases/{ref}/receipt.json").json()
    checked = receipts.check(
        json.loads(json.dumps(data)), Keyring.read(runtime.settings.resolved_keyring_file)
    )
    assert {e["subject"] for e in checked.events} == {f"case:{ref}"}
    audit = client.get("/audit")
    assert audit.status_code == 200 and data["checkpoint"].splitlines()[0] in audit.text
