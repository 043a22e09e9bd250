"""Nobody reaches another organisation's data: every route, as each tier, against others' data.

The table below must name every route of the app (a new route without an entry fails
``test_it_walks_every_route``), so a route cannot be added without deciding who may use it.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlmodel import select
from starlette.routing import Mount, Route

from models.case import Case
from models.org import Contact
from models.outbox import Email
from tests.conftest import CLUSTER, JINGPIN
from tests.dashboard.conftest import csrf_of, sign_in
from tests.dashboard.world import World

# Refusals are decided in Python from the signed-in organisation: SQLite only (tests/README.md,
# rule 4), except the scoped lists and counts, whose filters are SQL.
pytestmark = pytest.mark.backends("sqlite")

# Reachable without signing in, by design.
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/{token}"),
    ("POST", "/logout"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/calendar/{feed}.ics"),
}

# Routes with no parameter naming another organisation: their answer is the viewer's own scope.
# What must never appear in them when a 杭州 person asks:
OWN_SCOPE = {
    ("GET", "/"),
    ("GET", "/me"),
    ("GET", "/notifications"),
    ("GET", "/audit"),
    ("GET", "/api/me"),
    ("GET", "/api/campaigns"),
    ("GET", "/api/campaigns/{campaign_id}"),
    ("GET", "/api/campaigns/{campaign_id}/progress/{stage_id}"),
    ("GET", "/api/notifications"),
    ("GET", "/api/audit/verify"),
    ("GET", "/campaigns/{campaign_id}"),
    ("GET", "/api/cases"),
}
FOREIGN_MARKERS = ("鄞州", "宁波", "SZJX-0101", "QYZJ-0101", "甬兴", "fangyin@yz.gov.cn", "郑甬")


def foreign_requests(world: World, viewer: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """For each route: requests at data outside ``viewer``'s organisation."""
    r = world.refs
    other_case = r["yinzhou_collab"]
    other_ext = "SZJX-0101"
    table: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("GET", "/campaigns/{campaign_id}/board"): [
            {"url": f"/campaigns/{CLUSTER}/board?city=330200"},
            {"url": f"/campaigns/{CLUSTER}/board?county=330212"},
        ],
        ("GET", "/cases/{ref}"): [
            {"url": f"/cases/{other_case}"},
            {"url": f"/cases/{r['jp_yinzhou']}"},
            {"url": f"/cases/{r['rec_ningbo_cl']}"},
        ],
        ("GET", "/campaigns/{campaign_id}/cities/{city_code}"): [
            {"url": f"/campaigns/{CLUSTER}/cities/330200"}
        ],
        ("POST", "/cases/{ref}/act"): [
            {"url": f"/cases/{other_case}/act", "form": {"action": "recommend", "reason": "越权尝试"}},
            {"url": f"/cases/{other_case}/act", "form": {"action": "return", "reason": "越权尝试"}},
        ],
        ("POST", "/campaigns/{campaign_id}/stages/{stage_id}/deadline"): [
            {
                "url": f"/campaigns/{CLUSTER}/stages/application/deadline",
                "form": {"due": "2026-07-31", "reason": "越权尝试"},
            }
        ],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/jingpin-summary.xlsx"): [
            {"url": f"/exports/{JINGPIN}/cities/330200/jingpin-summary.xlsx"}
        ],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/recommendation-summary.xlsx"): [
            {"url": f"/exports/{JINGPIN}/cities/330200/recommendation-summary.xlsx"}
        ],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/roster.xlsx"): [
            {"url": f"/exports/{CLUSTER}/cities/330200/roster.xlsx"}
        ],
        ("GET", "/exports/{campaign_id}/status.xlsx"): [{"url": f"/exports/{CLUSTER}/status.xlsx"}],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/status.xlsx"): [
            {"url": f"/exports/{CLUSTER}/cities/330200/status.xlsx"}
        ],
        ("GET", "/cases/{ref}/letter"): [{"url": f"/cases/{r['rec_ningbo_cl']}/letter"}],
        ("GET", "/api/campaigns/{campaign_id}/board"): [
            {"url": f"/api/campaigns/{CLUSTER}/board?city=330200"},
            {"url": f"/api/campaigns/{CLUSTER}/board?county=330212"},
        ],
        ("GET", "/api/campaigns/{campaign_id}/cities/{city_code}/recommendation"): [
            {"url": f"/api/campaigns/{CLUSTER}/cities/330200/recommendation"}
        ],
        ("PUT", "/api/campaigns/{campaign_id}/stages/{stage_id}/deadline"): [
            {
                "url": f"/api/campaigns/{CLUSTER}/stages/application/deadline",
                "json": {"due": "2026-07-31", "reason": "越权尝试"},
            }
        ],
        # The platforms are provincial: no city, county or enterprise pushes their lists.
        ("POST", "/api/campaigns/{campaign_id}/platform-sync"): [
            {
                "url": f"/api/campaigns/{CLUSTER}/platform-sync",
                "json": {
                    "rows": [
                        {
                            "申报编号": other_ext,
                            "申报单位": "鄞州区",
                            "细分赛道": "工业软件",
                            "申报状态": "已推荐",
                        }
                    ],
                    "source": "越权尝试",
                },
            }
        ],
        ("GET", "/api/cases/by-external/{external_id}"): [{"url": f"/api/cases/by-external/{other_ext}"}],
        ("GET", "/api/cases/{ref}"): [{"url": f"/api/cases/{other_case}"}],
        ("GET", "/api/cases/{ref}/history"): [{"url": f"/api/cases/{other_case}/history"}],
        ("GET", "/cases/{ref}/receipt"): [{"url": f"/cases/{other_case}/receipt"}],
        ("GET", "/cases/{ref}/receipt.json"): [{"url": f"/cases/{other_case}/receipt.json"}],
        ("POST", "/api/cases/{ref}/letter"): [
            {
                "url": f"/api/cases/{r['rec_ningbo_cl']}/letter",
                "form": {"action": "attach"},
                "files": {"file": ("推荐函.pdf", b"%PDF-1.4 attempt", "application/pdf")},
            }
        ],
        ("POST", "/api/cases/{ref}/actions"): [
            {"url": f"/api/cases/{other_case}/actions", "json": {"action": "recommend"}}
        ],
        ("POST", "/api/cases/by-external/{external_id}/actions"): [
            {"url": f"/api/cases/by-external/{other_ext}/actions", "json": {"action": "recommend"}}
        ],
    }
    table[("GET", "/api/cases")] = [{"url": "/api/cases?city=330200"}, {"url": "/api/cases?county=330212"}]
    if viewer in ("xihu", "enterprise"):
        # A county does not see its city's other counties, nor the city's own page and exports.
        table[("GET", "/cases/{ref}")].append({"url": f"/cases/{r['rs2']}"})  # a 萧山区 park
        table[("GET", "/campaigns/{campaign_id}/cities/{city_code}")].append(
            {"url": f"/campaigns/{CLUSTER}/cities/330100"}
        )
        table[("GET", "/exports/{campaign_id}/cities/{city_code}/roster.xlsx")].append(
            {"url": f"/exports/{CLUSTER}/cities/330100/roster.xlsx"}
        )
        table[("GET", "/campaigns/{campaign_id}/board")].append(
            {"url": f"/campaigns/{CLUSTER}/board?county=330109"}
        )
    if viewer == "enterprise":
        table[("GET", "/cases/{ref}")].append({"url": f"/cases/{r['xihu_core']}"})
        table[("GET", "/api/cases/{ref}")].append({"url": f"/api/cases/{r['xihu_core']}"})
    return table


