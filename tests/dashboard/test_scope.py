"""The SQL scope and ``within_jurisdiction`` are one rule written twice: they must agree."""

from __future__ import annotations

from dataclasses import replace

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


def test_the_program_filter_and_the_program_refusal_agree(world: World) -> None:
    from fastapi import HTTPException

    from dashboard.auth import viewer_for_token
    from dashboard.scope import program_filter, require_case
    from tests.dashboard.world import NOW

    with world.db.read() as session:
        cases = session.exec(select(Case)).all()
    for programs in ({"cluster"}, {"jingpin"}, {"cluster", "jingpin"}):
        viewer = viewer_for_token(world.db, world.token("province"), NOW)
        assert viewer is not None
        viewer = replace(viewer, programs=",".join(sorted(programs)))
        with world.db.read() as session:
            selected = set(session.exec(select(Case.id).where(program_filter(viewer.program_set))).all())
            allowed = set()
            for case in cases:
                try:
                    require_case(session, viewer, case, case.ref)
                except HTTPException as refused:
                    assert refused.status_code == 403
                else:
                    allowed.add(case.id)
        assert selected == allowed and selected, programs


def test_a_person_entered_without_a_program_sees_every_program_the_database_holds(world: World) -> None:
    """programs empty means every program: the viewer's set is the database's campaigns'
    programs, so a campaign loaded later is theirs too (no program id written in code)."""
    from dashboard.auth import viewer_for_token
    from models.campaign import Campaign
    from models.org import Contact
    from tests.dashboard.world import NOW

    viewer = viewer_for_token(world.db, world.token("province"), NOW)
    assert viewer is not None
    with world.db.write() as session:
        contact = session.get(Contact, viewer.contact_id)
        assert contact is not None
        contact.programs = ""
        session.add(contact)
    with world.db.read() as session:
        held = set(session.exec(select(Campaign.program).distinct()).all())
    again = viewer_for_token(world.db, world.token("province"), NOW)
    assert again is not None and again.program_set == held and held
