"""SMTP fixtures: a real aiosmtpd server per test, and outbox rows written the way reconcile does."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from models.db import Database
from models.org import Contact, Organisation
from models.outbox import E_PENDING, Email
from notifications.dispatcher import SmtpConfig
from notifications.loopback import LoopbackSMTP
from notifications.mime import build_mime, message_id_for
from tests.conftest import CURRENT_TIME, _truncate

SENDER = "noreply@jxt.zj.gov.cn"
SENDER_NAME = "浙江省经济和信息化厅"
DOMAIN = "shenbao.test"
ORG_ID = "test-org"


@pytest.fixture
def smtp() -> Iterator[LoopbackSMTP]:
    with LoopbackSMTP() as server:
        yield server


@pytest.fixture
def pg_db(_pg_schema: Database) -> Database:
    """The PostgreSQL database alone, emptied (for tests that only make sense there)."""
    _truncate(_pg_schema)
    return _pg_schema


def config_for(port: int, **overrides: Any) -> SmtpConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "timeout": 5.0,
        "local_hostname": "test.local",
    }
    values.update(overrides)
    return SmtpConfig(**values)


def free_port() -> int:
    """A port with nothing listening (the OS just handed it out and we let it go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _contact(db: Database, name: str, addr: str) -> int:
    with db.write() as session:
        if session.get(Organisation, ORG_ID) is None:
            session.add(Organisation(id=ORG_ID, name="衢州市经济和信息化局", tier="city", city_code="330800"))
            session.flush()
        contact = session.scalars(
            select(Contact).where(Contact.org_id == ORG_ID, Contact.email == addr)
        ).first()
        if contact is not None:
            return int(contact.id)  # type: ignore[arg-type]
        contact = Contact(org_id=ORG_ID, name=name, email=addr, updated_at=CURRENT_TIME)
        session.add(contact)
        session.flush()
        assert contact.id is not None
        return contact.id


def add_emails(
    db: Database,
    count: int = 1,
    *,
    first: int = 0,
    to: list[tuple[str, str]] | None = None,
    subject: str = "【提醒】2026年先进制造业集群申报材料将于6月5日截止",
    due: datetime = CURRENT_TIME,
    **columns: Any,
) -> list[int]:
    """``count`` due emails (or one per ``(name, address)`` in ``to``), raw built with build_mime."""
    recipients = to or [(f"联系人{i}", f"contact{i}@qz.example.cn") for i in range(first, first + count)]
    contact_id = _contact(db, "张三", "zhangsan@qz.example.cn")
    rows = []
    for i, (name, addr) in enumerate(recipients, start=first):
        key = f"test:email:{i}:{addr}"
        message_id = message_id_for(key, DOMAIN)
        text = f"{name}您好：\n请于2026年6月5日17:00前在系统中提交申报材料。\n"
        html = f"<p>{name}您好：</p><p>请于2026年6月5日17:00前在系统中提交申报材料。</p>"
        raw = build_mime(
            message_id=message_id,
            from_addr=SENDER,
            from_name=SENDER_NAME,
            to_addr=addr,
            to_name=name,
            subject=subject,
            text=text,
            html=html,
            date=due,
        )
        row = {
            "key": key,
            "message_id": message_id,
            "contact_id": contact_id,
            "to_addr": addr,
            "to_name": name,
            "subject": subject,
            "text_body": text,
            "html_body": html,
            "raw": raw,
            "urgent": False,
            "kinds": "reminder",
            "created_at": due,
            "next_attempt_at": due,
            "status": E_PENDING,
            "attempts": 0,
            "last_error": "",
        }
        row.update(columns)
        rows.append(row)
    with db.write() as session:
        session.execute(insert(Email.__table__), rows)  # type: ignore[attr-defined]
        keys = [r["key"] for r in rows]
        ids = session.execute(select(Email.id).where(Email.key.in_(keys)).order_by(Email.id)).scalars().all()
    return [int(i) for i in ids]


def emails(db: Database) -> dict[int, Email]:
    with db.read() as session:
        return {e.id: e for e in session.scalars(select(Email).order_by(Email.id))}  # type: ignore[misc]


@pytest.fixture(scope="session")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the cert file."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
