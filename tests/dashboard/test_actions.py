"""Acting from the pages and the API: the CLI's rules, refusals in plain Chinese, all audited."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from models.audit import AuditEvent
from models.campaign import StageDeadline
from models.case import Case
from tests.conftest import CLUSTER
from tests.dashboard.conftest import csrf_of, sign_in
from tests.dashboard.world import World

# The forms and the API call the same operations on both backends, tested on both in
# tests/models: SQLite only here (tests/README.md, rule 4), except one action from a page and
# the quota, whose count is taken under the database's lock.
pytestmark = pytest.mark.backends("sqlite")


def _case(world: World, key: str) -> Case:
    with world.db.read() as session:
        return session.exec(select(Case).where(Case.ref == world.refs[key])).one()


@pytest.mark.backends("sqlite", "postgresql")
def test_a_county_submits_from_the_case_page(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    ref = world.refs["xihu_core"]
    page = client.get(f"/cases/{ref}").text
    assert "提交申报" in page
    response = client.post(f"/cases/{ref}/act", data={"action": "submit", "csrf_token": csrf_of(client)})
    assert response.status_code == 200  # followed the redirect back to the case
    assert "已提交申报" in response.text
    assert _case(world, "xihu_core").state == "submitted"
    with world.db.read() as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.subject == f"case:{ref}").order_by(AuditEvent.seq.desc())
        ).first()  # type: ignore[attr-defined]
    assert event is not None and event.actor == "林西@330106" and event.to_value == "submitted"


def test_a_refusal_is_shown_in_plain_chinese_without_cli_flags(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    ref = world.refs["xihu_collab"]  # under the revenue threshold: 原则上, needs a reason
    response = client.post(f"/cases/{ref}/act", data={"action": "submit", "csrf_token": csrf_of(client)})
    assert "「提交申报」未执行" in response.text
    assert "原则上" in response.text
    assert "--override" not in response.text and "--reason" not in response.text
    assert _case(world, "xihu_collab").state == "draft"
    with world.db.read() as session:
        refusal = session.exec(
            select(AuditEvent).where(AuditEvent.action == "refusal", AuditEvent.subject == f"case:{ref}")
        ).first()
    assert refusal is not None
    # With the reason written in the page, it goes through and the override is recorded.
    response = client.post(
        f"/cases/{ref}/act",
        data={
            "action": "submit",
            "csrf_token": csrf_of(client),
            "override_revenue_threshold": "细分领域达到世界级水平，门槛可适当下调",
        },
    )
    assert "已提交申报" in response.text
    assert "已说明理由：细分领域达到世界级水平" in response.text


@pytest.mark.backends("sqlite", "postgresql")
def test_a_city_recommends_within_its_quota_and_is_refused_beyond_it(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    back = f"/campaigns/{CLUSTER}/cities/330100"
    for key in ("rs1", "rs2", "rs3"):
        client.post(
            f"/cases/{world.refs[key]}/act",
            data={"action": "recommend", "csrf_token": csrf_of(client), "back": back},
        )
    page = client.post(
        f"/cases/{world.refs['rs4']}/act",
        data={"action": "recommend", "csrf_token": csrf_of(client), "back": back},
    ).text
    assert "超出名额「杭州市“新星”产业群推荐数量不超过3个」" in page
    assert "已用 <strong>3</strong> / 上限 3" in page
    assert _case(world, "rs4").state == "submitted"


def test_a_reason_is_asked_for_where_the_rules_need_one(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    ref = world.refs["rs1"]
    page = client.get(f"/cases/{ref}").text
    assert 'name="reason" rows="2" required' in page  # 退回修改 needs a reason
    response = client.post(f"/cases/{ref}/act", data={"action": "return", "csrf_token": csrf_of(client)})
    assert "须填写理由" in response.text


def test_only_the_province_moves_a_deadline_and_the_move_is_audited(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    url = f"/campaigns/{CLUSTER}/stages/preliminary_review/deadline"
    assert (
        client.post(
            url, data={"due": "2026-07-20", "reason": "试", "csrf_token": csrf_of(client)}
        ).status_code
        == 403
    )
    client.cookies.clear()
    sign_in(client, world.token("province"))
    page = client.post(
        url, data={"due": "2026-07-20", "reason": "第三方机构进场时间确定", "csrf_token": csrf_of(client)}
    ).text
    assert "截止时间已调整为 2026-07-20（周一）24:00（第 2 版）" in page
    with world.db.read() as session:
        row = session.get(StageDeadline, (CLUSTER, "preliminary_review"))
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "deadline_change")).first()
    assert row is not None and row.version == 2
    assert event is not None and event.reason == "第三方机构进场时间确定"


def test_the_province_schedules_a_defence_with_a_local_time(client, world: World, make_ctx) -> None:  # type: ignore[no-untyped-def]
    from models.actions import perform

    ref = world.refs["rs1"]
    operator = make_ctx("2026-06-20T08:00")
    perform(world.db, operator, ref, "recommend")
    perform(world.db, operator, ref, "pass_preliminary")
    sign_in(client, world.token("province"))
    page = client.post(
        f"/cases/{ref}/act",
        data={"action": "schedule_defence", "at": "2026-08-10T09:00", "csrf_token": csrf_of(client)},
    ).text
    assert "已安排现场答辩" in page
    assert "2026-08-10（周一）09:00" in page


def test_a_city_uploads_its_sealed_letter_and_submits(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    rec = world.refs["rec_hangzhou_cl"]
    back = f"/campaigns/{CLUSTER}/cities/330100"
    refused = client.post(
        f"/cases/{rec}/act", data={"action": "submit", "csrf_token": csrf_of(client), "back": back}
    )
    assert "须上传签章版推荐函" in refused.text and "--letter" not in refused.text
    client.post(
        f"/cases/{rec}/act",
        data={"action": "attach", "csrf_token": csrf_of(client), "back": back},
        files={"letter": ("杭州市推荐函（签章）.pdf", b"%PDF-1.4 sealed", "application/pdf")},
    )
    page = client.post(
        f"/cases/{rec}/act", data={"action": "submit", "csrf_token": csrf_of(client), "back": back}
    ).text
    assert "已报送省经信厅" in page
    letter = client.get(f"/cases/{rec}/letter")
    assert letter.status_code == 200 and letter.content == b"%PDF-1.4 sealed"


def test_a_platform_pushes_a_status_change_by_external_id(client, world: World) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {world.token('hangzhou')}"}
    response = client.post(
        "/api/cases/by-external/SZJX-0003/actions",
        headers=headers,
        json={"action": "return", "reason": "佐证材料不全"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["case"]["state"] == "returned" and body["case"]["state_label"] == "退回修改"
    with world.db.read() as session:
        event = session.get(AuditEvent, body["audit_seq"])
    assert event is not None and event.reason == "佐证材料不全" and event.actor == "王明@330100"
    assert json.loads(event.details)["action"] == "return"


def test_the_api_answers_refusals_with_the_rule(client, world: World) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {world.token('xihu')}"}
    ref = world.refs["rs1"]
    tier = client.post(f"/api/cases/{ref}/actions", headers=headers, json={"action": "recommend"})
    assert tier.status_code == 403 and tier.json()["rule"] == "tier"
    assert "须由设区市操作" in tier.json()["detail"]
    state = client.post(
        f"/api/cases/{world.refs['xihu_core']}/actions", headers=headers, json={"action": "withdraw"}
    )
    assert state.status_code == 409 and state.json()["rule"] == "reason_required"


SEALED = "%PDF-1.4 sealed by 杭州市经济和信息化局".encode()


def _letters(runtime) -> list[str]:  # type: ignore[no-untyped-def]
    root = runtime.settings.home / "letters"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _events(world: World, ref: str) -> list[dict]:  # type: ignore[type-arg]
    with world.db.read() as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.subject == f"case:{ref}")).all()
    return [json.loads(e.details) | {"_action": e.action} for e in rows]


def test_a_refused_action_stores_no_uploaded_file(client, world: World, runtime) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    rec = world.refs["rec_hangzhou_cl"]
    page = client.post(
        f"/cases/{rec}/act",
        data={"action": "return", "reason": "试试", "csrf_token": csrf_of(client)},
        files={"letter": ("推荐函.pdf", SEALED, "application/pdf")},
    ).text
    assert "未执行" in page
    assert _letters(runtime) == []
    assert _case(world, "rec_hangzhou_cl").letter is None


def test_a_letter_must_be_a_pdf_ofd_or_image_by_its_content(client, world: World, runtime) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    rec = world.refs["rec_hangzhou_cl"]
    page = client.post(
        f"/cases/{rec}/act",
        data={"action": "attach", "csrf_token": csrf_of(client)},
        files={"letter": ("../../推荐函.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")},
    ).text
    assert "签章文件「推荐函.pdf」的内容不是 PDF 文件" in page
    assert _letters(runtime) == [] and _case(world, "rec_hangzhou_cl").letter is None


def test_a_letter_is_stored_by_digest_and_its_digest_is_audited(client, world: World, runtime) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    sign_in(client, world.token("hangzhou"))
    rec = world.refs["rec_hangzhou_cl"]
    client.post(
        f"/cases/{rec}/act",
        data={"action": "attach", "csrf_token": csrf_of(client)},
        files={"letter": ("../杭州市推荐函.pdf", SEALED, "application/pdf")},
    )
    digest = hashlib.sha256(SEALED).hexdigest()
    assert digest in _letters(runtime)  # the name a browser sent is data, never a path
    client.post(f"/cases/{rec}/act", data={"action": "submit", "csrf_token": csrf_of(client)})
    attach, submit = [e for e in _events(world, rec) if e["_action"] != "refusal"][-2:]
    expected = {"name": "杭州市推荐函.pdf", "sha256": digest, "size": len(SEALED)}
    assert attach["action"] == "attach" and attach["letter"] == expected
    assert submit["action"] == "submit" and submit["letter"] == expected
    letter = client.get(f"/cases/{rec}/letter")
    assert letter.content == SEALED and letter.headers["content-type"] == "application/pdf"


def test_the_api_takes_no_file_name_for_a_letter(client, world: World) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {world.token('hangzhou')}"}
    rec = world.refs["rec_hangzhou_cl"]
    named = client.post(
        f"/api/cases/{rec}/actions", headers=headers, json={"action": "attach", "letter": "推荐函.pdf"}
    )
    assert named.status_code == 422 and "letter 不接受文件名" in named.json()["detail"]
    made_up = client.post(
        f"/api/cases/{rec}/actions", headers=headers, json={"action": "submit", "letter_sha256": "0" * 64}
    )
    assert made_up.status_code == 422 and "没有 SHA-256 为" in made_up.json()["detail"]
    submit = client.post(f"/api/cases/{rec}/actions", headers=headers, json={"action": "submit"})
    assert submit.status_code == 409 and submit.json()["rule"] == "letter_missing"
    assert _case(world, "rec_hangzhou_cl").state == "draft"


def test_the_api_attaches_an_uploaded_letter_and_stores_it_only_on_success(
    client, world: World, runtime
) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    headers = {"Authorization": f"Bearer {world.token('hangzhou')}"}
    rec = world.refs["rec_hangzhou_cl"]
    refused = client.post(
        f"/api/cases/{rec}/letter",
        headers=headers,
        data={"action": "return", "reason": "试试"},
        files={"file": ("推荐函.pdf", SEALED, "application/pdf")},
    )
    assert refused.status_code == 409 and _letters(runtime) == []
    attached = client.post(
        f"/api/cases/{rec}/letter", headers=headers, files={"file": ("推荐函.pdf", SEALED, "application/pdf")}
    )
    assert attached.status_code == 200, attached.text
    digest = hashlib.sha256(SEALED).hexdigest()
    assert attached.json()["case"]["letter"] == "推荐函.pdf" and digest in _letters(runtime)
    submit = client.post(
        f"/api/cases/{rec}/actions", headers=headers, json={"action": "submit", "letter_sha256": digest}
    )
    assert submit.status_code == 200, submit.text
    assert _events(world, rec)[-1]["letter"] == {"name": "推荐函.pdf", "sha256": digest, "size": len(SEALED)}
