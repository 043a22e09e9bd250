"""Digests and the last look before sending, with the real dispatcher and a real SMTP server on loopback.

One email per recipient per run, carrying every item due for them; sections recomputed from the
database, and recomputed again just before the dispatcher hands the message over, so nobody is
chased for something done in the meantime; quiet hours hold ordinary mail until 08:30 of the next
working day, while a last-day reminder goes at once.
"""

from __future__ import annotations

from typing import Any

import pytest

import notifications.compose as compose_module
from models.db import Database
from models.outbox import CANCELLED, E_CANCELLED, E_PENDING, E_SENT, QUEUED
from notifications.loopback import LoopbackSMTP
from tests.conftest import CLUSTER, JINGPIN, built_world
from tests.models.spine import cluster_case, jingpin_case, roster_ref
from tests.notifications.world import (
    act,
    at,
    attempts,
    build_town,
    emails,
    move_deadline,
    notifications,
    send_at,
    tick_at,
    town_world,
)

RECHECK_REASON = "发送前复核：已办结或截止时间已调整，无需再发"


@pytest.fixture
def town(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "town", town_world)


@pytest.fixture
def smtp() -> Any:
    with LoopbackSMTP() as server:
        yield server


def text_of(smtp: LoopbackSMTP, i: int) -> str:
    return smtp.decoded(i).get_body(("plain",)).get_content().replace("\r\n", "\n")


