"""Building the MIME message of an email, once, when the email is written to the outbox.

The Message-ID is derived from the email's unique key, so if a crash makes the dispatcher send
the same email twice, both copies carry the same Message-ID and a mail client or an auditor can
tell they are one message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from calendars.timeutil import to_local


def message_id_for(key: str, domain: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_mime(
    *,
    message_id: str,
    from_addr: str,
    from_name: str,
    to_addr: str,
    to_name: str,
    subject: str,
    text: str,
    html: str,
    date: datetime,
    extra_headers: dict[str, str] | None = None,
    attachments: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """A multipart/alternative message with UTF-8 headers (RFC 2047) and bodies, as SMTP bytes;
    with ``attachments`` (file name, bytes) it becomes multipart/mixed around them."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject
    msg["From"] = Address(display_name=from_name, addr_spec=from_addr)
    msg["To"] = Address(display_name=to_name, addr_spec=to_addr)
    msg["Date"] = format_datetime(to_local(date))
    msg["Message-ID"] = message_id
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    # base64 bodies pass any relay, including ones without 8BITMIME.
    msg.set_content(text, charset="utf-8", cte="base64")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    for filename, data in attachments:
        # application/json in base64: the receiver's file is byte for byte what was attached.
        msg.add_attachment(data, maintype="application", subtype="json", filename=filename)
    return msg.as_bytes()
