"""The city's board posts the file's own action ids: a campaign whose recommend is ``tuijian``
(tests/fixtures/renamed-actions.yaml) is recommended and declined from the board like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR
from dashboard.app import create_app
from dashboard.auth import issue_token
from models.actions import ActionRefused, act
from models.case import Case
from models.imports import import_cases
from models.org import Contact, Organisation
from models.registry import load_campaign
from tests.dashboard.conftest import WEB, csrf_of, make_runtime, sign_in
from tests.dashboard.world import World

RENAMED = Path(__file__).resolve().parents[1] / "fixtures" / "renamed-actions.yaml"
CAMPAIGN = "2026-pinyin-actions"
pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.usefixtures("campaigns_forgotten")]


def test_the_board_recommends_and_declines_by_the_files_action_ids(
    world: World, make_ctx: Any, tmp_path: Path
) -> None:
    # The zjtx window opens in July; the board acts after the cases' own records (an action is
    # never recorded before a case's latest event), so its clock is an hour after the set-up's.
    at = "2026-07-10T10:00"
    with world.db.write() as session:
        load_campaign(session, make_ctx(at), RENAMED.read_text(encoding="utf-8"), origin=RENAMED.name)
        import_cases(session, make_ctx(at), CAMPAIGN, CAMPAIGN_DIR / "available" / "2026-zjtx.sample.csv")
        hangzhou = session.exec(
            select(Case)
            .where(Case.campaign_id == CAMPAIGN, Case.kind == "zjtx_shenqing", Case.city_code == "330100")
            .order_by(Case.ref)
        ).all()
        for case in hangzhou:
            try:
                act(session, make_ctx(at), case, "tijiao")
            except ActionRefused as exc:  # 原则上 conditions: the reasons given, as a county would
                act(session, make_ctx(at), case, "tijiao", overrides={r: "已核实" for r in exc.data["rules"]})
            act(session, make_ctx(at), case, "xianshen_tongguo")
        refs = [c.ref for c in hangzhou]
        # The city's coordinator of this program (the world's people work on the 2026 two).
        person = Contact(
            org_id="330100",
            name="钱专",
            email="qianzhuan@hz.gov.cn",
            programs="zjtx",
            updated_at=make_ctx(at).now,
        )
        session.add(person)
        session.flush()
        org = session.get(Organisation, "330100")
        assert org is not None
        token = issue_token(session, person, org, make_ctx(at).now, days=90).token
    assert len(refs) == 3  # 杭州: three in the sample
    runtime = make_runtime(world.db, tmp_path, now="2026-07-10T11:00")
    client = TestClient(create_app(runtime, WEB), base_url="http://testserver")
    sign_in(client, token)
    back = f"/campaigns/{CAMPAIGN}/cities/330100"
    page = client.get(back).text
    assert 'name="action" value="tuijian"' in page and 'name="action" value="bu_tuijian"' in page
    assert 'value="recommend"' not in page
    client.post(
        f"/cases/{refs[0]}/act", data={"action": "tuijian", "csrf_token": csrf_of(client), "back": back}
    )
    client.post(
        f"/cases/{refs[1]}/act",
        data={"action": "bu_tuijian", "reason": "材料不全", "csrf_token": csrf_of(client), "back": back},
    )
    with world.db.read() as session:
        states = [session.exec(select(Case.state).where(Case.ref == r)).one() for r in refs[:2]]
    assert states == ["recommended", "not_recommended"]
    client.close()
    runtime.db.dispose()
