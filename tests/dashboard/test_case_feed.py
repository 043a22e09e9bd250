"""Per-case deadlines in the calendar feed: a returned application's own "resubmit within 5
working days" is an event in the calendar of the organisation that owes it, on its own day."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import icalendar
import pytest
from sqlmodel import select

from calendars.campaign import CAMPAIGN_DIR
from dashboard.feeds import contact_calendar, contact_events
from models.actions import act
from models.case import Case
from models.db import Database
from models.imports import import_cases
from models.org import Organisation
from models.registry import load_campaign

FILE = Path(__file__).resolve().parents[1] / "fixtures" / "renamed-states.yaml"
SAMPLE = CAMPAIGN_DIR / "available" / "2026-zjtx.sample.csv"
# The campaigns loaded here are forgotten after each test (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("campaigns_forgotten")
REASON = "佐证材料不全（测试）"
BASE = "https://shenbao.example"


def _uids(session: Any, org_id: str) -> dict[str, Any]:
    org = session.get(Organisation, org_id)
    events = contact_events(session, org, {"zjtx"}, base_url=BASE, now=None)  # type: ignore[arg-type]
    return {e.uid: e for e in events if ".resubmission." in e.uid}


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_returned_case_has_its_own_deadline_in_its_applicants_calendar(
    seeded: Database, make_ctx: Any
) -> None:
    with seeded.write() as session:
        campaign, _ = load_campaign(
            session, make_ctx("2026-07-01T09:00"), FILE.read_text(encoding="utf-8"), origin="t"
        )
        import_cases(session, make_ctx("2026-07-02T09:00"), campaign.id, SAMPLE)
        first, other = session.exec(
            select(Case).where(Case.campaign_id == campaign.id).order_by(Case.ref)
        ).all()[:2]
        act(session, make_ctx("2026-07-02T10:00"), first, "submit")
        act(session, make_ctx("2026-07-14T10:00"), first, "return", reason=REASON)  # Tue: due Tue 07-21 24:00
        ref, owner, bystander, county = first.ref, first.org_id, other.org_id, first.county_code
    uid = f"{campaign.id}.resubmission.{ref}@shenbao"
    with seeded.read() as session:
        mine = _uids(session, owner)
        assert list(mine) == [uid]
        event = mine[uid]
        # 24:00 on 07-21: an all-day event on 07-21, not an instant on the 22nd.
        assert event.start == date(2026, 7, 21) and event.sequence == 1
        assert ref in event.summary and "退回修改后重新提交" in event.summary
        assert _uids(session, bystander) == {}  # another enterprise owes nothing here
        assert county is not None and _uids(session, county) == {}  # the enterprise resubmits, not the county
        org = session.get(Organisation, owner)
        assert org is not None
        text = contact_calendar(session, org, {"zjtx"}, name="t", base_url=BASE, now=event.last_modified)
    (shown,) = [e for e in icalendar.Calendar.from_ical(text).walk("VEVENT") if e["UID"] == uid]
    assert shown.decoded("DTSTART") == date(2026, 7, 21)

    # Resubmitted and returned again: the same event moves (SEQUENCE up); resubmitted, it goes.
    with seeded.write() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        act(session, make_ctx("2026-07-16T10:00"), case, "resubmit")
        assert _uids(session, owner) == {}
        act(session, make_ctx("2026-07-17T10:00"), case, "return", reason=REASON)  # Fri: due Fri 07-24
    with seeded.read() as session:
        again = _uids(session, owner)[uid]
    assert again.start == date(2026, 7, 24) and again.sequence == 2
