"""Signing in: hashed tokens, links, sessions that end with the token, CSRF on every form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from dashboard.auth import revoke_tokens
from models.access import AccessToken, hash_token
from tests.conftest import CLUSTER
from tests.dashboard.conftest import csrf_of, sign_in
from tests.dashboard.world import NOW, World

# Signing in is the same code on both backends: SQLite only (tests/README.md, rule 4), except
# where the database compares for it: the e-mail looked up case-insensitively (lower()), a
# token's expiry and last use (timestamps with a zone).
pytestmark = pytest.mark.backends("sqlite")


def test_it_stores_only_the_hash_of_a_token(world: World) -> None:
    token = world.token("hangzhou")
    with world.db.read() as session:
        rows = session.exec(select(AccessToken)).all()
    assert all(token not in (r.token_hash,) for r in rows)
    assert hash_token(token) in {r.token_hash for r in rows}


def test_it_sends_strangers_to_the_login_page(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/campaigns/{CLUSTER}/board", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    assert client.get("/api/me").status_code == 401


@pytest.mark.backends("sqlite", "postgresql")
def test_it_signs_in_with_the_link_and_with_the_form(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    assert "西湖区" in client.get("/").text
    client.cookies.clear()
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"token": world.token("xihu"), "csrf_token": csrf, "next": "/me"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/me"


def test_it_refuses_a_wrong_token_and_never_redirects_off_site(client, world: World) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/login/sb_not-a-token", follow_redirects=False).status_code == 401
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"token": world.token("xihu"), "csrf_token": csrf, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_a_revoked_token_ends_the_session_at_once(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    assert client.get("/me").status_code == 200
    with world.db.write() as session:
        revoke_tokens(session, NOW, email="linxi@xh.gov.cn")
    assert client.get("/me", follow_redirects=False).status_code == 303
    headers = {"Authorization": f"Bearer {world.token('xihu')}"}
    assert client.get("/api/me", headers=headers).status_code == 401


@pytest.mark.backends("sqlite", "postgresql")
def test_an_expired_token_does_not_sign_in(client, world: World) -> None:  # type: ignore[no-untyped-def]
    with world.db.write() as session:
        row = session.get(AccessToken, world.people["xihu"].token_id)
        assert row is not None
        row.expires_at = NOW - timedelta(minutes=1)
        session.add(row)
    assert client.get(f"/login/{world.token('xihu')}", follow_redirects=False).status_code == 401


def test_every_form_needs_the_session_csrf_token(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    ref = world.refs["xihu_core"]
    response = client.post(f"/cases/{ref}/act", data={"action": "submit", "csrf_token": "forged"})
    assert response.status_code == 403
    assert "安全校验未通过" in response.text
    # A cookie-authenticated API write needs the header too; a bearer one does not.
    assert client.post(f"/api/cases/{ref}/actions", json={"action": "submit"}).status_code == 403
    ok = client.post(
        f"/api/cases/{ref}/actions", json={"action": "submit"}, headers={"X-CSRF-Token": csrf_of(client)}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.backends("sqlite", "postgresql")
def test_it_records_when_a_token_was_last_used(client, world: World) -> None:  # type: ignore[no-untyped-def]
    client.get("/api/me", headers={"Authorization": f"Bearer {world.token('province')}"})
    with world.db.read() as session:
        row = session.get(AccessToken, world.people["province"].token_id)
    assert row is not None and row.last_used_at == NOW


def test_pages_forbid_framing_and_scripts(client, world: World) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, world.token("xihu"))
    response = client.get("/")
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "private, no-store"


def test_signing_out_ends_every_session_made_from_the_token_copies_included(
    client, app, world: World
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    sign_in(client, world.token("xihu"))
    copied = client.cookies["shenbao_session"]
    with TestClient(app, base_url="http://testserver") as laptop:
        sign_in(laptop, world.token("xihu"))  # the same person on a second computer
        client.post("/logout", data={"csrf_token": csrf_of(client)})
        assert laptop.get("/me", follow_redirects=False).status_code == 303
    with TestClient(app, base_url="http://testserver") as thief:
        thief.cookies.set("shenbao_session", copied)
        assert thief.get("/me", follow_redirects=False).headers["location"].startswith("/login")
        assert thief.get("/api/me").status_code == 401
    sign_in(client, world.token("xihu"))  # the token itself still signs in
    assert client.get("/me").status_code == 200


def test_a_revoked_token_ends_a_copied_session_too(client, app, world: World) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    sign_in(client, world.token("xihu"))
    copied = client.cookies["shenbao_session"]
    with world.db.write() as session:
        revoke_tokens(session, NOW, email="linxi@xh.gov.cn")
    with TestClient(app, base_url="http://testserver") as thief:
        thief.cookies.set("shenbao_session", copied)
        assert thief.get("/api/me").status_code == 401
