"""A window closing: who is told of a lapse hears it once, as the list of their organisation's cases.

杭州市's 西湖区 has three drafts (its own and two parks', one park with a contact of its own),
余杭区 one. At 06-25 24:00 all four lapse: one audit event per case, and one notice per
organisation and recipient (西湖区 3 cases, the park 1, 余杭区 1, 杭州市 4), each an email that
names its cases. Reconciling again writes nothing; a case the platform had submitted on time
drops off the lists before they are sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from models.case import Case
from models.db import Database
from models.outbox import CANCELLED, E_CANCELLED, E_SENT, QUEUED, Notification, ReconcileCursor
from models.sync import sync_rows
from notifications.loopback import LoopbackSMTP
from notifications.notices import LAPSE_NOTICE
from notifications.reconcile import NOTICE_CURSOR
from tests.conftest import CLUSTER, built_world
from tests.models.spine import events
from tests.notifications.world import (
    add_contact,
    at,
    build_town,
    emails,
    notifications,
    reconcile_at,
    row_counts,
    send_at,
    tick_at,
)

CLOSING = "2026-06-26T00:00"


def lapse_world(db: Database, make_ctx: Any, folder: Any) -> dict[str, Any]:
    from tests.models.spine import cluster_case

    town = build_town(db, make_ctx)
    with db.write() as session:
        ctx = make_ctx("2026-06-01T10:00")
        yungu = cluster_case(
            session, ctx, county="西湖区", applicant="西湖云谷产业园", subtrack="模型数据服务"
        )
        zhijiang = cluster_case(session, ctx, county="西湖区", applicant="之江产业园", subtrack="智能机器人")
        refs = {"yungu": yungu.ref, "zhijiang": zhijiang.ref}
        park = yungu.org_id
    town["ids"]["park"] = add_contact(db, park, "周园", "zhouyuan@yungu.example", mobile="13905710009")
    return town | refs


@pytest.fixture
def world(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "lapse_lists", lapse_world)


def case_ids(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {ref: int(i) for ref, i in session.exec(select(Case.ref, Case.id)).all()}


def lists(db: Database) -> dict[int, list[int]]:
    """Contact -> the cases its lapse notice lists."""
    return {n.contact_id: n.payload["case_ids"] for n in notifications(db, kind=LAPSE_NOTICE)}


def test_one_notice_per_organisation_and_recipient_lists_its_cases_and_each_lapse_is_audited(
    world: dict[str, Any], make_ctx: Any
) -> None:
    db, ids = world["db"], world["ids"]
    refs = [world["xihu"], world["yungu"], world["zhijiang"]]  # 西湖区's, in case-number order
    cid = case_ids(db)

    report = tick_at(db, make_ctx, CLOSING)

    assert sorted(report.lapsed) == sorted([*refs, world["yuhang"]])
    lapses = [e for e in events(db, action="state_change") if e.to_value == "lapsed"]
    assert sorted(e.case_id for e in lapses) == sorted(cid[r] for r in [*refs, world["yuhang"]])
    assert {(e.actor, e.from_value, e.at) for e in lapses} == {("system", "draft", at(CLOSING))}
    by_ref = sorted(refs)
    assert lists(db) == {
        ids["xihu"]: [cid[r] for r in by_ref],
        ids["park"]: [cid[world["yungu"]]],
        ids["yuhang"]: [cid[world["yuhang"]]],
        ids["hz"]: [cid[r] for r in sorted([*refs, world["yuhang"]])],
    }
    # No per-case notice besides; the province is not told of a cluster lapse (as before).
    assert not [n for n in notifications(db, kind="notice") if n.payload.get("action") == "lapse"]
    [lina] = emails(db, contact_id=ids["xihu"])
    assert lina.subject == "【通知】西湖区3项申报：逾期关闭（逾期未提交）"
    assert all(r in lina.text_body for r in refs) and "西湖云谷产业园" in lina.text_body
    [chen] = emails(db, contact_id=ids["hz"])
    assert all(r in chen.text_body for r in [*refs, world["yuhang"]])
    assert "按县（市、区）：西湖区 3 项、余杭区 1 项" in chen.text_body
    [zhou] = emails(db, contact_id=ids["park"])
    assert zhou.subject == f"【通知】{world['yungu']} 西湖云谷产业园：逾期关闭（逾期未提交）"


def test_reconciling_again_or_reading_the_events_again_writes_nothing(
    world: dict[str, Any], make_ctx: Any
) -> None:
    db = world["db"]
    tick_at(db, make_ctx, CLOSING)
    before = row_counts(db)

    again = tick_at(db, make_ctx, CLOSING)
    with db.write() as session:  # a watermark held back: the same events are read again
        cursor = session.get(ReconcileCursor, NOTICE_CURSOR)
        assert cursor is not None
        cursor.value = 0
        session.add(cursor)
    reread = reconcile_at(db, make_ctx, "2026-06-26T00:05")

    assert again.nothing_new and not reread.written
    assert row_counts(db) == before


def test_a_draft_lapsing_at_the_same_instant_later_gets_a_list_of_its_own(
    world: dict[str, Any], make_ctx: Any
) -> None:
    from tests.models.spine import cluster_case

    db, ids = world["db"], world["ids"]
    reconcile_at(db, make_ctx, CLOSING)
    first = lists(db)
    with db.write() as session:  # entered after the first close, at the same instant
        late = cluster_case(session, make_ctx(CLOSING), county="西湖区", applicant="紫金港产业园").id

    reconcile_at(db, make_ctx, CLOSING)

    rows = [n for n in notifications(db, kind=LAPSE_NOTICE) if n.contact_id == ids["xihu"]]
    assert [n.payload["case_ids"] for n in rows] == [first[ids["xihu"]], [late]]
    assert rows[1].key.startswith(rows[0].key + ":")


def test_a_case_the_platform_had_submitted_on_time_drops_off_the_lists_before_they_go(
    world: dict[str, Any], make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db, ids = world["db"], world["ids"]
    tick_at(db, make_ctx, CLOSING)  # composed at 00:00, held for the working day (08:30)
    push = [
        {
            "申报单位": "西湖云谷产业园",
            "细分赛道": "模型数据服务",
            "status": "已提交",
            "提交时间": "2026-06-25 23:50",
        }
    ]
    with db.write() as session:
        report = sync_rows(session, make_ctx(at("2026-06-26T08:00")), CLUSTER, push, source="平台推送")
    assert report.applied and [c.actions for c in report.changes] == [["correct_lapse", "submit"]]

    send_at(db, "2026-06-26T08:30", smtp.port)

    by_contact = {e.contact_id: e for e in emails(db)}
    assert by_contact[ids["park"]].status == E_CANCELLED  # its only case stands corrected
    lina, chen = by_contact[ids["xihu"]], by_contact[ids["hz"]]
    assert (lina.status, chen.status) == (E_SENT, E_SENT)
    assert lina.subject == "【通知】西湖区2项申报：逾期关闭（逾期未提交）"
    assert world["yungu"] not in lina.text_body and world["zhijiang"] in lina.text_body
    assert world["yungu"] not in chen.text_body and "西湖区 2 项" in chen.text_body
    sent = {m.rcpt_tos[0] for m in smtp.messages}
    assert "zhouyuan@yungu.example" not in sent and "lina@xihu.example" in sent
    with db.read() as session:
        park_note = session.exec(select(Notification).where(Notification.contact_id == ids["park"])).one()
    assert park_note.status == CANCELLED and lina.id is not None
    assert {n.status for n in notifications(db, email_id=lina.id)} == {QUEUED}
