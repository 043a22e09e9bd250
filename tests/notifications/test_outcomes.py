"""Which SMTP failures are worth a retry and which are final."""

from __future__ import annotations

import aiosmtplib
import pytest

from notifications.dispatcher import classify, data_block, envelope_address


@pytest.mark.parametrize(
    ("error", "outcome", "code", "usable"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "User unknown", "a@b.cn")]
            ),
            "permanent",
            550,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "Mailbox full", "a@b.cn")]
            ),
            "temporary",
            452,
            True,
        ),
        (aiosmtplib.SMTPDataError(554, "Content rejected"), "permanent", 554, True),
        (aiosmtplib.SMTPDataError(451, "Local error"), "temporary", 451, True),
        # Our sender refused is about our account, not this mail: never dead-letter everything for it.
        (aiosmtplib.SMTPSenderRefused(550, "Sender not allowed", "x@y.cn"), "temporary", 550, True),
        (aiosmtplib.SMTPResponseException(421, "Too many connections"), "temporary", 421, False),
        (aiosmtplib.SMTPServerDisconnected("gone"), "temporary", None, False),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "temporary", None, False),
        (ConnectionRefusedError(111, "Connection refused"), "temporary", None, False),
    ],
)
def test_it_tells_temporary_from_permanent_failures(error, outcome, code, usable) -> None:  # type: ignore[no-untyped-def]
    kind, smtp_code, detail, still_usable = classify(error)

    assert (kind, smtp_code, still_usable) == (outcome, code, usable)
    assert detail


@pytest.mark.parametrize(
    "address", ["张三@例子.中国", "a b@c.cn", "a@b.cn>\r\nRCPT TO:<c@d.cn", "no-at-sign", ""]
)
def test_it_refuses_addresses_an_envelope_cannot_carry(address: str) -> None:
    with pytest.raises(ValueError):
        envelope_address(address)

    assert classify(ValueError("bad"))[0] == "permanent"


def test_it_brackets_a_plain_address() -> None:
    assert envelope_address("li.si+shenbao@qz.example.cn") == b"<li.si+shenbao@qz.example.cn>"


def test_it_frames_a_message_for_data() -> None:
    assert data_block(b"a\r\nb\r\n") == b"a\r\nb\r\n.\r\n"
    assert data_block(b".x\r\n.\r\ny") == b"..x\r\n..\r\ny\r\n.\r\n"
    assert data_block(b"bare\nlf\rcr\r\n") == b"bare\r\nlf\r\ncr\r\n.\r\n"
