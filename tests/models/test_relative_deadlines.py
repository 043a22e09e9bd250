"""Relative deadlines: "N working days after / before" a stage, its completion, or a case's event.

The campaign file tests/fixtures/relative-deadlines.yaml uses each form once. 2026-06-19 (端午)
is a holiday, so counts that cross it show the calendar is the official one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from calendars.campaign import CampaignFileError, load_campaign_text
from calendars.timeutil import format_deadline, parse_deadline, parse_instant
from calendars.workdays import WorkCalendar
from models.actions import ActionRefused, perform, set_deadline
from models.audit import AuditEvent
from models.campaign import CaseDeadline, get_campaign, stage_deadline
from models.case import Case
from models.context import PLATFORM_SYNC, Actor
from models.db import Database
from models.registry import load_campaign, new_case
from notifications.wakeups import wakeups

FILE = Path(__file__).resolve().parents[1] / "fixtures" / "relative-deadlines.yaml"
CAMPAIGN = "2026-relative-test"
OPERATOR = Actor(name="tester", admin_reason="自动化测试")
LOADED = parse_instant("2026-06-01T09:00")


@pytest.fixture
def rel(seeded: Database, make_ctx: Any) -> Database:
    with seeded.write() as session:
        load_campaign(session, make_ctx(LOADED), FILE.read_text(encoding="utf-8"), origin=str(FILE))
    return seeded


def due(db: Database, stage_id: str) -> str:
    with db.read() as session:
        spec = get_campaign(session, CAMPAIGN).spec()
        value = stage_deadline(session, CAMPAIGN, spec.stage(stage_id)).due_at
    return format_deadline(value) if value else "另行通知"


def application(db: Database, make_ctx: Any, state: str = "draft") -> str:
    with db.write() as session:
        spec = get_campaign(session, CAMPAIGN).spec()
        case = new_case(
            session,
            make_ctx(LOADED),
            spec,
            kind="cluster_application",
            ref=f"CL25-9{session.exec(select(Case)).all().__len__():04d}",
            org_id="330106",
            city_code="330100",
            county_code="330106",
            title="西湖区",
            zone_type="collaborative",
            track="模型数据服务",
            attrs={},
        )
        return case.ref


def test_stage_deadlines_count_working_days_before_and_after_another_stage(rel: Database) -> None:
    # city_recommendation is due 07-03 (Fri) 24:00.
    assert due(rel, "county_check") == "2026-06-30（周二）24:00"  # 3 working days before 07-03
    assert due(rel, "city_letters") == "2026-07-07（周二）17:00"  # the 2nd working day after, at 17:00
    assert due(rel, "publicity") == "另行通知"  # the list is not published yet


def test_moving_the_anchor_re_plans_its_dependents_and_audits_each(rel: Database, make_ctx: Any) -> None:
    with rel.write() as session:
        set_deadline(
            session,
            make_ctx("2026-06-20T10:00"),
            CAMPAIGN,
            "city_recommendation",
            parse_deadline("2026-07-10"),
            "延期",
        )
    assert due(rel, "county_check") == "2026-07-07（周二）24:00"
    assert due(rel, "city_letters") == "2026-07-14（周二）17:00"
    with rel.read() as session:
        moves = session.exec(
            select(AuditEvent).where(AuditEvent.action == "deadline_change").order_by(AuditEvent.seq)
        ).all()
    letters = [e for e in moves if e.subject == f"stage:{CAMPAIGN}/city_letters"]
    assert [json.loads(e.details)["to_text"] for e in letters] == [
        "2026-07-07（周二）17:00",
        "2026-07-14（周二）17:00",
    ]
    assert json.loads(letters[-1].details)["from_text"] == "2026-07-07（周二）17:00"
    assert "设区市推荐" in letters[-1].reason and "截止时间调整" in letters[-1].reason
    with rel.read() as session:  # the replay agrees: every planned deadline is an event
        assert make_ctx(LOADED).audit.verify(session).ok


def test_a_publicity_period_counts_from_the_list_being_published(rel: Database, make_ctx: Any) -> None:
    ref = application(rel, make_ctx)
    with rel.write() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        case.state = "defence_held"  # its way there is other tests' business
        session.add(case)
    perform(rel, make_ctx("2026-08-03T10:00", OPERATOR), ref, "select")  # a Monday
    assert due(rel, "publicity") == "2026-08-10（周一）24:00"
    with rel.read() as session:
        spec = get_campaign(session, CAMPAIGN).spec()
        found = wakeups(session, WorkCalendar(), parse_instant("2026-08-01"), parse_instant("2026-09-01"))
        assert stage_deadline(session, CAMPAIGN, spec.stage("publicity")).version == 2
    assert f"{CAMPAIGN}/publicity 截止" in {w.what for w in found}


def test_a_returned_application_has_its_own_deadline_and_the_window_judges_it(
    rel: Database, make_ctx: Any
) -> None:
    ref = application(rel, make_ctx)
    perform(rel, make_ctx("2026-06-10T10:00", PLATFORM_SYNC), ref, "submit")
    perform(rel, make_ctx("2026-06-16T10:00", OPERATOR), ref, "return", reason="材料不全")
    with rel.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        row = session.get(CaseDeadline, (case.id, "resubmission"))
        assert row is not None and row.version == 1
        # 06-17, 06-18, (06-19 端午, weekend), 06-22, 06-23, 06-24: the 5th working day after.
        assert format_deadline(row.due_at) == "2026-06-24（周三）24:00"
        found = {w.what for w in wakeups(session, WorkCalendar(), LOADED, parse_instant("2026-07-01"))}
    assert f"{CAMPAIGN}/resubmission {ref} 截止" in found
    assert f"{CAMPAIGN}/resubmission {ref} 提醒 d-1wd" in found
    with pytest.raises(ActionRefused) as refused:
        perform(rel, make_ctx("2026-06-25T09:00", PLATFORM_SYNC), ref, "resubmit")
    assert refused.value.rule == "window_closed" and "退回后修改重报" in str(refused.value)


def test_returned_again_the_case_s_deadline_is_re_planned_and_audited(rel: Database, make_ctx: Any) -> None:
    ref = application(rel, make_ctx)
    perform(rel, make_ctx("2026-06-10T10:00", PLATFORM_SYNC), ref, "submit")
    perform(rel, make_ctx("2026-06-16T10:00", OPERATOR), ref, "return", reason="材料不全")
    perform(rel, make_ctx("2026-06-22T10:00", PLATFORM_SYNC), ref, "resubmit")  # in time
    perform(rel, make_ctx("2026-06-23T10:00", OPERATOR), ref, "return", reason="仍缺佐证")
    with rel.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        row = session.get(CaseDeadline, (case.id, "resubmission"))
        # In the order they were recorded: without ORDER BY, PostgreSQL returns rows in whatever
        # order its pages hold them, which after deletes need not be the order of insertion.
        events = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "case_deadline", AuditEvent.case_id == case.id)
            .order_by(col(AuditEvent.seq))
        ).all()
    assert row is not None and row.version == 2
    assert format_deadline(row.due_at) == "2026-06-30（周二）24:00"
    assert [(json.loads(e.details)["from_text"], json.loads(e.details)["to_text"]) for e in events] == [
        ("无", "2026-06-24（周三）24:00"),
        ("2026-06-24（周三）24:00", "2026-06-30（周二）24:00"),
    ]


def test_a_relative_deadline_must_name_a_known_stage_and_cannot_loop() -> None:
    text = FILE.read_text(encoding="utf-8")
    with pytest.raises(CampaignFileError, match="相对的环节 nowhere 不存在"):
        load_campaign_text(
            text.replace("before: {stage: city_recommendation}", "before: {stage: nowhere}"), origin="t"
        )
    looped = text.replace(
        "deadline: 2026-07-03\n", "deadline: {working_days: 1, after: {stage: city_letters}}\n"
    )
    with pytest.raises(CampaignFileError, match="循环引用"):
        load_campaign_text(looped, origin="t")
    with pytest.raises(CampaignFileError, match="after 或 before 二者之一"):
        load_campaign_text(text.replace("after: {stage: selection}", ""), origin="t")


def test_a_returned_application_s_county_is_reminded_of_its_own_deadline(
    rel: Database, make_ctx: Any
) -> None:
    from models.org import Contact
    from models.outbox import Email, Notification
    from notifications.compose import MailIdentity
    from notifications.reconcile import tick
    from notifications.render import Renderer

    with rel.write() as session:
        session.add(
            Contact(
                org_id="330106", name="李娜", email="xh@example.cn", programs="cluster", updated_at=LOADED
            )
        )
    ref = application(rel, make_ctx)
    perform(rel, make_ctx("2026-06-10T10:00", PLATFORM_SYNC), ref, "submit")
    perform(rel, make_ctx("2026-06-16T10:00", OPERATOR), ref, "return", reason="材料不全")
    # Due 06-24 24:00; the step 1 working day before goes out on 06-23 at 09:00.
    calendar, identity, renderer = WorkCalendar(), MailIdentity(), Renderer()
    with rel.write() as session:
        early = tick(session, make_ctx("2026-06-22T10:00"), calendar, identity, renderer)
        assert early.written["reminder"] == 0
        report = tick(session, make_ctx("2026-06-23T10:00"), calendar, identity, renderer)
        assert report.written["reminder"] == 1 and report.emails >= 1
        mails = session.exec(select(Email).where(Email.to_addr == "xh@example.cn")).all()
        mail = next(m for m in mails if "reminder" in m.kinds)
        assert ref in mail.text_body and "退回后修改重报" in mail.text_body
        assert "2026-06-24（周三）24:00" in mail.text_body
    # Returned again: the old reminder's version is over, a new one is planned for the new deadline.
    perform(rel, make_ctx("2026-06-23T11:00", PLATFORM_SYNC), ref, "resubmit")
    perform(rel, make_ctx("2026-06-23T15:00", OPERATOR), ref, "return", reason="仍缺佐证")
    with rel.write() as session:
        tick(session, make_ctx("2026-06-29T10:00"), calendar, identity, renderer)
        keys = session.exec(select(Notification.key).where(Notification.kind == "reminder")).all()
    assert sorted(k.split(":")[4] for k in keys) == ["v1", "v2"]


def test_a_cases_deadline_event_states_the_date_and_the_actions_label(rel: Database, make_ctx: Any) -> None:
    ref = application(rel, make_ctx)
    perform(rel, make_ctx("2026-06-10T10:00", PLATFORM_SYNC), ref, "submit")
    perform(rel, make_ctx("2026-06-16T10:00", OPERATOR), ref, "return", reason="材料不全")
    with rel.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "case_deadline", AuditEvent.case_id == case.id)
        ).one()
        from models.history import case_history

        shown = [i for i in case_history(session, case) if i.action == "case_deadline"]
    assert "2026-06-24（周三）24:00" in event.reason and "退回修改" in event.reason
    assert "「return」" not in event.reason
    # The timeline names the event and gives dates where a state change gives states.
    [item] = shown
    assert (item.action_label, item.to_label) == ("案件截止时间", "2026-06-24（周三）24:00")


def test_a_per_case_rule_names_the_action_by_its_label() -> None:
    from calendars.campaign import load_campaign_file

    sttt = load_campaign_file(
        Path(__file__).resolve().parents[2] / "calendars/campaigns/available/2026-sttt.yaml"
    )
    rule = sttt.stage("resubmission").relative
    assert rule is not None and rule.describe() == "本案件最近一次「退回修改」之后第 5 个工作日24:00"


def test_a_diff_words_a_per_case_rule_as_boards_do_and_sees_its_time_of_day() -> None:
    from calendars.campaign_diff import diff_campaigns

    path = Path(__file__).resolve().parents[2] / "calendars/campaigns/available/2026-sttt.yaml"
    text = path.read_text(encoding="utf-8")
    later = text.replace("after: {action: return}}", 'after: {action: return}, at: "17:00"}')
    changes = diff_campaigns(load_campaign_text(text, origin="v1"), load_campaign_text(later, origin="v2"))
    assert (
        "截止时间 本案件最近一次「退回修改」之后第 5 个工作日24:00 → 本案件最近一次「退回修改」之后第 5 个工作日17:00"
        in "；".join(changes)
    ), changes
