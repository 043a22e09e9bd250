"""The loopback SMTP server itself: what it keeps, what it refuses, what it writes."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from notifications.loopback import LoopbackSMTP
from notifications.mime import build_mime, message_id_for
from tests.conftest import CURRENT_TIME

RAW = build_mime(
    message_id=message_id_for("loopback-test", "shenbao.test"),
    from_addr="noreply@jxt.zj.gov.cn",
    from_name="浙江省经信厅",
    to_addr="a@example.cn",
    to_name="李四",
    subject="【通知】申报系统开放",
    text="申报系统已开放。",
    html="<p>申报系统已开放。</p>",
    date=CURRENT_TIME,
)


def test_it_picks_a_free_port_and_keeps_what_it_receives(tmp_path: Path) -> None:
    with LoopbackSMTP(save_dir=tmp_path / "mail") as server:
        assert server.port > 0
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.sendmail("noreply@jxt.zj.gov.cn", ["a@example.cn"], RAW)

        [message] = server.messages
        assert (message.mail_from, message.rcpt_tos) == ("noreply@jxt.zj.gov.cn", ("a@example.cn",))
        assert message.message_id == message_id_for("loopback-test", "shenbao.test")
        assert server.decoded(0)["Subject"] == "【通知】申报系统开放"
        assert server.decoded(0)["To"].addresses[0].display_name == "李四"
        assert server.take() == [message] and len(server) == 0
    [saved] = (tmp_path / "mail").glob("*.eml")
    assert saved.name.startswith("000001-") and saved.read_bytes() == RAW
    assert not server.running


def test_it_refuses_listed_recipients_for_good_and_defers_the_first_n() -> None:
    with LoopbackSMTP(reject=["Nobody@Example.cn"], temp_fail_first=1) as server:
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as deferred:
                client.sendmail("x@y.cn", ["a@example.cn"], RAW)
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("x@y.cn", ["nobody@example.cn"], RAW)
            client.sendmail("x@y.cn", ["a@example.cn"], RAW)

        assert deferred.value.recipients["a@example.cn"][0] == 451
        assert refused.value.recipients["nobody@example.cn"][0] == 550
        assert (len(server), server.rejected, server.deferred) == (1, 1, 1)


def test_it_refuses_mail_before_login_when_it_wants_one() -> None:
    with LoopbackSMTP(credentials={"shenbao": "s3cret"}) as server:
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("x@y.cn", ["a@example.cn"], RAW)

        assert refused.value.smtp_code == 530 and len(server) == 0
