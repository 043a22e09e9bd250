"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Signs in, reads the board, acts on a case, sees a refusal, and saves screenshots of the main
pages into ``out/screenshots/`` (or $SHENBAO_SCREENSHOTS) for people to look at. Never runs
``playwright install``: the browser is the system's /usr/bin/chromium.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.app import create_app
from tests.conftest import CLUSTER
from tests.dashboard.conftest import WEB, make_runtime
from tests.dashboard.world import World

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(
    os.environ.get("SHENBAO_SCREENSHOTS", Path(__file__).resolve().parents[2] / "out" / "screenshots")
)

pytestmark = [
    pytest.mark.browser,
    # What a browser shows is the web layer's alone (tests/README.md, rule 4).
    pytest.mark.backends("sqlite"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="需要 Debian 的 chromium（apt-get install chromium）：/usr/bin/chromium 不存在",
    ),
]


@pytest.fixture
def live(world: World, tmp_path: Path) -> Iterator[tuple[str, World]]:
    """The app on a free loopback port, served by uvicorn in a thread, over the dashboard's world
    (a copy of the session's SQLite template: tests/dashboard/conftest.py)."""
    import uvicorn

    rt = make_runtime(world.db, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt, WEB), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        rt.db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # One Chromium for the module: each test opens its pages with browser.new_page, a context of
    # their own (cookies, storage), so no test sees another's session.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_county_signs_in_reads_the_board_acts_and_is_refused(live, browser) -> None:  # type: ignore[no-untyped-def]
    base, world = live
    page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(f"{base}/campaigns/{CLUSTER}/board")
    assert "/login" in page.url  # not signed in yet
    page.fill("input[name=token]", world.token("xihu"))
    page.click("button:has-text('登录')")
    page.wait_for_url(f"**/campaigns/{CLUSTER}/board")
    assert page.locator(".flash-ok").inner_text().startswith("欢迎，西湖区")
    board = page.locator("table.board")
    assert "西湖云谷产业园管委会" in board.inner_text()
    assert "鄞州" not in page.content()
    _shot(page, "01-county-board")

    page.click(f"text={world.refs['xihu_core']}")
    page.wait_for_url(f"**/cases/{world.refs['xihu_core']}")
    page.locator("form.action:has(input[value=submit]) button").click()
    page.wait_for_load_state()
    assert "已提交申报" in page.locator(".flash-ok").inner_text()
    assert page.locator("h1 .state").inner_text() == "已提交待市级审核"
    _shot(page, "02-county-case-submitted")

    # Below the revenue threshold and no reason given: the rules refuse, in plain Chinese.
    page.goto(f"{base}/cases/{world.refs['xihu_collab']}")
    page.locator("form.action:has(input[value=submit]) button").click()
    page.wait_for_load_state()
    error = page.locator(".flash-error").inner_text()
    assert "「提交申报」未执行" in error and "原则上" in error and "--override" not in error
    assert page.locator("h1 .state").inner_text() == "填报中"
    _shot(page, "03-county-refusal")

    # Another city's case is not there at all for this county.
    response = page.goto(f"{base}/cases/{world.refs['yinzhou_collab']}")
    assert response is not None and response.status == 404
    assert "不在本单位管辖范围内" in page.content()


def test_a_city_recommends_within_quota_and_the_province_reads_the_campaign(live, browser) -> None:  # type: ignore[no-untyped-def]
    base, world = live
    page = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(f"{base}/login/{world.token('hangzhou')}")
    page.goto(f"{base}/campaigns/{CLUSTER}/cities/330100")
    for key in ("rs1", "rs2", "rs3"):
        page.locator(f"tr:has-text('{world.refs[key]}') button:has-text('推荐')").first.click()
        page.wait_for_load_state()
        assert "已推荐" in page.locator(".flash-ok").inner_text()
    page.locator(f"tr:has-text('{world.refs['rs4']}') button:has-text('推荐')").first.click()
    page.wait_for_load_state()
    assert "超出名额" in page.locator(".flash-error").inner_text()
    _shot(page, "04-city-quota-refusal")

    province = browser.new_page(viewport={"width": 1360, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
    province.goto(f"{base}/login/{world.token('province')}")
    province.goto(f"{base}/campaigns/{CLUSTER}")
    assert province.locator("svg.chart").count() == 6
    _shot(province, "05-province-campaign")
    province.goto(f"{base}/campaigns/{CLUSTER}/board")
    _shot(province, "06-province-board")
    province.goto(f"{base}/audit")
    assert "审计链完好" in province.content()
    _shot(province, "07-province-audit")


def _box(locator) -> dict[str, float]:  # type: ignore[no-untyped-def]
    box = locator.bounding_box()
    assert box is not None
    return box  # type: ignore[no-any-return]


def _no_sideways_page_scroll(page) -> None:  # type: ignore[no-untyped-def]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url}：页面宽 {width}px"


def test_a_county_reads_its_pages_on_a_390px_phone(live, browser) -> None:  # type: ignore[no-untyped-def]
    base, world = live
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(f"{base}/login/{world.token('xihu')}")
    page.goto(f"{base}/campaigns/{CLUSTER}")
    # Each nav link on one line: wider than tall, one line high (not one character per line).
    for link in page.locator(".top nav a").all():
        box = _box(link)
        assert box["width"] > box["height"] and box["height"] < 32, (link.inner_text(), box)
    _no_sideways_page_scroll(page)
    # The wide stage table is wider than the phone and scrolls inside its card instead.
    table = page.locator("table").first
    assert _box(table)["width"] > 390
    scroller = table.evaluate(
        """t => { for (let e = t.parentElement; e; e = e.parentElement)
                    if (getComputedStyle(e).overflowX == 'auto') return e.getBoundingClientRect().right;
                  return null; }"""
    )
    assert scroller is not None and scroller <= 390
    # 今天 lies wholly inside the timeline drawing.
    svg = page.locator("svg.timeline")
    label, frame = _box(svg.locator("text", has_text="今天")), _box(svg)
    assert frame["x"] <= label["x"] and label["x"] + label["width"] <= frame["x"] + frame["width"]
    assert frame["y"] <= label["y"] and label["y"] + label["height"] <= frame["y"] + frame["height"]
    _shot(page, "08-county-campaign-390")

    page.goto(f"{base}/campaigns/{CLUSTER}/board")
    _no_sideways_page_scroll(page)
    _shot(page, "09-county-board-390")
    page.goto(f"{base}/cases/{world.refs['xihu_core']}")
    _no_sideways_page_scroll(page)
    _shot(page, "10-county-case-390")
