"""The group robot transport against the local robot server, over real HTTP."""

from __future__ import annotations

from dataclasses import replace

from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.robot import LIMITS, RobotConfig, RobotHook, RobotTransport, message_uuid, sign
from notifications.channels.secrets import Secret
from tests.notifications.channels.conftest import NOW, closed_port, outgoing, run


def _robot(platforms: LocalPlatforms, sim: ManualClock, name: str) -> RobotTransport:
    return RobotTransport(platforms.robot_config(name), clock=sim)


def test_it_signs_as_dingtalk_documents() -> None:
    # base64(HmacSHA256("SECabc", "1700000000000\nSECabc")), computed independently
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    ).decode()
    assert sign("SECabc", 1_700_000_000_000) == expected


def test_it_delivers_markdown_with_a_uuid_from_the_key(platforms: LocalPlatforms, sim: ManualClock) -> None:
    robot = _robot(platforms, sim, "杭州市经信局工作群")
    message = outgoing("robot", "杭州市经信局工作群", "#### 提醒\n- 环节：申报")
    result = run(robot.deliver(message))
    assert result.kind == "sent"
    [got] = platforms.robot.messages("杭州市经信局工作群")
    assert got["msgtype"] == "markdown" and got["markdown"]["text"] == "#### 提醒\n- 环节：申报"
    assert got["msgUuid"] == message_uuid(message.key)
    assert got["signed_at_ms"] == int(NOW.timestamp() * 1000)


def test_a_link_makes_an_action_card(platforms: LocalPlatforms, sim: ManualClock) -> None:
    robot = _robot(platforms, sim, "宁波群")
    run(robot.deliver(outgoing("robot", "宁波群", link="https://sb.example/cases/JQ-1")))
    [got] = platforms.robot.messages("宁波群")
    assert got["msgtype"] == "actionCard"
    assert got["actionCard"]["singleURL"] == "https://sb.example/cases/JQ-1"


def test_a_wrong_secret_is_refused_for_good(platforms: LocalPlatforms, sim: ManualClock) -> None:
    config = platforms.robot_config("温州群")
    hook = config.robots["温州群"]
    wrong = RobotConfig({"温州群": replace(hook, secret=Secret("SECwrong", "test"))}, config.base_url)
    result = run(RobotTransport(wrong, clock=sim).deliver(outgoing("robot", "温州群")))
    assert (result.kind, result.code) == ("permanent", "310000")
    assert platforms.robot.messages("温州群") == []


def test_a_timestamp_more_than_an_hour_off_is_refused(platforms: LocalPlatforms, sim: ManualClock) -> None:
    config = platforms.robot_config("嘉兴群")
    behind = RobotTransport(config, clock=lambda: NOW.replace(hour=0, minute=29))  # 61 minutes behind
    assert run(behind.deliver(outgoing("robot", "嘉兴群"))).code == "310000"
    close = RobotTransport(config, clock=lambda: NOW.replace(hour=0, minute=31))  # 59 minutes
    assert run(close.deliver(outgoing("robot", "嘉兴群"))).kind == "sent"


def test_an_unknown_robot_name_is_permanent_without_a_request(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    robot = _robot(platforms, sim, "湖州群")
    result = run(robot.deliver(outgoing("robot", "不存在的群")))
    assert result.kind == "permanent" and platforms.robot.received == []


def test_the_21st_message_in_a_minute_locks_the_robot_for_ten_minutes(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    robot = _robot(platforms, sim, "绍兴群")

    async def burst(count: int) -> list[str]:
        kinds = []
        for _ in range(count):
            kinds.append((await robot.deliver(outgoing("robot", "绍兴群"))).kind)
            sim.advance(1)
        return kinds

    assert run(burst(20)) == ["sent"] * 20
    refused = run(robot.deliver(outgoing("robot", "绍兴群")))
    assert (refused.kind, refused.code, refused.retry_after) == ("rate_limited", "130101", 600.0)
    sim.advance(120)  # the minute is long past, but the lock holds
    assert run(robot.deliver(outgoing("robot", "绍兴群"))).code == "130101"
    sim.advance(600)
    assert run(robot.deliver(outgoing("robot", "绍兴群"))).kind == "sent"
    assert platforms.robot.busiest_minute("绍兴群") == 20
    assert LIMITS[0].count == 20 and LIMITS[0].lockout_seconds == 600


def test_a_5xx_burst_is_temporary(platforms: LocalPlatforms, sim: ManualClock) -> None:
    robot = _robot(platforms, sim, "金华群")
    platforms.robot.fail_next(2, 502)
    first = run(robot.deliver(outgoing("robot", "金华群")))
    assert (first.kind, first.code) == ("temporary", "HTTP 502")
    assert run(robot.deliver(outgoing("robot", "金华群"))).kind == "temporary"
    assert run(robot.deliver(outgoing("robot", "金华群"))).kind == "sent"


def test_an_outage_answers_503_until_it_ends(platforms: LocalPlatforms, sim: ManualClock) -> None:
    robot = _robot(platforms, sim, "衢州群")
    platforms.robot.outage(until=sim.advance(0).replace(hour=2, minute=30))
    assert run(robot.deliver(outgoing("robot", "衢州群"))).code == "HTTP 503"
    sim.advance(3600)
    assert run(robot.deliver(outgoing("robot", "衢州群"))).kind == "sent"


def test_connection_refused_is_temporary(sim: ManualClock) -> None:
    hook = RobotHook("台州群", Secret("t" * 64, "token"), Secret("SECx", "secret"))
    robot = RobotTransport(RobotConfig({"台州群": hook}, f"http://127.0.0.1:{closed_port()}", 2.0), clock=sim)
    result = run(robot.deliver(outgoing("robot", "台州群")))
    assert result.kind == "temporary" and result.code == "ConnectError"