def app_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = set()
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        # FastAPI ≥ 0.150 keeps an included router as one entry: walk into it, or the routes
        # it holds (all of /api) would never be checked here.
        included = getattr(route, "original_router", None)
        if included is not None:
            routes.extend(included.routes)
            continue
        if isinstance(route, Mount):
            continue
        if isinstance(route, APIRoute | Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
    return found


def test_it_walks_every_route(app, world: World) -> None:  # type: ignore[no-untyped-def]
    covered = PUBLIC | OWN_SCOPE | set(foreign_requests(world, "hangzhou"))
    assert app_routes(app) - covered == set(), "a route has no access rule in this test"


@pytest.mark.parametrize("viewer", ["hangzhou", "xihu", "enterprise"])
def test_it_refuses_every_route_on_another_organisations_data(client, world: World, viewer: str) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token(viewer))
    csrf = csrf_of(client)
    with world.db.read() as session:
        before = {c.ref: (c.state, c.version) for c in session.exec(select(Case)).all()}
    failures = []
    for (method, _path), requests in foreign_requests(world, viewer).items():
        for req in requests:
            kwargs: dict[str, Any] = {"follow_redirects": False}
            if "form" in req:
                kwargs["data"] = {**req["form"], "csrf_token": csrf}
            if "json" in req:
                kwargs["json"] = req["json"]
                kwargs["headers"] = {"X-CSRF-Token": csrf}
            if "files" in req:  # a multipart API upload: its CSRF proof is the header
                kwargs["files"] = req["files"]
                kwargs["headers"] = {"X-CSRF-Token": csrf}
            response = client.request(method, req["url"], **kwargs)
            if response.status_code not in (403, 404):
                failures.append(f"{method} {req['url']} → {response.status_code}")
    assert failures == []
    with world.db.read() as session:
        after = {c.ref: (c.state, c.version) for c in session.exec(select(Case)).all()}
    assert after == before, "a refused request changed a case"


