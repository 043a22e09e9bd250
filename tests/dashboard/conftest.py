"""Dashboard fixtures: the app over a seeded database, and a small world of people and cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.settings import WebSettings
from models.db import Database
from operations.runtime import Runtime
from operations.settings import Settings
from tests.conftest import built_world
from tests.dashboard.world import NOW, World, build_world

WEB = WebSettings(secret="test-web-secret-0123456789abcdef")


def make_runtime(db: Database, tmp_path: Path, now: str = "2026-06-20T09:00") -> Runtime:
    settings = Settings(
        home=tmp_path / "home",
        database_url=db.url,
        audit_key_file=tmp_path / "keys" / "audit.key",
        audit_anchor_file=tmp_path / "anchor.json",
        now=now,
    )
    return Runtime(settings)


@pytest.fixture
def world(seeded: Database, request: pytest.FixtureRequest) -> World:
    # Built once per session and backend, copied per test (tests/conftest.py).
    return built_world(request, "dashboard", build_world)


@pytest.fixture
def runtime(world: World, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(world.db, tmp_path)
    yield rt
    rt.db.dispose()


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime, WEB)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="http://testserver") as c:
        yield c


def sign_in(client: TestClient, token: str) -> TestClient:
    response = client.get(f"/login/{token}", follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def csrf_of(client: TestClient) -> str:
    """The CSRF token the pages embed, read the way a browser would: from a rendered form."""
    import re

    page = client.get("/me").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


__all__ = ["NOW", "csrf_of", "make_runtime", "sign_in"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: 在真实浏览器（Debian chromium + Playwright）中运行的看板测试"
    )
