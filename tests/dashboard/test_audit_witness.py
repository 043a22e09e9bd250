"""The signed audit log at the edges: the day's checkpoint in the witnesses' digest, the audit
page, and a case's receipt (printable and JSON) that checks offline with the public key."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from calendars.timeutil import local_date, parse_instant
from models import receipts
from models.actions import perform
from models.audit import EventDraft
from models.audit_tree import SignedCheckpoint
from models.checkpoint import Keyring, open_checkpoint
from models.context import PLATFORM_SYNC, Actor
from models.outbox import Email, Notification
from notifications.loopback import LoopbackSMTP
from operations import acts, checkpoints, sweep
from operations.runtime import Runtime
from tests.conftest import CLUSTER
from tests.dashboard.conftest import sign_in
from tests.dashboard.world import World
from tests.flows.test_cli import Shenbao

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
    # The public key itself, not jinja's dict.keys method (``s.keys`` printed "<built-in method …>").
    assert f"公钥（核对签名用）：{keyring.keys[0].text}" in email.text_body
    grow_log(runtime, "2026-06-21T08:00")
    sweep.reconcile(runtime, parse_instant("2026-06-21T09:00"))
    with runtime.db.read() as session:
        days = {
            r.step for r in session.exec(select(Notification).where(Notification.kind == "audit_checkpoint"))
        }
    assert days == {"2026-06-20", "2026-06-21"} and kept.size > 0


def grow_log(runtime: Runtime, at: str) -> None:
    """One more audit event, of a kind that asks for no receipt (a roster import's)."""
    with runtime.db.write() as session:
        runtime.audit().append(
            session,
            EventDraft(
                at=parse_instant(at), actor="省经信厅/祝博艺", action="import", subject="roster:名单.xlsx"
            ),
        )


def signed_per_day(runtime: Runtime) -> dict[str, int]:
    with runtime.db.read() as session:
        days = [local_date(c.signed_at).isoformat() for c in session.exec(select(SignedCheckpoint))]
    return {day: days.count(day) for day in sorted(set(days))}


def test_the_log_is_signed_once_a_day_however_many_sweeps_find_it_grown(
    world: World, runtime: Runtime
) -> None:
    checkpoints.keygen(runtime)
    for at in ("2026-06-20T09:00", "2026-06-20T12:00", "2026-06-20T15:00"):
        grow_log(runtime, at)
        sweep.reconcile(runtime, parse_instant(at))
    assert signed_per_day(runtime) == {"2026-06-20": 1}
    # The next day's first sweep signs what grew after 09:00; a day on which nothing happened
    # signs nothing, and its witnesses are sent nothing they have not had.
    sweep.reconcile(runtime, parse_instant("2026-06-21T09:00"))
    sweep.reconcile(runtime, parse_instant("2026-06-21T15:00"))
    sweep.reconcile(runtime, parse_instant("2026-06-22T09:00"))
    assert signed_per_day(runtime) == {"2026-06-20": 1, "2026-06-21": 1}
    with runtime.db.read() as session:
        mailed = {
            r.step for r in session.exec(select(Notification).where(Notification.kind == "audit_checkpoint"))
        }
    assert mailed == {"2026-06-20", "2026-06-21"}
    # A receipt the day's checkpoint does not cover has one of its own, signed at the sweep's
    # instant (the machine's clock gave a simulated season's receipts today's date).
    grow_log(runtime, "2026-06-23T08:00")
    sweep.reconcile(runtime, parse_instant("2026-06-23T09:00"))
    county = Actor(name="林西", org_id="330106", tier="county")
    acts.act(runtime, county, world.refs["xihu_core"], "submit", now=parse_instant("2026-06-23T10:00"))
    sweep.reconcile(runtime, parse_instant("2026-06-23T10:05"))
    assert signed_per_day(runtime) == {"2026-06-20": 1, "2026-06-21": 1, "2026-06-23": 2}


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


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[LoopbackSMTP]:
    with LoopbackSMTP() as server:
        yield server


@pytest.fixture
def smtp(smtp_server: LoopbackSMTP) -> LoopbackSMTP:
    """The module's one loopback server, emptied for the test."""
    smtp_server.clear()
    return smtp_server


def _received_receipt(smtp: LoopbackSMTP, addr: str) -> tuple[EmailMessage, str, bytes]:
    """The one mail to ``addr`` as a mail client reads it, and its .json attachment."""
    mine = [i for i, m in enumerate(smtp.messages) if addr in m.rcpt_tos]
    assert len(mine) == 1, [m.rcpt_tos for m in smtp.messages]
    message = smtp.decoded(mine[0])
    files = [(p.get_filename(), p.get_payload(decode=True)) for p in message.iter_attachments()]
    assert len(files) == 1 and files[0][0].endswith(".json"), files
    return message, files[0][0], files[0][1]


def test_an_actor_receives_the_receipt_by_mail_and_it_checks_on_another_machine(
    world: World, runtime: Runtime, smtp: LoopbackSMTP, tmp_path: Path
) -> None:
    runtime.settings.dashboard_url = "https://shenbao.example.gov.cn"
    public = checkpoints.keygen(runtime)
    now = parse_instant("2026-06-22T10:00")  # a Monday: no quiet hours hold the mail
    linxi = Actor(name="林西", org_id="330106", tier="county")
    acts.act(runtime, linxi, world.refs["xihu_core"], "submit", now=now)
    sweep.reconcile(runtime, now)
    sweep.dispatch(runtime, now, host="127.0.0.1", port=smtp.port, timeout=5.0)
    message, name, data = _received_receipt(smtp, world.people["xihu"].email)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "【审计回执】您的以下操作已记入申报系统的审计日志" in text and world.refs["xihu_core"] in text
    assert f"shenbao audit check-receipt {name} --public-key {public.text}" in text
    assert (
        public.fingerprint in text
        and f"https://shenbao.example.gov.cn/cases/{world.refs['xihu_core']}/receipt" in text
    )
    # The same bytes `shenbao audit receipt SEQ` writes.
    seq = json.loads(data)["entries"][0]["seq"]
    assert data == receipts.to_text(checkpoints.receipt(runtime, str(seq))).encode()
    # Another machine: a fresh folder, no database, no secret, only the public key.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "mail").mkdir(parents=True)
    saved = elsewhere / "mail" / name
    saved.write_bytes(data)
    other = Shenbao(elsewhere / "home")
    checked = other("audit", "check-receipt", str(saved), "--public-key", public.text).stdout
    assert "回执有效" in checked and world.refs["xihu_core"] in checked and "林西@330106" in checked
    forged = json.loads(data)
    forged["entries"][0]["event"] = forged["entries"][0]["event"].replace("林西", "别人")
    saved.write_text(receipts.to_text(forged))
    refused = other("audit", "check-receipt", str(saved), "--public-key", public.text, code=1)
    assert "回执无效" in refused.stdout
    assert not list(elsewhere.rglob("*.db"))  # it never opened a database
    # Reconciling again mails nothing new; the engine's own actions give no receipt.
    sweep.reconcile(runtime, parse_instant("2026-06-22T10:05"))
    with runtime.db.read() as session:
        rows = session.exec(select(Notification).where(Notification.kind == "receipt")).all()
    assert [r.email_addr for r in rows] == [world.people["xihu"].email]


def test_a_missing_signing_key_holds_the_receipts_and_says_so(
    world: World, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = parse_instant("2026-06-22T10:00")
    acts.act(
        runtime,
        Actor(name="林西", org_id="330106", tier="county"),
        world.refs["xihu_core"],
        "submit",
        now=now,
    )
    with caplog.at_level(logging.WARNING, logger="shenbao.audit"):
        sweep.reconcile(runtime, now)
        sweep.reconcile(runtime, parse_instant("2026-06-22T10:05"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "shenbao.audit"]
    assert len(warnings) == 1 and "审计签名密钥不可用，今日检查点未签署" in warnings[0]  # once a day
    assert "shenbao audit keygen" in warnings[0]
    sb = Shenbao(
        tmp_path / "home",
        SHENBAO_DATABASE_URL=world.db.url,
        SHENBAO_AUDIT_KEY_FILE=str(runtime.settings.resolved_key_file),
        SHENBAO_AUDIT_ANCHOR_FILE=str(runtime.settings.audit_anchor_file),
    )
    shown = sb("audit", "status", now="2026-06-22T10:10").stdout
    assert "⚠ 警告：审计签名密钥不可用" in shown and "尚未签署检查点" in shown
    assert "尚未发出回执的操作" in shown
    with runtime.db.read() as session:
        assert not session.exec(select(Notification).where(Notification.kind == "receipt")).all()
    # The key comes back: the held receipt goes out with the next pass.
    checkpoints.keygen(runtime)
    sweep.reconcile(runtime, parse_instant("2026-06-22T10:15"))
    with runtime.db.read() as session:
        held = session.exec(select(Notification).where(Notification.kind == "receipt")).all()
    assert [r.email_addr for r in held] == [world.people["xihu"].email]
    assert "签名密钥：" in sb("audit", "status", now="2026-06-22T10:20").stdout


def test_a_moved_deadline_and_a_platform_sync_give_their_receipts_to_the_right_people(
    world: World, runtime: Runtime
) -> None:
    checkpoints.keygen(runtime)
    now = parse_instant("2026-06-22T10:00")
    yan = Actor(name="严梦玲", org_id="330000", tier="province")
    acts.move_deadline(
        runtime, yan, CLUSTER, "application", parse_instant("2026-06-30T17:00"), "统一延期", now=now
    )
    # The platform's submission names nobody here: the applicant's contacts (西湖区: 林西, and
    # 钱进 from the application's contact columns) keep the receipt.
    perform(runtime.db, runtime.ctx(PLATFORM_SYNC, now=now), world.refs["xihu_collab"], "submit")
    sweep.reconcile(runtime, now)
    with runtime.db.read() as session:
        rows = session.exec(
            select(Notification).where(Notification.kind == "receipt").order_by(col(Notification.id))
        ).all()
    to = {r.email_addr: r.payload for r in rows}
    assert set(to) == {world.people["province"].email, world.people["xihu"].email, "qianjin@xh.gov.cn"}
    moved = to[world.people["province"].email]
    assert moved["page"] == "/audit" and moved["events"][0]["what"].startswith("调整截止时间")
    assert to["qianjin@xh.gov.cn"]["page"] == f"/cases/{world.refs['xihu_collab']}/receipt"
    keyring = Keyring.read(runtime.settings.resolved_keyring_file)
    for payload in to.values():
        checked = receipts.check(json.loads(payload["receipt"]), keyring)
        assert checked.checkpoint.size >= checked.events[-1]["seq"]