def test_the_same_refusals_hold_for_a_bearer_token(client, world: World) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {world.token('xihu')}"}
    for (method, path), requests in foreign_requests(world, "xihu").items():
        if not path.startswith(("/api/", "/exports/")):
            continue
        for req in requests:
            response = client.request(
                method,
                req["url"],
                headers=headers,
                json=req.get("json"),
                data=req.get("form"),
                files=req.get("files"),
            )
            assert response.status_code in (403, 404), f"{method} {req['url']} → {response.status_code}"


@pytest.mark.backends("sqlite", "postgresql")
def test_own_scope_pages_show_nothing_of_other_cities(client, world: World) -> None:  # type: ignore[no-untyped-def]
    # A mail to 鄞州区's contact exists, so the notification log has something to leak.
    from datetime import timedelta

    from tests.dashboard.world import NOW

    with world.db.write() as session:
        contact = session.exec(select(Contact).where(Contact.email == "fangyin@yz.gov.cn")).one()
        session.add(
            Email(
                key="k-yz",
                message_id="<k-yz@shenbao>",
                contact_id=contact.id,
                to_addr=contact.email,
                to_name=contact.name,
                subject="鄞州区：线上申报截止提醒",
                text_body="",
                html_body="",
                raw=b"",
                created_at=NOW - timedelta(days=1),
                next_attempt_at=NOW,
                status="dead",
                attempts=6,
                last_error="550 mailbox unavailable",
            )
        )
    sign_in(client, world.token("hangzhou"))
    urls = [
        "/",
        "/me",
        "/notifications",
        "/audit",
        "/api/me",
        "/api/campaigns",
        f"/api/campaigns/{CLUSTER}",
        f"/api/campaigns/{CLUSTER}/progress/application",
        "/api/notifications",
        "/api/audit/verify",
        f"/campaigns/{CLUSTER}",
        f"/campaigns/{JINGPIN}",
        "/api/cases",
        f"/campaigns/{CLUSTER}/board",
        f"/api/campaigns/{CLUSTER}/board",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        leaked = [m for m in FOREIGN_MARKERS if m in response.text]
        assert leaked == [], f"{url} shows {leaked}"


@pytest.mark.backends("sqlite", "postgresql")
def test_scoped_counts_leave_other_cities_out(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    stages = {s["stage"]: s for s in client.get(f"/api/campaigns/{CLUSTER}").json()["stages"]}
    # 西湖区 has two drafts of its own; the province has seven applications in all.
    assert stages["application"]["pending"] == 2
    assert stages["city_recommendation"]["pending"] == 0
    assert client.get("/api/cases", params={"campaign": CLUSTER}).json()["total"] == 4


# -- scope by program ---------------------------------------------------------------------------

# People registered for one program only (the roster's 备注), of each tier: key → (org, program).
ONE_PROGRAM = {
    "prov_cl": ("330000", "cluster"),  # 省产业发展中心's cluster contact
    "prov_jp": ("330000", "jingpin"),  # 省技创中心's 精品 contact
    "hz_cl": ("330100", "cluster"),
    "hz_jp": ("330100", "jingpin"),
    "xihu_cl": ("330106", "cluster"),
    "xihu_jp": ("330106", "jingpin"),
}
OTHER = {"cluster": JINGPIN, "jingpin": CLUSTER}


@pytest.fixture
def one_program(world: World) -> dict[str, str]:
    """Tokens of the one-program people, and a mail of each program to 西湖区's contact (who works
    on both), so the notification log has something of the other program to leak."""
    from datetime import timedelta

    from dashboard.auth import issue_token
    from models.org import Organisation
    from models.outbox import Notification
    from tests.dashboard.world import NOW

    tokens = {}
    with world.db.write() as session:
        for i, (key, (org_id, program)) in enumerate(ONE_PROGRAM.items()):
            contact = Contact(
                org_id=org_id,
                name=f"单项{i}",
                email=f"{key}@one.example",
                programs=program,
                mobile=f"1390000000{i}",
                updated_at=NOW,
            )
            session.add(contact)
            session.flush()
            org = session.get(Organisation, org_id)
            assert org is not None
            tokens[key] = issue_token(session, contact, org, NOW, days=90).token
        linxi = session.exec(select(Contact).where(Contact.email == "linxi@xh.gov.cn")).one()
        for campaign, subject in ((CLUSTER, "集群线上申报提醒"), (JINGPIN, "精品线上申报提醒")):
            email = Email(
                key=f"k-{campaign}",
                message_id=f"<k-{campaign}@shenbao>",
                contact_id=linxi.id,
                to_addr=linxi.email,
                to_name=linxi.name,
                subject=f"西湖区：{subject}",
                text_body="",
                html_body="",
                raw=b"",
                created_at=NOW - timedelta(days=1),
                next_attempt_at=NOW,
                status="sent",
            )
            session.add(email)
            session.flush()
            session.add(
                Notification(
                    key=f"n-{campaign}",
                    kind="reminder",
                    campaign_id=campaign,
                    stage_id="application",
                    contact_id=linxi.id,  # type: ignore[arg-type]
                    email_addr=linxi.email,  # type: ignore[arg-type]
                    due_at=NOW - timedelta(days=1),
                    created_at=NOW - timedelta(days=1),
                    status="sent",
                    email_id=email.id,
                )
            )
    return tokens


def other_program_requests(world: World, program: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """For each route: requests at the other program's objects within 杭州市 (西湖区 where a case)."""
    r = world.refs
    other = OTHER[program]
    case, ext, rec = (
        (r["jp_xihu"], "QYZJ-0001", r["rec_hangzhou_jp"])
        if program == "cluster"
        else (r["xihu_core"], "SZJX-0001", r["rec_hangzhou_cl"])
    )
    return {
        ("GET", "/campaigns/{campaign_id}"): [{"url": f"/campaigns/{other}"}],
        ("GET", "/campaigns/{campaign_id}/board"): [{"url": f"/campaigns/{other}/board"}],
        ("GET", "/cases/{ref}"): [{"url": f"/cases/{case}"}, {"url": f"/cases/{rec}"}],
        ("GET", "/campaigns/{campaign_id}/cities/{city_code}"): [
            {"url": f"/campaigns/{other}/cities/330100"}
        ],
        ("POST", "/cases/{ref}/act"): [
            {"url": f"/cases/{case}/act", "form": {"action": "submit", "reason": "越权尝试"}},
            {"url": f"/cases/{case}/act", "form": {"action": "return", "reason": "越权尝试"}},
        ],
        ("POST", "/campaigns/{campaign_id}/stages/{stage_id}/deadline"): [
            {
                "url": f"/campaigns/{other}/stages/application/deadline",
                "form": {"due": "2026-07-31", "reason": "越权尝试"},
            }
        ],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/jingpin-summary.xlsx"): [
            {"url": f"/exports/{JINGPIN}/cities/330100/jingpin-summary.xlsx"}
        ]
        if program == "cluster"
        else [],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/recommendation-summary.xlsx"): [
            {"url": f"/exports/{JINGPIN}/cities/330100/recommendation-summary.xlsx"}
        ]
        if program == "cluster"
        else [],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/roster.xlsx"): [
            {"url": f"/exports/{other}/cities/330100/roster.xlsx"}
        ],
        ("GET", "/exports/{campaign_id}/status.xlsx"): [{"url": f"/exports/{other}/status.xlsx"}],
        ("GET", "/exports/{campaign_id}/cities/{city_code}/status.xlsx"): [
            {"url": f"/exports/{other}/cities/330100/status.xlsx"}
        ],
        ("GET", "/cases/{ref}/letter"): [{"url": f"/cases/{rec}/letter"}],
        ("GET", "/api/campaigns/{campaign_id}"): [{"url": f"/api/campaigns/{other}"}],
        ("GET", "/api/campaigns/{campaign_id}/progress/{stage_id}"): [
            {"url": f"/api/campaigns/{other}/progress/application"}
        ],
        ("GET", "/api/campaigns/{campaign_id}/board"): [{"url": f"/api/campaigns/{other}/board"}],
        ("GET", "/api/campaigns/{campaign_id}/cities/{city_code}/recommendation"): [
            {"url": f"/api/campaigns/{other}/cities/330100/recommendation"}
        ],
        ("PUT", "/api/campaigns/{campaign_id}/stages/{stage_id}/deadline"): [
            {
                "url": f"/api/campaigns/{other}/stages/application/deadline",
                "json": {"due": "2026-07-31", "reason": "越权尝试"},
            }
        ],
        ("GET", "/api/cases"): [{"url": f"/api/cases?campaign={other}"}],
        ("GET", "/api/cases/by-external/{external_id}"): [{"url": f"/api/cases/by-external/{ext}"}],
        ("GET", "/api/cases/{ref}"): [{"url": f"/api/cases/{case}"}],
        ("GET", "/api/cases/{ref}/history"): [{"url": f"/api/cases/{case}/history"}],
        ("GET", "/cases/{ref}/receipt"): [{"url": f"/cases/{case}/receipt"}],
        ("GET", "/cases/{ref}/receipt.json"): [{"url": f"/cases/{case}/receipt.json"}],
        ("POST", "/api/cases/{ref}/actions"): [
            {"url": f"/api/cases/{case}/actions", "json": {"action": "submit"}}
        ],
        ("POST", "/api/cases/{ref}/letter"): [
            {
                "url": f"/api/cases/{rec}/letter",
                "files": {"file": ("函.pdf", b"%PDF-1.4 sealed", "application/pdf")},
            }
        ],
        ("POST", "/api/campaigns/{campaign_id}/platform-sync"): [
            {
                "url": f"/api/campaigns/{other}/platform-sync",
                "json": {"rows": [], "source": "越权尝试", "dry_run": True},
            }
        ],
        ("POST", "/api/cases/by-external/{external_id}/actions"): [
            {"url": f"/api/cases/by-external/{ext}/actions", "json": {"action": "submit"}}
        ],
    }


