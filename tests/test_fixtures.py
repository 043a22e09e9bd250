"""The shared fixtures hand out copies of templates: each copy must be the whole seeded state.

A copied database that lost a row, kept a stale sequence or came with an anchor of another head
would make every test on it wrong in a way no single test would notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.audit import AuditLog, read_anchor
from models.campaign import Campaign
from models.case import Case
from models.db import Database
from models.org import Organisation
from tests.conftest import PgSnapshot, anchor_file, built_world
from tests.models.spine import cluster_case, n_events


def counts(db: Database) -> tuple[int, int, int, int]:
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Organisation)) or 0,
            session.scalar(select(func.count()).select_from(Campaign)) or 0,
            session.scalar(select(func.count()).select_from(Case)) or 0,
            n_events(db),
        )


def test_a_seeded_copy_verifies_against_its_own_anchor(seeded: Database, audit: AuditLog) -> None:
    with seeded.read() as session:
        report = audit.verify(session)
    assert report.ok, report.problems
    assert report.checked == report.head_seq == report.anchor_seq > 0


def test_a_seeded_copy_goes_on_where_the_seeding_stopped(
    seeded: Database, audit: AuditLog, make_ctx: Any
) -> None:
    organisations, campaigns, cases, events = counts(seeded)
    assert (organisations, campaigns) == (102, 2) and cases > 0 and events > 0
    with seeded.write() as session:
        case = cluster_case(session, make_ctx(), county="西湖区")
    # The id and the audit sequence continue after the seeded rows instead of colliding with them.
    assert case.id == cases + 1
    with seeded.read() as session:
        report = audit.verify(session)
    assert report.ok, report.problems
    assert audit.anchor_path is not None
    anchor = read_anchor(audit.anchor_path)
    assert anchor is not None and report.head_seq == events + 1 == anchor.seq


def test_an_empty_database_has_no_rows_and_no_anchor(db: Database, tmp_path: Path) -> None:
    assert counts(db) == (0, 0, 0, 0)
    assert not anchor_file(tmp_path).exists()


def test_seeded_reached_late_still_seeds_the_tests_database(
    db: Database, request: pytest.FixtureRequest
) -> None:
    assert counts(db)[0] == 0
    late: Database = request.getfixturevalue("seeded")
    assert late is db and counts(db)[:2] == (102, 2)


@pytest.mark.postgres
def test_restoring_the_seeded_rows_undoes_what_a_test_wrote(_pg_seeded: PgSnapshot, make_ctx: Any) -> None:
    db = _pg_seeded.database
    _pg_seeded.restore()
    before = counts(db)
    with db.write() as session:
        first = cluster_case(session, make_ctx(), county="西湖区").id
    _pg_seeded.restore()
    assert counts(db) == before
    with db.write() as session:
        # The sequence went back too: the same id is handed out again.
        assert cluster_case(session, make_ctx(), county="西湖区").id == first


def _two_cases(db: Database, make_ctx: Any, folder: Path) -> dict[str, Any]:
    with db.write() as session:
        refs = [cluster_case(session, make_ctx(), county=county).ref for county in ("西湖区", "余杭区")]
    return {"db": db, "refs": refs}


@pytest.fixture
def two_cases(seeded: Database, request: pytest.FixtureRequest) -> dict[str, Any]:
    return built_world(request, "fixtures-two-cases", _two_cases)


@pytest.mark.parametrize("round", [1, 2])
def test_a_world_copy_is_the_tests_own_and_verifies_against_its_anchor(
    two_cases: dict[str, Any], seeded: Database, audit: AuditLog, make_ctx: Any, round: int
) -> None:
    # Twice per backend: the second copy must not see what the first one wrote.
    assert two_cases["db"] is seeded
    _organisations, _campaigns, cases, events = counts(seeded)
    with seeded.read() as session:
        applications = set(session.scalars(select(Case.ref).where(Case.kind == "cluster_application")))
        report = audit.verify(session)
    assert applications == set(two_cases["refs"]) and report.ok, report.problems
    assert report.head_seq == report.anchor_seq == events
    with seeded.write() as session:
        case = cluster_case(session, make_ctx(), county="萧山区")
    assert case.id == cases + 1
    with seeded.read() as session:
        assert audit.verify(session).ok


@pytest.mark.xdist_group("fixtures-selfcheck")
def test_a_grouped_test_carries_its_group_to_the_scheduler(request: pytest.FixtureRequest) -> None:
    # Under `make test` (-n 2 --dist loadgroup) the group must reach the id xdist schedules by,
    # or each worker builds the group's session fixtures (tests/conftest.py's collection hook).
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@fixtures-selfcheck")
    else:
        assert "@" not in request.node.nodeid


@pytest.mark.backends("sqlite")
def test_a_test_marked_for_sqlite_alone_has_no_postgresql_twin(
    db: Database, request: pytest.FixtureRequest
) -> None:
    # `backends` replaces the fixture's two params (tests/conftest.py's pytest_generate_tests):
    # the test is collected once, on SQLite, and its `db` is a SQLite file.
    assert request.node.callspec.params["db"] == "sqlite" and db.url.startswith("sqlite:///")
    twins = [item.nodeid for item in request.session.items if item.originalname == request.node.originalname]
    assert twins == [request.node.nodeid]
