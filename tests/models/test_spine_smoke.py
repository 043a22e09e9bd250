from __future__ import annotations

from sqlmodel import select

from models.case import Case
from tests.conftest import CLUSTER


def test_it_creates_a_roster_task_and_a_recommendation_per_city(seeded) -> None:
    with seeded.read() as session:
        refs = session.exec(select(Case.ref).where(Case.campaign_id == CLUSTER)).all()
    assert sum(r.startswith("RS26-CL-") for r in refs) == 11
    assert sum(r.startswith("RC26-CL-") for r in refs) == 11
