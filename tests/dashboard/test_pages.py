"""What coordinators read: the campaign with its charts, the board, mail, the audit check."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from dashboard.charts import progress_chart
from dashboard.queries import stage_progress
from models.campaign import get_campaign
from models.org import Contact, Organisation
from models.outbox import DeliveryAttempt, Email
from tests.conftest import CLUSTER
from tests.dashboard.conftest import sign_in
from tests.dashboard.world import NOW, World

# The web layer issues no SQL of its own that differs by backend: SQLite only (tests/README.md,
# rule 4), except the pages whose queries aggregate (GROUP BY, min over timestamps, counts by
# status and channel) or replay the audit against rows changed behind the engine's back.
pytestmark = pytest.mark.backends("sqlite")


def test_the_campaign_page_draws_a_timeline_and_a_chart_per_stage(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    page = client.get(f"/campaigns/{CLUSTER}").text
    assert page.count('<svg class="chart"') == 6
    assert '<svg class="timeline"' in page and "今天" in page
    assert "2026-06-25（周四）24:00" in page
    assert "还剩 4 个工作日" in page  # 06-22..06-25; 06-20 is a Saturday
    assert "已逾期" in page  # the roster stage closed on 06-05 with all 11 cities pending


@pytest.mark.backends("sqlite", "postgresql")
def test_the_progress_counts_people_acting_not_the_engine(world: World) -> None:
    with world.db.read() as session:
        campaign = get_campaign(session, CLUSTER)
        stage = campaign.spec().stage("application")
        province = session.get(Organisation, "330000")
        assert province is not None
        p = stage_progress(session, campaign, stage, stage.deadline, province, NOW)
    assert (p.total, p.acted) == (7, 5)
    by_day = dict(p.acted_by_day)
    assert (by_day[date(2026, 6, 9)], by_day[date(2026, 6, 10)]) == (0, 5)  # all five submitted on 06-10
    svg = progress_chart(p)
    assert "已办 5" in svg and "应办 7" in svg and "截止 6/25" in svg


@pytest.mark.backends("sqlite", "postgresql")
def test_the_board_drills_down_and_marks_overdue_cases(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    cities = client.get(f"/campaigns/{CLUSTER}/board?kind=roster").text
    assert "逾期 1" in cities and 'class="num late"' in cities
    counties = client.get(f"/campaigns/{CLUSTER}/board?city=330100").text
    assert "萧山区" in counties and "鄞州区" not in counties
    applicants = client.get(f"/campaigns/{CLUSTER}/board?county=330109").text
    assert "萧山信息港小镇管委会" in applicants and "西湖云谷" not in applicants
    filtered = client.get(f"/campaigns/{CLUSTER}/board", params={"state": "draft"}).text
    assert "案件（共 2 个）" in filtered


def test_a_city_starts_at_its_counties(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    page = client.get(f"/campaigns/{CLUSTER}/board").text
    assert "县（市、区）</th>" in page and "西湖区" in page and "温州市" not in page


def test_the_case_page_shows_fields_findings_actions_and_history(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    page = client.get(f"/cases/{world.refs['xihu_collab']}").text
    assert "2025年集群规上企业营业收入（亿元）" in page
    assert "低于规模门槛" in page and 'name="override_revenue_threshold"' in page
    assert "提交申报" in page and "撤回申报" in page
    assert "办理记录" in page and "新建案件" in page


def test_the_notification_log_shows_failures_and_retries(client, world: World) -> None:  # type: ignore[no-untyped-def]
    with world.db.write() as session:
        contact = session.exec(select(Contact).where(Contact.email == "wangming@hz.gov.cn")).one()
        mail = Email(
            key="k1",
            message_id="<k1@shenbao>",
            contact_id=contact.id,
            to_addr=contact.email,
            to_name=contact.name,
            subject="【催办】报送工作人员信息汇总表已逾期",
            text_body="",
            html_body="",
            raw=b"",
            kinds="escalation",
            created_at=NOW - timedelta(hours=2),
            next_attempt_at=NOW,
            status="retry",
            attempts=1,
            last_error="421 try later",
        )
        session.add(mail)
        session.flush()
        session.add(
            DeliveryAttempt(
                email_id=mail.id,
                at=NOW - timedelta(hours=1),
                worker="w1",
                outcome="temporary",
                smtp_code=421,
                detail="try later",
            )
        )
    sign_in(client, world.token("hangzhou"))
    page = client.get("/notifications").text
    assert "【催办】报送工作人员信息汇总表已逾期" in page and "等待重试" in page
    assert "暂时失败（将重试）（421）" in page and "逾期督办" in page
    api = client.get("/api/notifications").json()
    assert api["email_counts"] == {"retry": 1}
    assert api["emails"][0]["attempt_log"][0]["smtp_code"] == 421


def test_the_audit_page_detects_a_changed_record(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    assert "审计链完好" in client.get("/audit").text
    with world.db.writer.begin() as conn:
        conn.execute(text("UPDATE audit_event SET reason = '篡改' WHERE seq = 3"))
    page = client.get("/audit").text
    assert "审计链发现" in page and "第 3 条" in page
    client.cookies.clear()
    sign_in(client, world.token("xihu"))
    page = client.get("/audit").text
    assert "审计链发现" in page and "问题明细仅省级用户可见" in page
    assert client.get("/api/audit/verify").json()["problems"] == []


@pytest.mark.backends("sqlite", "postgresql")
def test_the_audit_page_names_a_case_whose_state_was_changed_without_an_event(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    with world.db.writer.begin() as conn:
        ref = conn.execute(text("SELECT min(ref) FROM \"case\" WHERE ref LIKE 'CL26-%'")).scalar()
        conn.execute(text("UPDATE \"case\" SET state = 'selected' WHERE ref = :ref"), {"ref": ref})
    assert "审计链发现" in (page := client.get("/audit").text) and ref in page
    api = client.get("/api/audit/verify").json()
    assert api["ok"] is False and [p["kind"] for p in api["problems"]] == ["state"]


def test_the_openapi_schema_documents_response_models(client) -> None:  # type: ignore[no-untyped-def]
    schema = client.get("/api/openapi.json").json()
    post = schema["paths"]["/api/cases/{ref}/actions"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ActionOut")
    assert "409" in post["responses"]
    assert "/api/cases/by-external/{external_id}/actions" in schema["paths"]
    assert {"CaseDetail", "BoardOut", "RecommendationOut", "MailLogOut", "AuditOut"} <= set(
        schema["components"]["schemas"]
    )


def test_the_api_reference_is_readable_without_a_cdn(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/api/docs").text
    assert "/api/cases/by-external/{external_id}/actions" in page and "ActionOut" in page
    assert "cdn" not in page.lower()


def test_a_countys_campaign_page_charts_only_the_stages_that_concern_it(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    page = client.get(f"/campaigns/{CLUSTER}").text
    assert page.count('<svg class="chart"') == 1  # 线上申报; the rest are the city's and the province's
    assert "2026-06-25（周四）24:00" in page


def test_the_case_page_names_the_applicant_once(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    page = client.get(f"/cases/{world.refs['xihu_core']}").text
    assert page.count("<th>申报单位</th>") == 1
    assert page.count("<th>细分赛道</th>") + page.count("<th>赛道</th>") == 1


def test_a_board_row_of_a_county_applying_for_itself_says_its_name_once(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    page = client.get(f"/campaigns/{CLUSTER}/board", params={"q": world.refs["xihu_core"]}).text
    row = page.split(f">{world.refs['xihu_core']}</a>")[1].split("</tr>")[0]
    assert row.count("西湖区") == 1 and "杭州市" in row


@pytest.mark.backends("sqlite", "postgresql")
def test_the_notification_log_shows_each_channels_messages_and_dead_letters(client, world: World) -> None:  # type: ignore[no-untyped-def]
    from models.channels import ChannelAttempt, ChannelItem, ChannelMessage
    from models.outbox import Notification

    with world.db.write() as session:
        contact = session.exec(select(Contact).where(Contact.email == "wangming@hz.gov.cn")).one()
        note = Notification(
            key="t:zzd:1",
            kind="escalation",
            contact_id=int(contact.id),  # type: ignore[arg-type]
            email_addr=contact.email,
            due_at=NOW,
            created_at=NOW,
            status="queued",
        )
        dead = ChannelMessage(
            key="c:zzd:1",
            channel="zzd",
            address="13900000009",
            contact_id=contact.id,
            to_name=contact.name,
            title="【督办】报送工作人员信息汇总表已逾期",
            text="###",
            created_at=NOW - timedelta(hours=1),
            next_attempt_at=NOW,
            status="dead",
            attempts=1,
            last_error="60121 找不到该用户",
        )
        session.add_all([note, dead])
        session.flush()
        session.add(ChannelItem(message_id=int(dead.id), notification_id=int(note.id)))  # type: ignore[arg-type]
        session.add(
            ChannelAttempt(
                message_id=int(dead.id),  # type: ignore[arg-type]
                channel="zzd",
                at=NOW - timedelta(hours=1),
                worker="w1",
                outcome="permanent",
                code="60121",
                detail="找不到该用户",
            )
        )
    sign_in(client, world.token("hangzhou"))
    page = client.get("/notifications").text
    assert "浙政钉：已发送 0 · 待发 0</span><strong>死信 1" in page
    assert "【督办】报送工作人员信息汇总表已逾期" in page and "永久失败（60121）" in page
    api = client.get("/api/notifications").json()
    assert api["channel_counts"] == {"zzd": {"dead": 1}}
    assert api["channel_messages"][0]["attempt_log"][0]["code"] == "60121"
    # Outside Hangzhou the message is not in reach.
    client.cookies.clear()
    sign_in(client, world.token("xihu"))
    assert client.get("/api/notifications").json()["channel_messages"] == []
