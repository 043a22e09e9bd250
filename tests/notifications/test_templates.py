"""The zh-CN emails: subject, text and HTML, the deadline as people read it, overrides by operators.

A deadline is written the way the notice writes it, in Beijing time with the weekday
("2026-06-25（周四）24:00"), with a countdown in working days; the dashboard link appears only
when one is configured; an operator's folder replaces one template and leaves the others alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from models.db import Database
from notifications.compose import MailIdentity
from notifications.loopback import LoopbackSMTP
from notifications.render import KINDS, Renderer
from operations.runtime import Runtime
from operations.settings import Settings
from tests.conftest import CLUSTER, built_world
from tests.models.spine import cluster_case
from tests.notifications.world import IDENTITY, act, build_town, emails, move_deadline, send_at, tick_at

DEADLINE = "2026-06-25（周四）24:00"
STAGE = "线上申报（申报信息表、实施方案及佐证材料）"
DASHBOARD = "https://shenbao.jxt.zj.example/board"


@pytest.fixture
def town(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "town-yuhang-submitted", _town_yuhang_submitted)


def _town_yuhang_submitted(db: Database, make_ctx: Any, folder: Path) -> dict[str, Any]:
    town = build_town(db, make_ctx)
    act(db, make_ctx, "2026-06-15T10:00", town["yuhang"], "submit", "余杭区")
    return town


def reminder_to_lina(town: dict[str, Any], make_ctx: Any, **kw: Any) -> Any:
    """The d-3wd reminder of Monday 06-22 09:00 to 西湖区, which still has its draft."""
    tick_at(town["db"], make_ctx, "2026-06-22T09:00", **kw)
    [email] = emails(town["db"], contact_id=town["ids"]["xihu"])
    return email


def test_it_writes_the_deadline_with_its_weekday_and_the_working_days_left_in_every_part(
    town: dict[str, Any], make_ctx: Any
) -> None:
    email = reminder_to_lina(town, make_ctx)

    assert email.subject == f"【提醒】{STAGE}将于{DEADLINE}截止，1项待办（还剩3个工作日）"
    assert f"截止时间：{DEADLINE}（还剩 3 个工作日，3天15小时）" in email.text_body
    assert f"截止时间：<strong>{DEADLINE}</strong>，还剩 <strong>3</strong> 个工作日" in email.html_body
    assert email.text_body.startswith("李娜同志，您好：")
    assert f"· {town['xihu']} 西湖区（智能终端） — 填报中" in email.text_body
    assert "依据：申报系统截止时间为2026年6月25日24:00，逾期系统自动关闭申报功能" in email.text_body


def test_it_marks_the_last_day_in_the_subject(town: dict[str, Any], make_ctx: Any) -> None:
    tick_at(town["db"], make_ctx, "2026-06-25T08:30")
    [email] = emails(town["db"], contact_id=town["ids"]["xihu"])
    assert email.subject == f"【今日截止】{STAGE}将于{DEADLINE}截止，1项待办"
    assert "（今天截止，距截止还有15小时30分钟）" in email.text_body


def test_it_says_when_a_weekend_deadline_really_is_on_the_last_working_day_before_it(
    town: dict[str, Any], make_ctx: Any
) -> None:
    # Sunday 06-28 24:00: Friday 06-26 has no working day after it, but it is not the last day.
    move_deadline(town["db"], make_ctx, "2026-06-20T10:00", CLUSTER, "application", "2026-06-28 24:00")
    tick_at(town["db"], make_ctx, "2026-06-20T10:00")  # the notice of the move goes on its own
    tick_at(town["db"], make_ctx, "2026-06-26T09:00")
    [email] = [e for e in emails(town["db"], contact_id=town["ids"]["xihu"]) if e.kinds == "reminder"]
    assert email.subject == f"【最后一个工作日】{STAGE}将于本周日（6月28日）24:00截止，1项待办"
    assert "（今天是截止前最后一个工作日，距截止还有2天15小时）" in email.text_body
    assert "今天是截止前最后一个工作日，距截止还有2天15小时" in email.html_body
    assert "今日截止" not in email.subject + email.text_body + email.html_body


CLUSTER_NAME = "第四批省级重点产业集群核心区协同区和“新星”产业群遴选"


def test_it_names_the_campaign_and_when_the_change_happened_in_a_deadline_notice_held_overnight(
    town: dict[str, Any], make_ctx: Any
) -> None:
    # Moved on a Saturday night: the email waits for Monday 08:30, and must not pass for news of then.
    move_deadline(town["db"], make_ctx, "2026-06-20T22:00", CLUSTER, "application", "2026-06-30 24:00")
    tick_at(town["db"], make_ctx, "2026-06-20T22:00")
    [email] = emails(town["db"], contact_id=town["ids"]["xihu"])
    assert email.subject == f"【时间调整】{CLUSTER_NAME}：{STAGE}截止时间调整为2026-06-30（周二）24:00"
    assert CLUSTER_NAME in email.html_body
    assert "调整时间：2026-06-20（周六）22:00" in email.text_body
    assert "调整时间：2026-06-20（周六）22:00" in email.html_body


def test_it_links_the_dashboard_when_one_is_configured(town: dict[str, Any], make_ctx: Any) -> None:
    identity = MailIdentity(
        from_addr=IDENTITY.from_addr, from_name=IDENTITY.from_name, dashboard_url=DASHBOARD
    )
    email = reminder_to_lina(town, make_ctx, identity=identity)
    assert f"查看详情与办理：{DASHBOARD}" in email.text_body
    assert f'<a href="{DASHBOARD}">查看详情与办理</a>' in email.html_body


def test_it_leaves_the_link_out_without_a_dashboard(town: dict[str, Any], make_ctx: Any) -> None:
    email = reminder_to_lina(town, make_ctx)
    assert "查看详情" not in email.text_body and "<a href" not in email.html_body


def test_it_escapes_what_applicants_typed_in_html_but_not_in_text(seeded: Database, make_ctx: Any) -> None:
    town = build_town(seeded, make_ctx)
    with seeded.write() as session:
        cluster_case(
            session,
            make_ctx("2026-06-01T10:00"),
            county="西湖区",
            applicant="<b>未来</b>园区",
            subtrack="模型数据服务",
        )
    email = reminder_to_lina(town, make_ctx)
    assert "&lt;b&gt;未来&lt;/b&gt;园区" in email.html_body and "<b>未来</b>" not in email.html_body
    assert "<b>未来</b>园区" in email.text_body


def test_it_takes_one_template_from_the_operators_folder_and_the_rest_built_in(
    town: dict[str, Any], make_ctx: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "reminder.subject.txt").write_text(
        "【催办】{{ s.stage_name }}｜截止{{ s.deadline_text }}｜剩{{ s.working_days_left }}个工作日\n",
        encoding="utf-8",
    )

    email = reminder_to_lina(town, make_ctx, renderer=Renderer(folder))

    assert email.subject == f"【催办】{STAGE}｜截止{DEADLINE}｜剩3个工作日"
    assert f"截止时间：{DEADLINE}（还剩 3 个工作日" in email.text_body  # the built-in body


def test_it_reads_the_override_folder_from_shenbao_templates_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "digest.txt").write_text(
        "{{ contact.name }}：共{{ sections | length }}项。\n", encoding="utf-8"
    )
    monkeypatch.setenv("SHENBAO_TEMPLATES_DIR", str(folder))
    monkeypatch.setenv("SHENBAO_HOME", str(tmp_path / "home"))

    renderer = Runtime(Settings()).renderer

    subject, text, html = renderer.render(_context([_notice()]))
    assert text == "李娜：共1项。\n"
    assert subject.startswith("【通知】CL26-00001") and "<!DOCTYPE html>" in html


def test_it_refuses_a_template_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SHENBAO_TEMPLATES_DIR 不是目录"):
        Renderer(tmp_path / "missing")


def test_it_fails_loudly_on_a_field_an_override_misspells(tmp_path: Path) -> None:
    (tmp_path / "notice.subject.txt").write_text("{{ s.titel }}", encoding="utf-8")
    with pytest.raises(UndefinedError):
        Renderer(tmp_path).render(_context([_notice()]))


def test_it_has_a_subject_text_and_html_template_for_every_kind() -> None:
    root = Path(__file__).resolve().parents[2] / "notifications" / "templates"
    for kind in KINDS:
        for part in ("subject.txt", "txt", "html"):
            assert (root / f"{kind}.{part}").is_file(), f"{kind}.{part}"


def test_it_writes_a_defence_notice_with_the_date_and_the_reason() -> None:
    notice = _notice(
        action="schedule_defence",
        label="安排现场答辩",
        to="已安排现场答辩",
        defence_at="2026-08-05（周三）09:00",
        reason="请携带汇报材料提前30分钟到场",
    )
    subject, text, html = Renderer().render(_context([notice]))
    assert subject == "【通知】CL26-00001 西湖区：安排现场答辩（已安排现场答辩）"
    assert "答辩时间：2026-08-05（周三）09:00" in text and "<strong>2026-08-05（周三）09:00</strong>" in html
    assert "说明：请携带汇报材料提前30分钟到场" in text


def test_it_titles_a_digest_of_notices_only_as_notices_not_as_things_to_do() -> None:
    subject, text, _ = Renderer().render(_context([_notice(), _notice(ref="CL26-00002")]))
    assert subject == "【通知】李娜，您有2条通知（2026-06-18（周四）09:00）"
    assert "—— 1. ——" in text and "—— 2. ——" in text


def test_it_delivers_a_chinese_subject_and_sender_that_decode_at_the_smtp_server(
    town: dict[str, Any], make_ctx: Any
) -> None:
    email = reminder_to_lina(town, make_ctx)
    with LoopbackSMTP() as smtp:
        send_at(town["db"], "2026-06-22T09:00", smtp.port)
        [i] = [i for i, m in enumerate(smtp.messages) if m.rcpt_tos == ("lina@xihu.example",)]
        raw = smtp.messages[i].raw
        message = smtp.decoded(i)

    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head  # RFC 2047 on the wire
    assert message["Subject"] == email.subject
    assert message["From"].addresses[0].display_name == "浙江省申报工作提醒"
    assert message["To"].addresses[0].display_name == "李娜"
    text = message.get_body(("plain",)).get_content()
    assert DEADLINE in text and message.get_body(("plain",)).get_content_charset() == "utf-8"
    assert DEADLINE in message.get_body(("html",)).get_content()


def _notice(**over: Any) -> dict[str, Any]:
    section = {
        "kind": "notice",
        "urgent": False,
        "ref": "CL26-00001",
        "title": "西湖区",
        "action": "return",
        "label": "退回修改",
        "from": "已提交待市级审核",
        "to": "退回修改",
        "reason": "",
        "actor": "陈静@330100",
        "at": "2026-06-17T08:00:00+00:00",
        "at_text": "2026-06-17（周三）16:00",
        "defence_at": None,
        "campaign_name": "第四批省级重点产业集群核心区协同区和“新星”产业群遴选",
    }
    return section | over


def _context(sections: list[dict[str, Any]]) -> dict[str, Any]:
    class Person:
        name = "李娜"

    return {
        "contact": Person(),
        "org_name": "西湖区",
        "sections": sections,
        "now_text": "2026-06-18（周四）09:00",
        "dashboard_url": None,
        "from_name": "浙江省申报工作提醒",
    }
