"""What a digest says on DingTalk and by SMS: the email's sections, within each channel's limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from calendars.timeutil import format_deadline, format_deadline_from
from notifications.channels.content import MARKDOWN_LIMIT, dingtalk_markdown, link_for, md, sms_text
from notifications.channels.sms import segment_count
from notifications.render import Renderer

NOW = datetime(2026, 6, 22, 1, 30, tzinfo=UTC)  # Monday 09:30 Shanghai
DUE = datetime(2026, 6, 25, 16, 0, tzinfo=UTC)  # 2026-06-25 (Thursday) 24:00 Shanghai


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def reminder(
    ref: str = "JQ-2026-0001", title: str = "余杭区智能物联产业集群", total: int = 1
) -> dict[str, Any]:
    return {
        "kind": "reminder",
        "program": "集群遴选",
        "campaign_name": "2026年第四批415X集群遴选",
        "stage_name": "网上申报",
        "stage_id": "apply",
        "instructions": "",
        "deadline_note": "",
        "step": "d3",
        "urgent": False,
        "deadline_text": format_deadline(DUE),
        "when_text": format_deadline_from(NOW, DUE),
        "working_days_left": 3,
        "remaining": "3天14小时",
        "overdue": False,
        "due_today": False,
        "last_working_day": False,
        "countdown_text": "还剩 3 个工作日，3天14小时",
        "items": [{"ref": ref, "title": title, "state": "草稿", "track": ""}],
        "total": total,
        "more": 0,
        "forwarded": [],
        "shown": [ref],
        "nothing_to_review": None,
    }


def notice(ref: str, title: str, reason: str = "") -> dict[str, Any]:
    return {
        "kind": "notice",
        "urgent": False,
        "campaign_name": "2026浙江制造精品",
        "ref": ref,
        "title": title,
        "label": "退回修改",
        "from": "待县级审核",
        "to": "退回修改",
        "reason": reason,
        "actor": "余杭区经信局/王芳",
        "at_text": "2026-06-22（周一）09:00",
        "defence_at": None,
    }


def test_user_text_cannot_make_markdown() -> None:
    assert md("**紧急** [点我](http://evil.example)") == "＊＊紧急＊＊ ［点我］（http://evil.example）"
    assert md("# 标题\n- 列表") == "＃ 标题 - 列表"
    assert md("-1") == "\u200b-1"


def test_markdown_digest_carries_the_deadline_and_escapes_titles(renderer: Renderer) -> None:
    out = dingtalk_markdown(
        renderer,
        [reminder(title="**抢先** [链接](http://x)"), notice("JP-9", "精品_申报", reason="材料<缺>")],
        contact_name="张*伟",
        dashboard_url="https://sb.example",
    )
    assert out.title == "申报提醒：2项事宜需要您关注"
    assert "2026-06-25（周四）24:00" in out.text
    assert "](" not in out.text and "**" not in out.text and "<缺>" not in out.text
    assert "张＊伟同志" in out.text
    assert out.link == "https://sb.example/"


def test_one_case_links_to_the_case(renderer: Renderer) -> None:
    out = dingtalk_markdown(renderer, [reminder()], contact_name="李明", dashboard_url="https://sb.example/")
    assert out.link == "https://sb.example/cases/JQ-2026-0001"
    assert out.title.startswith("【提醒】网上申报将于本周四（6月25日）24:00截止")
    assert link_for(None, [reminder()]) is None


def test_a_long_digest_stays_within_dingtalks_size(renderer: Renderer) -> None:
    # different reasons: 200 notices, not one group
    sections = [notice(f"JP-{i:04d}", f"第{i}号产品" * 8, reason=f"材料不全{i}" * 10) for i in range(200)]
    out = dingtalk_markdown(renderer, sections, contact_name="李明")
    assert len(out.text.encode()) <= MARKDOWN_LIMIT
    assert "项事宜未列出，请打开看板查看" in out.text


def test_sms_says_the_deadline_with_weekday_and_a_link(renderer: Renderer) -> None:
    text = sms_text(renderer, [reminder()], link="https://sb.example/c/JQ1")
    assert (
        text
        == "【提醒】网上申报将于本周四（6月25日）24:00截止，1项待办（还剩3个工作日） 详情：https://sb.example/c/JQ1"
    )
    assert segment_count("【申报提醒】" + text) <= 2


def test_a_long_sms_digest_keeps_within_the_segment_cap(renderer: Renderer) -> None:
    sections = [notice(f"JP-{i:04d}", f"精品{i}", reason=str(i)) for i in range(30)]
    text = sms_text(renderer, sections, link="https://sb.example/", max_segments=3)
    assert segment_count("【申报提醒】" + text) <= 3
    assert text.startswith("您有30项申报事宜：1.【通知】JP-0000")
    assert "等" in text and text.endswith("详情：https://sb.example/")


def test_one_headline_too_long_for_one_segment_is_shortened(renderer: Renderer) -> None:
    text = sms_text(renderer, [notice("JP-1", "很长的产品名称" * 30)], link=None, max_segments=1)
    assert segment_count("【申报提醒】" + text) == 1 and text.endswith("…")
