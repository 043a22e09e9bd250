"""The README's main job: `shenbao demo` runs end to end and every email reaches the server.

Through the CLI's entry point in-process (the demo starts its own SMTP server in-process either
way): a console-script run would add only the import, which tests/flows/test_cli.py covers.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.flows.test_cli import Shenbao

# The longest single test of the suite (the whole 05-20 → 08-15 season): scheduled first.
pytestmark = pytest.mark.heavy


def test_the_demo_delivers_every_email_once_and_leaves_a_sound_audit_chain(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = Shenbao(tmp_path / "home", SHENBAO_ACTOR=None)("demo", "--out", str(out), now=None)
    text = result.stdout
    assert "Message-ID 不重复：True" in text
    assert "审计链：完好" in text
    assert "超出名额「杭州市“新星”产业群推荐数量不超过3个」" in text
    sent = int(text.split("已发送 ")[1].split("，")[0])
    emls = sorted((out / "eml").glob("*.eml"))
    assert len(emls) == sent > 500
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in emls]
    work = [m for m in mails if not str(m["Subject"]).startswith("【审计")]
    assert "截止" in str(work[0]["Subject"]) or "通知" in str(work[0]["Subject"])
    # The demo signs its checkpoints: the audit contacts get them, the actors their receipts.
    receipts = [m for m in mails if str(m["Subject"]).startswith("【审计回执】")]
    assert receipts and any(str(m["Subject"]).startswith("【审计检查点】") for m in mails)
    attached = [a.get_filename() for a in receipts[0].iter_attachments()]
    assert len(attached) == 1 and str(attached[0]).endswith(".json")
