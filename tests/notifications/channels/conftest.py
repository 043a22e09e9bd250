"""One set of local platform servers per test session (in-process threads), and a shared clock.

The servers keep state between tests (robots, tokens, bizMsgIds): each test uses its own robot
name, mobile and message keys, and ``sim`` puts the clock back and clears the faults.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from notifications.channels.base import ChannelName, Outgoing
from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.zzd import clear_token_cache

# Monday 2026-06-22 09:30 in Shanghai
NOW = datetime(2026, 6, 22, 1, 30, tzinfo=UTC)

T = TypeVar("T")
_mobiles = itertools.count(13_900_000_001)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def new_mobile() -> str:
    return str(next(_mobiles))


def outgoing(channel: ChannelName, address: str, text: str = "", **kw: Any) -> Outgoing:
    key = kw.pop("key", f"n:{uuid.uuid4().hex[:16]}")
    return Outgoing(
        key=key,
        channel=channel,
        address=address,
        title=kw.pop("title", "申报提醒"),
        text=text or f"申报信息表将于本周四（6月25日）24:00截止 {key}",
        **kw,
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture(scope="session")
def platforms(clock: ManualClock) -> Iterator[LocalPlatforms]:
    with LocalPlatforms(clock=clock) as started:
        yield started


@pytest.fixture
def sim(clock: ManualClock, platforms: LocalPlatforms) -> Iterator[ManualClock]:
    clock.set(NOW)
    clear_token_cache()
    for server in platforms.servers:
        server.reset()
    yield clock
    for server in platforms.servers:
        server.reset()
