"""The SQL scope and ``within_jurisdiction`` are one rule written twice: they must agree."""

from __future__ import annotations

from sqlmodel import select

from dashboard.scope import case_filter
from models.actions import within_jurisdiction
from models.case import Case
from models.org import Organisation
from tests.dashboard.world import World


def test_it_selects_exactly_the_cases_within_jurisdiction(world: World) -> None:
    with world.db.read() as session:
        cases = session.exec(select(Case)).all()
        orgs = session.exec(select(Organisation)).all()
        for org in orgs:
            expected = {c.id for c in cases if within_jurisdiction(org, c)}
            selected = set(session.exec(select(Case.id).where(case_filter(org))).all())
            assert selected == expected, f"{org.tier} {org.name}"