# Lists that answer with the viewer's own scope, and what of the other program must not be in them.
PROGRAM_LISTS = ["/", "/notifications", "/api/campaigns", "/api/cases", "/api/notifications"]


def program_markers(world: World, program: str) -> list[str]:
    r = world.refs
    if program == "cluster":  # what a 精品-only person must not see
        return [CLUSTER, r["xihu_core"], r["rs1"], "SZJX-0001", "集群线上申报提醒"]
    return [JINGPIN, r["jp_xihu"], "QYZJ-0001", "智算一体机", "精品线上申报提醒"]


# Routes that show nothing of either program: the viewer's own details, the audit chain's health.
PROGRAM_FREE = {("GET", "/me"), ("GET", "/audit"), ("GET", "/api/me"), ("GET", "/api/audit/verify")}


def test_the_program_walk_names_every_route(app, world: World) -> None:  # type: ignore[no-untyped-def]
    lists = {("GET", url) for url in PROGRAM_LISTS}
    covered = PUBLIC | PROGRAM_FREE | lists | set(other_program_requests(world, "cluster"))
    assert app_routes(app) - covered == set(), "a route has no program rule in this test"


@pytest.mark.parametrize("viewer", sorted(ONE_PROGRAM))
def test_it_refuses_every_route_on_the_other_programs_objects(  # type: ignore[no-untyped-def]
    client, world: World, one_program: dict[str, str], viewer: str
) -> None:
    program = ONE_PROGRAM[viewer][1]
    sign_in(client, one_program[viewer])
    csrf = csrf_of(client)
    with world.db.read() as session:
        before = {c.ref: (c.state, c.version) for c in session.exec(select(Case)).all()}
    failures = []
    for (method, _path), requests in other_program_requests(world, program).items():
        for req in requests:
            kwargs: dict[str, Any] = {"follow_redirects": False}
            if "form" in req:
                kwargs["data"] = {**req["form"], "csrf_token": csrf}
            if "json" in req:
                kwargs["json"] = req["json"]
                kwargs["headers"] = {"X-CSRF-Token": csrf}
            if "files" in req:
                kwargs["files"] = req["files"]
                kwargs["headers"] = {"X-CSRF-Token": csrf}
            response = client.request(method, req["url"], **kwargs)
            if response.status_code not in (403, 404):
                failures.append(f"{method} {req['url']} → {response.status_code}")
    assert failures == []
    with world.db.read() as session:
        after = {c.ref: (c.state, c.version) for c in session.exec(select(Case)).all()}
    assert after == before, "a refused request changed a case"


