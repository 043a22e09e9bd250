"""The forms a city sends up are the campaign file's data (``exports:``): the 2026 files give
exactly the workbooks the code used to build, a campaign declaring its own gets one with no
code, one not declaring it gets a clear 404, and validate names the line and key of a bad column."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest
from openpyxl import load_workbook

from calendars.campaign import CAMPAIGN_DIR, CampaignFileError, load_campaign_file, load_campaign_text
from dashboard import exports
from models.actions import perform
from tests.conftest import CLUSTER, JINGPIN
from tests.dashboard.conftest import sign_in
from tests.dashboard.world import World

pytestmark = pytest.mark.backends("sqlite")

# Captured from the code-built forms before they became data (commit "capture today's …").
GOLDEN = json.loads((Path(__file__).parent / "golden" / "exports-2026.json").read_text(encoding="utf-8"))


def _layout(content: bytes) -> dict[str, object]:
    ws = load_workbook(BytesIO(content)).active
    assert ws is not None
    return {
        "title": ws.title,
        "values": [list(r) for r in ws.iter_rows(values_only=True)],
        "merged": sorted(str(m) for m in ws.merged_cells.ranges),
        "widths": {k: v.width for k, v in sorted(ws.column_dimensions.items())},
        "heights": {str(k): v.height for k, v in sorted(ws.row_dimensions.items()) if v.height},
        "fonts": [[[c.font.name, c.font.size, bool(c.font.bold)] for c in row] for row in ws.iter_rows()],
        "borders": [[bool(c.border.left.style) for c in row] for row in ws.iter_rows()],
        "freeze": ws.freeze_panes,
        "print": [
            ws.page_setup.orientation,
            ws.page_setup.paperSize,
            ws.page_setup.fitToWidth,
            ws.page_setup.fitToHeight,
        ],
    }


def test_the_2026_files_give_the_forms_the_code_used_to_build(client, world: World, make_ctx) -> None:  # type: ignore[no-untyped-def]
    operator = make_ctx("2026-06-20T08:00")
    ref = world.refs["jp_xihu"]
    for action in ("submit", "approve", "recommend"):
        perform(world.db, operator, ref, action)
    sign_in(client, world.token("hangzhou"))
    for name, url in {
        "summary-jingpin-330100": f"/exports/{JINGPIN}/cities/330100/jingpin-summary.xlsx",
        "roster-cluster-330100": f"/exports/{CLUSTER}/cities/330100/roster.xlsx",
        "roster-jingpin-330100": f"/exports/{JINGPIN}/cities/330100/roster.xlsx",
    }.items():
        response = client.get(url)
        assert response.status_code == 200, name
        got = {"filename": response.headers["content-disposition"], **_layout(response.content)}
        assert json.loads(json.dumps(got, ensure_ascii=False, default=str)) == GOLDEN[name], name
    # The campaign-neutral address serves the same form.
    same = client.get(f"/exports/{JINGPIN}/cities/330100/recommendation-summary.xlsx")
    assert _layout(same.content)["values"] == GOLDEN["summary-jingpin-330100"]["values"]


def test_a_campaign_without_a_summary_is_told_so(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    response = client.get(f"/exports/{CLUSTER}/cities/330100/recommendation-summary.xlsx")
    assert response.status_code == 404
    assert "没有推荐汇总表（exports.recommendation_summary）" in response.text


def test_a_new_campaign_gets_its_own_summary_from_its_file_alone() -> None:
    spec = load_campaign_file(CAMPAIGN_DIR / "available" / "2026-zjtx.yaml")
    form = spec.exports.recommendation_summary
    assert form is not None and spec.exports.roster is None
    line = {
        "enterprise": '=HYPERLINK("http://x")',
        "credit_code": "91330100MA2XXXXX0A",
        "county": "西湖区",
        "track": "工业基础领域",
        "score": 82,
    }
    sheet = exports.recommendation_summary_form(
        form, year=spec.issued.year, city="杭州市", filler="王明", phone="13800000001", lines=[line]
    )
    ws = load_workbook(BytesIO(exports.official_form_xlsx(sheet))).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0][0] == "附件4" and rows[1][0] == "2026年度浙江省专精特新中小企业推荐汇总表"
    assert rows[2][0] == "推荐单位（盖章）：杭州市经济和信息化局"
    assert rows[3] == [
        "序号",
        "企业名称",
        "统一社会信用代码",
        "所在县（市、区）",
        "主导产品所属领域",
        "专精特新评价得分",
    ]
    assert rows[4] == [1, line["enterprise"], "91330100MA2XXXXX0A", "西湖区", "工业基础领域", 82]
    cell = ws.cell(row=5, column=2)
    assert cell.data_type == "s" and cell.quotePrefix  # issue 8: a user's text is never a formula
    texts = [r[0] for r in rows if r[0]]
    assert (
        "联系人：王明" in texts
        and "联系电话：13800000001" in texts
        and texts[-1].startswith("注：按推荐顺序")
    )


def test_validate_names_the_line_and_key_of_a_column_that_is_no_form_field() -> None:
    text = (CAMPAIGN_DIR / "available" / "2026-zjtx.yaml").read_text(encoding="utf-8")
    bad = text.replace("field: credit_code, width: 24", "field: credit_no, width: 24", 1)
    with pytest.raises(CampaignFileError) as caught:
        load_campaign_text(bad, origin="f.yaml")
    line = next(i for i, x in enumerate(bad.splitlines(), 1) if "credit_no" in x)
    message = str(caught.value)
    assert (
        f"exports.recommendation_summary.columns[2].field: 第{line}行：列「统一社会信用代码」的 field「credit_no」不是申报表的字段"
        in message
    )
    neither = text.replace('{header: 序号, value: "{n}", width: 8}', "{header: 序号, width: 8}", 1)
    with pytest.raises(CampaignFileError, match="须写 field"):
        load_campaign_text(neither, origin="f.yaml")
    roster = (CAMPAIGN_DIR / "2026-cluster-selection.yaml").read_text(encoding="utf-8")
    with pytest.raises(CampaignFileError, match="应为联系人的"):
        load_campaign_text(
            roster.replace("field: mobile, width: 22", "field: phone, width: 22", 1), origin="f.yaml"
        )


@pytest.mark.usefixtures("campaigns_forgotten")
def test_the_route_serves_a_new_campaign_s_summary_with_no_code(client, world: World, make_ctx) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from dashboard.auth import issue_token
    from models.actions import act
    from models.case import Case
    from models.imports import import_cases
    from models.org import Contact, Organisation
    from models.registry import load_campaign

    zjtx = CAMPAIGN_DIR / "available" / "2026-zjtx.yaml"
    with world.db.write() as session:
        campaign, _ = load_campaign(
            session, make_ctx("2026-07-01T09:00"), zjtx.read_text(encoding="utf-8"), origin="t"
        )
        import_cases(
            session, make_ctx("2026-07-02T09:00"), campaign.id, zjtx.with_name("2026-zjtx.sample.csv")
        )
        cases = session.exec(
            select(Case)
            .where(
                Case.campaign_id == campaign.id, Case.city_code == "330100", Case.kind == "zjtx_application"
            )
            .order_by(Case.ref)
        ).all()
        listed, waiting = cases[0], cases[1]
        for action in ("submit", "approve", "recommend"):
            act(session, make_ctx("2026-07-03T10:00"), listed, action)
        act(session, make_ctx("2026-07-03T10:00"), waiting, "submit")  # not on the list: not in the form
        contact = Contact(
            org_id="330100",
            name="周专",
            email="zhou@hz.gov.cn",
            programs="zjtx",
            mobile="13900000009",
            updated_at=make_ctx("2026-07-01T09:00").now,
        )
        session.add(contact)
        session.flush()
        city = session.get(Organisation, "330100")
        assert city is not None
        token = issue_token(session, contact, city, make_ctx("2026-07-01T09:00").now, days=90).token
        listed_title, listed_attrs = listed.title, dict(listed.attrs)
    sign_in(client, token)
    response = client.get(f"/exports/{campaign.id}/cities/330100/recommendation-summary.xlsx")
    assert response.status_code == 200, response.text
    assert "filename*=UTF-8''%E9%99%84%E4%BB%B64_" in response.headers["content-disposition"]  # 附件4_
    ws = load_workbook(BytesIO(response.content)).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0][0] == "附件4" and rows[2][0] == "推荐单位（盖章）：杭州市经济和信息化局"
    body = [r for r in rows[4:] if isinstance(r[0], int)]
    assert len(body) == 1
    assert body[0][3] == "西湖区" and str(body[0][5]) == str(listed_attrs["score"])
    assert (
        body[0][:3] == [1, listed_title, listed_attrs["credit_code"]] and body[0][4] == listed_attrs["track"]
    )
    texts = [r[0] for r in rows if r[0]]
    assert "联系人：周专" in texts and "联系电话：13900000009" in texts
    # The campaign declares no roster: told so, not served another campaign's.
    missing = client.get(f"/exports/{campaign.id}/cities/330100/roster.xlsx")
    assert missing.status_code == 404 and "没有工作人员信息汇总表（exports.roster）" in missing.text


def test_diff_says_what_changed_in_a_form() -> None:
    from calendars.campaign_diff import diff_campaigns

    text = (CAMPAIGN_DIR / "available" / "2026-zjtx.yaml").read_text(encoding="utf-8")
    old = load_campaign_text(text, origin="old.yaml")
    new = load_campaign_text(
        text.replace("{header: 专精特新评价得分,", "{header: 评价得分,", 1), origin="new.yaml"
    )
    lines = diff_campaigns(old, new)
    assert any(line.startswith("上报的表格（exports）") and "评价得分" in line for line in lines), lines
