"""A case waiting too long at one organisation is escalated one tier up before the deadline."""

from __future__ import annotations

from typing import Any

from models.actions import act as act_on
from models.db import Database
from tests.models.spine import jingpin_case
from tests.notifications.world import add_contact, at, notifications, quiet_rosters, reconcile_at


def _submitted_case(db: Database, make_ctx: Any, when: str) -> str:
    with db.write() as session:
        case = jingpin_case(session, make_ctx(when), county="西湖区")
        act_on(session, make_ctx(when), case, "submit")
        return case.ref


def test_it_escalates_a_case_waiting_ten_working_days_for_county_review_to_the_city(
    seeded: Database, make_ctx: Any
) -> None:
    quiet_rosters(seeded, make_ctx)
    add_contact(seeded, "西湖区", "李娜", "lina@xh.example", programs="jingpin")
    city = add_contact(seeded, "杭州市", "张伟", "zhangwei@hz.example", programs="jingpin")
    _submitted_case(seeded, make_ctx, "2026-06-01T10:00")
    # Ten working days after 06-01 is 06-15; 06-19 is 端午, so on 06-12 it is not stuck yet.
    reconcile_at(seeded, make_ctx, at("2026-06-12T10:00"))
    assert not notifications(seeded, kind="stuck")
    reconcile_at(seeded, make_ctx, at("2026-06-16T10:00"))
    stuck = notifications(seeded, kind="stuck")
    assert [n.contact_id for n in stuck] == [city]


def test_it_escalates_one_stay_only_once(seeded: Database, make_ctx: Any) -> None:
    quiet_rosters(seeded, make_ctx)
    add_contact(seeded, "杭州市", "张伟", "zhangwei@hz.example", programs="jingpin")
    _submitted_case(seeded, make_ctx, "2026-06-01T10:00")
    reconcile_at(seeded, make_ctx, at("2026-06-16T10:00"))
    reconcile_at(seeded, make_ctx, at("2026-06-18T10:00"))
    assert len(notifications(seeded, kind="stuck")) == 1


def test_it_does_not_escalate_a_case_that_moved_on(seeded: Database, make_ctx: Any) -> None:
    quiet_rosters(seeded, make_ctx)
    add_contact(seeded, "杭州市", "张伟", "zhangwei@hz.example", programs="jingpin")
    ref = _submitted_case(seeded, make_ctx, "2026-06-01T10:00")
    from models.actions import get_case

    with seeded.write() as session:
        act_on(session, make_ctx("2026-06-05T10:00"), get_case(session, ref), "approve")
    reconcile_at(seeded, make_ctx, at("2026-06-16T10:00"))
    assert not notifications(seeded, kind="stuck")