@pytest.mark.parametrize("viewer", sorted(ONE_PROGRAM))
def test_lists_show_nothing_of_the_other_program(  # type: ignore[no-untyped-def]
    client, world: World, one_program: dict[str, str], viewer: str
) -> None:
    program = ONE_PROGRAM[viewer][1]
    other = "jingpin" if program == "cluster" else "cluster"
    sign_in(client, one_program[viewer])
    for url in PROGRAM_LISTS:
        response = client.get(url)
        assert response.status_code == 200, url
        leaked = [m for m in program_markers(world, other) if m in response.text]
        assert leaked == [], f"{viewer}: {url} shows {leaked}"
    # …while their own program is there: the lists are scoped, not empty.
    assert client.get("/api/campaigns").json()[0]["id"] == OTHER[other]
    feed = client.get("/me").text
    import re

    path = re.search(r"/calendar/[^\"<\s]+\.ics", feed)
    assert path, "no calendar feed link on /me"
    ics = client.get(path.group(0)).text
    assert OTHER[program] not in ics and OTHER[other] in ics


def test_a_refusal_names_the_program(client, world: World, one_program: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {one_program['hz_cl']}"}
    response = client.post(
        f"/api/cases/{world.refs['jp_xihu']}/actions", headers=headers, json={"action": "submit"}
    )
    assert response.status_code == 403
    assert "「制造精品」" in response.text and "「集群遴选」" in response.text
    sign_in(client, one_program["hz_cl"])
    page = client.get(f"/campaigns/{JINGPIN}")
    assert page.status_code == 403 and "制造精品" in page.text


def test_a_contact_on_both_programs_sees_both(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("hangzhou"))
    assert {c["id"] for c in client.get("/api/campaigns").json()} == {CLUSTER, JINGPIN}
    assert client.get(f"/cases/{world.refs['jp_xihu']}").status_code == 200
    assert client.get(f"/cases/{world.refs['xihu_core']}").status_code == 200
