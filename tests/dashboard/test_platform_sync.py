"""A platform pushes its list over the API: the same sync as ``shenbao sync``, province only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from models.audit import AuditEvent
from models.case import Case
from tests.conftest import CLUSTER
from tests.dashboard.world import World

# The route hands the rows to the sync tested on both backends in tests/models/test_sync.py:
# SQLite only (tests/README.md, rule 4), except one push applied and repeated.
pytestmark = pytest.mark.backends("sqlite")

URL = f"/api/campaigns/{CLUSTER}/platform-sync"
SUBMITTED = {
    "申报编号": "SZJX-0001",
    "申报单位": "西湖区",
    "细分赛道": "模型数据服务",
    "申报状态": "已提交",
    "提交时间": "2026-06-19 16:00",
}


def bearer(world: World, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(who)}"}


def cases(world: World) -> dict[str, tuple[str, int]]:
    with world.db.read() as session:
        return {c.ref: (c.state, c.version) for c in session.exec(select(Case)).all()}


def sync_events(world: World) -> list[AuditEvent]:
    with world.db.read() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "sync")).all())


def push(client: Any, world: World, rows: list[dict[str, Any]], who: str = "province", **body: Any) -> Any:
    return client.post(
        URL, json={"rows": rows, "source": "工作台推送 0620", **body}, headers=bearer(world, who)
    )


@pytest.mark.backends("sqlite", "postgresql")
def test_the_province_pushes_rows_and_a_second_push_changes_nothing(client, world: World) -> None:  # type: ignore[no-untyped-def]
    ref = world.refs["xihu_core"]
    response = push(client, world, [SUBMITTED])

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] and report["applied"] and report["source"] == "工作台推送 0620"
    [change] = report["changes"]
    assert change["ref"] == ref and change["actions"] == ["submit"]
    assert cases(world)[ref][0] == "submitted"
    [event] = sync_events(world)
    assert json.loads(event.details)["requested_by"] == "严梦玲@330000"  # whose token pushed it

    before = cases(world)
    again = push(client, world, [SUBMITTED])
    assert again.status_code == 200 and again.json()["already_synced_at"] is not None
    assert cases(world) == before and len(sync_events(world)) == 1


def test_a_dry_run_shows_the_change_and_writes_nothing(client, world: World) -> None:  # type: ignore[no-untyped-def]
    before = cases(world)
    response = push(client, world, [SUBMITTED], dry_run=True)
    assert response.status_code == 200 and response.json()["changes"][0]["to_state"] == "submitted"
    assert not response.json()["applied"] and cases(world) == before and sync_events(world) == []


def test_a_city_may_not_push_and_nothing_changes(client, world: World) -> None:  # type: ignore[no-untyped-def]
    before = cases(world)
    response = push(client, world, [SUBMITTED], who="hangzhou")
    assert response.status_code == 403 and "仅限省级" in response.json()["detail"]
    assert cases(world) == before and sync_events(world) == []


def test_rows_that_need_a_person_answer_409_with_the_report_and_the_rest_is_applied(
    client, world: World
) -> None:  # type: ignore[no-untyped-def]
    stray = {"申报单位": "不存在的园区", "细分赛道": "化纤", "申报状态": "已提交"}
    response = push(client, world, [SUBMITTED, stray])

    assert response.status_code == 409
    report = response.json()
    assert not report["ok"] and report["applied"] and report["needs_attention"]
    assert [u["row"] for u in report["unplaced"]] == [2]
    assert cases(world)[world.refs["xihu_core"]][0] == "submitted"


def test_a_missing_field_is_named_and_nothing_is_written(client, world: World) -> None:  # type: ignore[no-untyped-def]
    before = cases(world)
    response = push(
        client, world, [{"申报编号": "SZJX-0001", "申报单位": "西湖区", "细分赛道": "模型数据服务"}]
    )
    assert response.status_code == 422
    body = response.json()
    assert "申报状态" in body["detail"] and body["problems"][0]["column"] == "申报状态"
    assert cases(world) == before


def test_the_route_is_documented(client) -> None:  # type: ignore[no-untyped-def]
    schema = client.get("/api/openapi.json").json()
    route = schema["paths"]["/api/campaigns/{campaign_id}/platform-sync"]["post"]
    assert set(route["responses"]) >= {"200", "403", "409", "422"}
    assert "rows" in schema["components"]["schemas"]["PlatformSyncIn"]["properties"]