def test_it_puts_everything_due_for_one_person_into_one_email(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        second = cluster_case(
            session, make_ctx("2026-06-01T10:00"), county="西湖区", subtrack="模型数据服务"
        ).ref
    act(db, make_ctx, "2026-06-15T10:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-17T16:00", town["xihu"], "return", "杭州市", reason="实施方案缺少年度目标")

    report = tick_at(db, make_ctx, "2026-06-18T09:00")
    send_at(db, "2026-06-18T09:00", smtp.port)

    mine = emails(db, contact_id=ids["xihu"])
    # 李娜's digest, 王强's reminder, and 陈静's digest (杭州市 hears of 西湖区's submission).
    assert len(mine) == 1 and report.emails == 3
    email = mine[0]
    assert (email.kinds, email.status, email.created_at) == (
        "notice,reminder",
        E_SENT,
        at("2026-06-18T09:00"),
    )
    assert email.subject == "【申报工作提醒】李娜，您有2项待办与通知（2026-06-18（周四）09:00）"
    assert {n.kind for n in notifications(db, email_id=email.id)} == {"notice", "reminder"}
    [received] = [i for i, m in enumerate(smtp.messages) if m.rcpt_tos == ("lina@xihu.example",)]
    text = text_of(smtp, received)
    assert f"{town['xihu']} 西湖区\n事项：退回修改" in text and "说明：实施方案缺少年度目标" in text
    assert f"· {second} 西湖区（模型数据服务） — 填报中" in text
    assert "尚未办理的事项（共 1 项）" in text  # the returned one is not chased as a draft
    assert len(smtp) == 3 and len(set(smtp.message_ids())) == 3


def test_it_lists_the_late_organisations_with_their_contact_details_in_an_escalation(
    seeded: Database, make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    town = build_town(seeded, make_ctx, keep_rosters=(roster_ref(CLUSTER, "330100"),))
    db, ids = town["db"], town["ids"]

    tick_at(db, make_ctx, "2026-06-08T09:30")
    send_at(db, "2026-06-08T09:30", smtp.port)

    [escalation] = emails(db, contact_id=ids["prov"])
    assert escalation.subject == (
        "【督办】报送工作人员信息汇总表（附件3）已于2026-06-05（周五）24:00截止，1个单位逾期未办理"
    )
    assert "杭州市：1 项" in escalation.text_body
    assert "联系人 陈静（处长） 手机 13905710003 邮箱 chenjing@hz.example" in escalation.text_body
    assert "陈静 13905710003 chenjing@hz.example" in escalation.html_body
    assert "RS26-CL-330100 杭州市工作人员信息汇总表" in escalation.text_body
    [overdue] = emails(db, contact_id=ids["hz"])
    assert (
        overdue.subject
        == "【逾期】报送工作人员信息汇总表（附件3）已于2026-06-05（周五）24:00截止，仍有1项未办理"
    )
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["chenjing@hz.example", "yml@jxt.example"]


def test_it_copies_the_province_on_a_late_county_from_the_ladder_round(
    town: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        ref = jingpin_case(session, make_ctx("2026-06-01T10:00"), county="西湖区").ref
    act(db, make_ctx, "2026-06-10T10:00", ref, "submit", "西湖区")
    tick_at(db, make_ctx, "2026-07-21T09:30")
    tick_at(db, make_ctx, "2026-07-23T09:30")

    [to_province] = emails(db, contact_id=ids["prov_jp"], created_at=at("2026-07-23T09:30"))
    assert "督办轮次：第 2 次" in to_province.text_body
    assert "西湖区：1 项" in to_province.text_body
    assert "联系人 李娜（科长） 手机 13905710001 邮箱 lina@xihu.example" in to_province.text_body
    # Round 1 goes to the city only (the province hears of the cities' own late recommendations).
    [first] = emails(db, contact_id=ids["prov_jp"], created_at=at("2026-07-21T09:30"))
    assert "各地经信部门审核把关" not in first.text_body and "西湖区" not in first.text_body


def test_it_holds_an_ordinary_notice_written_at_night_until_the_next_working_morning(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-15T10:00", town["xihu"], "submit", "西湖区")
    tick_at(db, make_ctx, "2026-06-18T09:00")
    send_at(db, "2026-06-18T09:00", smtp.port)  # 王强's d-7 reminder
    smtp.clear()
    act(db, make_ctx, "2026-06-18T22:00", town["xihu"], "return", "杭州市", reason="请补充链主企业名单")

    tick_at(db, make_ctx, "2026-06-18T22:00")
    [email] = emails(db, contact_id=ids["xihu"])
    night = send_at(db, "2026-06-18T22:00", smtp.port)
    holiday = send_at(db, "2026-06-19T10:00", smtp.port)  # 端午
    monday = send_at(db, "2026-06-22T08:30", smtp.port)

    assert (email.created_at, email.next_attempt_at, email.urgent) == (
        at("2026-06-18T22:00"),
        at("2026-06-22T08:30"),
        False,
    )
    assert (night.sent, holiday.sent, monday.sent) == (0, 0, 1)
    assert [m.rcpt_tos for m in smtp.messages] == [("lina@xihu.example",)]


def test_it_sends_a_last_day_reminder_outside_working_hours_at_once(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    tick_at(db, make_ctx, "2026-06-25T18:00")  # last-hours: 6 hours before 24:00, urgent

    [email] = emails(db, contact_id=ids["xihu"])
    report = send_at(db, "2026-06-25T18:00", smtp.port)

    assert (email.urgent, email.next_attempt_at) == (True, at("2026-06-25T18:00"))
    assert email.subject.startswith("【今日截止】线上申报")
    assert report.sent == 2 and len(smtp) == 2


def test_it_cancels_a_reminder_when_the_case_is_submitted_between_compose_and_send(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    tick_at(db, make_ctx, "2026-06-18T09:00")
    [email] = emails(db, contact_id=ids["xihu"])
    act(db, make_ctx, "2026-06-18T09:02", town["xihu"], "submit", "西湖区")

    report = send_at(db, "2026-06-18T09:05", smtp.port)

    assert [m.rcpt_tos for m in smtp.messages] == [("wangqiang@yuhang.example",)]
    assert (report.sent, report.cancelled) == (1, 1)
    [row] = emails(db, id=email.id)
    assert row.status == E_CANCELLED
    assert [(a.outcome, a.at) for a in attempts(db, email.id)] == [("cancelled", at("2026-06-18T09:05"))]
    [reminder] = notifications(db, email_id=email.id)
    assert (reminder.status, reminder.status_reason) == (CANCELLED, RECHECK_REASON)


def test_it_shortens_a_reminder_to_what_is_still_undone_just_before_sending(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        second = cluster_case(
            session, make_ctx("2026-06-01T10:00"), county="西湖区", subtrack="模型数据服务"
        ).ref
    tick_at(db, make_ctx, "2026-06-22T09:00")
    [email] = emails(db, contact_id=ids["xihu"])
    assert "2项待办" in email.subject
    act(db, make_ctx, "2026-06-22T09:01", town["xihu"], "submit", "西湖区")

    send_at(db, "2026-06-22T09:02", smtp.port)

    [i] = [i for i, m in enumerate(smtp.messages) if m.rcpt_tos == ("lina@xihu.example",)]
    message = smtp.decoded(i)
    assert message["Subject"] == (
        "【提醒】线上申报（申报信息表、实施方案及佐证材料）将于2026-06-25（周四）24:00截止，1项待办（还剩3个工作日）"
    )
    assert message["Message-ID"] == email.message_id  # the same message, shortened
    text = text_of(smtp, i)
    assert second in text and town["xihu"] not in text
    [row] = emails(db, id=email.id)
    assert (row.status, row.subject) == (E_SENT, message["Subject"])


def test_it_restates_the_total_when_a_case_the_digest_does_not_list_is_done_before_sending(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A digest lists its first ITEM_LIMIT cases and states the total; what it remembers as shown
    # is just that (not every waiting case), and the pre-send recheck still catches a change
    # among the cases it only counts. One listed case here stands for thirty.
    monkeypatch.setattr(compose_module, "ITEM_LIMIT", 1)
    db, ids = town["db"], town["ids"]
    with db.write() as session:
        unlisted = cluster_case(
            session, make_ctx("2026-06-01T10:00"), county="西湖区", subtrack="模型数据服务"
        ).ref
    assert town["xihu"] < unlisted
    tick_at(db, make_ctx, "2026-06-22T09:00")
    [email] = emails(db, contact_id=ids["xihu"])
    assert "2项待办" in email.subject
    [reminder] = notifications(db, email_id=email.id)
    assert (reminder.payload["shown"], reminder.payload["shown_counts"]) == ([town["xihu"]], [2])
    act(db, make_ctx, "2026-06-22T09:01", unlisted, "submit", "西湖区")

    send_at(db, "2026-06-22T09:02", smtp.port)

    [i] = [i for i, m in enumerate(smtp.messages) if m.rcpt_tos == ("lina@xihu.example",)]
    assert "1项待办" in smtp.decoded(i)["Subject"]
    text = text_of(smtp, i)
    assert town["xihu"] in text and unlisted not in text
    [row] = emails(db, id=email.id)
    assert row.status == E_SENT and "1项待办" in row.subject


def test_it_cancels_a_queued_reminder_when_the_deadline_moves_before_it_is_sent(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-15T10:00", town["yuhang"], "submit", "余杭区")
    tick_at(db, make_ctx, "2026-06-18T09:00")
    move_deadline(db, make_ctx, "2026-06-18T09:01", CLUSTER, "application", "2026-06-30 24:00")

    send_at(db, "2026-06-18T09:02", smtp.port)
    tick_at(db, make_ctx, "2026-06-18T09:03")
    send_at(db, "2026-06-18T09:03", smtp.port)

    [old, notice] = emails(db, contact_id=ids["xihu"])
    assert (old.status, notice.status) == (E_CANCELLED, E_SENT)
    assert notice.subject == (
        "【时间调整】第四批省级重点产业集群核心区协同区和“新星”产业群遴选："
        "线上申报（申报信息表、实施方案及佐证材料）截止时间调整为2026-06-30（周二）24:00"
    )
    # 杭州市 hears of the submission and the move (it supervises the stage); 西湖区 of the move once.
    [i] = [i for i, m in enumerate(smtp.messages) if m.rcpt_tos == ("lina@xihu.example",)]
    assert {m.rcpt_tos for m in smtp.messages} == {("lina@xihu.example",), ("chenjing@hz.example",)}
    assert "2026-06-25（周四）24:00" not in text_of(smtp, i).split("原为")[0]


def test_it_does_not_send_a_reminder_that_was_held_until_after_its_deadline(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    # 杭州市's cluster recommendation: the last-day reminder is written at 08:30 on 07-03, but the
    # mail server is down all day; by the next attempt the deadline has passed and the overdue
    # notice and the escalation say what there is to say: "还剩 -1 个工作日" must not go out.
    tick_at(db, make_ctx, "2026-06-26T00:00")  # the drafts lapse; the notices go out
    send_at(db, "2026-06-26T08:30", smtp.port)
    smtp.clear()
    tick_at(db, make_ctx, "2026-07-03T08:30")
    [email] = emails(db, contact_id=ids["hz"], created_at=at("2026-07-03T08:30"))
    assert email.kinds == "reminder" and email.subject.startswith("【今日截止】设区市审核推荐")

    report = send_at(db, "2026-07-04T10:00", smtp.port)

    assert (report.sent, report.cancelled) == (0, 1)
    assert emails(db, id=email.id)[0].status == E_CANCELLED
    assert len(smtp) == 0


def test_it_cancels_what_was_due_for_a_contact_no_longer_on_the_roster(
    town: dict[str, Any], make_ctx: Any
) -> None:
    from models.org import Contact

    db, ids = town["db"], town["ids"]
    with db.write() as session:
        contact = session.get(Contact, ids["xihu"])
        assert contact is not None
        contact.active = False
        session.add(contact)
    # The row is written before the contact leaves; compose finds the contact gone.
    act(db, make_ctx, "2026-06-15T10:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-17T16:00", town["xihu"], "return", "杭州市", reason="补充材料")
    tick_at(db, make_ctx, "2026-06-17T16:00")

    assert emails(db, contact_id=ids["xihu"]) == []
    assert not [n for n in notifications(db) if n.contact_id == ids["xihu"] and n.status == QUEUED]


def test_it_keeps_state_change_notices_queued_and_sends_them_unchanged(
    town: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = town["db"], town["ids"]
    act(db, make_ctx, "2026-06-15T10:00", town["xihu"], "submit", "西湖区")
    act(db, make_ctx, "2026-06-29T10:00", town["xihu"], "recommend", "杭州市")
    tick_at(db, make_ctx, "2026-06-29T10:00")
    [email] = emails(db, contact_id=ids["xihu"])
    assert email.status == E_PENDING

    send_at(db, "2026-06-29T10:01", smtp.port)

    assert smtp.messages[0].raw == emails(db, id=email.id)[0].raw
    assert smtp.decoded(0)["Subject"] == f"【通知】{town['xihu']} 西湖区：推荐（市级已推荐）"
    assert JINGPIN  # both campaigns are loaded; only the cluster one speaks here


def test_it_lists_each_county_only_its_own_drafts_when_many_are_reminded_at_once(
    seeded: Database, make_ctx: Any
) -> None:
    # Twelve counties reminded in one run: compose reads the stage's open cases once, not per
    # county, and each county must still see exactly its own drafts (a park's under its county).
    from tests.models.spine import code
    from tests.notifications.world import add_contact, quiet_rosters

    counties = [
        "上城区",
        "拱墅区",
        "西湖区",
        "滨江区",
        "萧山区",
        "余杭区",
        "临平区",
        "钱塘区",
        "富阳区",
        "临安区",
        "桐庐县",
        "淳安县",
    ]
    mine: dict[str, set[str]] = {}
    with seeded.write() as session:
        ctx = make_ctx("2026-06-01T10:00")
        for i, county in enumerate(counties):
            refs = {cluster_case(session, ctx, county=county).ref}
            if i % 3 == 0:
                refs.add(
                    cluster_case(
                        session, ctx, county=county, applicant=f"{county}智造园", subtrack="模型数据服务"
                    ).ref
                )
            mine[county] = refs
    for county in counties:
        add_contact(seeded, county, f"{county}联系人", f"{code(county)}@county.example")
    quiet_rosters(seeded, make_ctx)

    tick_at(seeded, make_ctx, "2026-06-18T09:00")

    import re

    for county in counties:
        [email] = [e for e in emails(seeded) if e.to_addr == f"{code(county)}@county.example"]
        assert set(re.findall(r"CL26-\d{5}", email.text_body)) == mine[county], county


def test_a_stage_read_whole_finds_what_the_queries_of_a_few_organisations_find(
    seeded: Database, make_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many organisations asked about one stage read it in one pass (_StageSummary: counts per
    # group, first refs per acting organisation); a few ask SQL directly (_pending_cases). Both
    # must give the same first cases and totals, a county with its parks' cases included once.
    from models.campaign import get_campaign
    from notifications.compose import _pending_cases, _StageSummary
    from tests.models.spine import code

    monkeypatch.setattr(compose_module, "ITEM_LIMIT", 2)
    with seeded.write() as session:
        ctx = make_ctx("2026-06-01T10:00")
        tracks = iter([("人工智能", "智能终端"), ("人工智能", "模型数据服务"), ("人工智能", "算力基础设施")])
        parks = set()
        for park in ("衢州智造新城管委会", "衢州智造新城管委会", "柯城经济开发区管委会"):
            cluster, subtrack = next(tracks)
            case = cluster_case(
                session, ctx, county="柯城区", applicant=park, cluster=cluster, subtrack=subtrack
            )
            parks.add(case.org_id)
        cluster_case(session, ctx, county="柯城区", cluster="高端软件", subtrack="工业软件")
        cluster_case(session, ctx, county="西湖区")
        spec = get_campaign(session, CLUSTER).spec()
        xihu, kecheng = code("西湖区"), code("柯城区")
        asked = [
            [xihu],
            [kecheng],
            [kecheng, *sorted(parks)],
            *([p] for p in sorted(parks)),
            [sorted(parks)[0], xihu],
            [],
        ]
        for stage in spec.stages:
            if stage.actor not in ("county", "city") or stage.subject != "application":
                continue
            summary = _StageSummary(session, CLUSTER, stage)
            orgs_sets = (
                asked
                if stage.actor == "county"
                else [[code("杭州市")], [code("衢州市")], [code("衢州市"), code("杭州市")]]
            )
            for orgs in orgs_sets:
                assert summary.waiting(orgs) == _pending_cases(session, CLUSTER, stage, orgs), (
                    stage.id,
                    orgs,
                )
            if stage.actor == "county":
                head, total = summary.waiting([kecheng, *parks])
                assert total == 4 and len(head) == 2  # counted once, listed up to ITEM_LIMIT
