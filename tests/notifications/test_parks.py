"""A park that applied is reminded about its own application, beside its county's bureau."""

from __future__ import annotations

from typing import Any

from models.db import Database
from tests.models.spine import cluster_case
from tests.notifications.world import add_contact, at, notifications, quiet_rosters, reconcile_at

PARK = "衢州智造新城管委会"


def test_it_reminds_a_park_through_its_own_contact_even_when_its_county_has_none(
    seeded: Database, make_ctx: Any
) -> None:
    quiet_rosters(seeded, make_ctx)
    with seeded.write() as session:
        park_case = cluster_case(session, make_ctx(), county="柯城区", applicant=PARK)
        park_id = park_case.org_id
    person = add_contact(seeded, park_id, "许飞", "xufei@park.example", programs="cluster")
    reconcile_at(seeded, make_ctx, at("2026-06-18T09:30"))
    reminders = notifications(seeded, kind="reminder")
    assert [(n.contact_id, n.payload["orgs"]) for n in reminders] == [(person, [park_id])]


def test_it_reminds_the_county_and_the_park_each_once(seeded: Database, make_ctx: Any) -> None:
    quiet_rosters(seeded, make_ctx)
    with seeded.write() as session:
        park_id = cluster_case(session, make_ctx(), county="柯城区", applicant=PARK).org_id
        cluster_case(session, make_ctx(), county="柯城区", subtrack="算力基础设施")
    county = add_contact(seeded, "柯城区", "王敏", "wangmin@kc.example", programs="cluster")
    park = add_contact(seeded, park_id, "许飞", "xufei@park.example", programs="cluster")
    reconcile_at(seeded, make_ctx, at("2026-06-18T09:30"))
    reconcile_at(seeded, make_ctx, at("2026-06-18T10:30"))
    assert sorted(n.contact_id for n in notifications(seeded, kind="reminder")) == sorted([county, park])
