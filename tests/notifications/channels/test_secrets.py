"""Channel secrets: from settings or owner-only files, and never in a repr, a detail or a log line."""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.robot import RobotTransport
from notifications.channels.secrets import Secret, SecretError, load_secret, scrub
from notifications.channels.sms import SmsTransport
from notifications.channels.zzd import ZzdTransport
from operations.channels import ChannelSettingsError, build_transports
from operations.settings import Settings
from tests.notifications.channels.conftest import closed_port, new_mobile, outgoing, run


def test_a_secret_hides_itself() -> None:
    secret = Secret("s3cr3t-value", "SHENBAO_ZZD_APP_SECRET")
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in f"{secret}" and "s3cr3t" not in str([secret])
    with pytest.raises(TypeError, match="不能序列化"):
        pickle.dumps(secret)
    assert scrub("url?appsecret=s3cr3t-value&x", [secret]) == "url?appsecret=******&x"


def test_a_secret_file_must_be_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "zzd.secret"
    path.write_text("from-file\n")
    path.chmod(0o644)
    with pytest.raises(SecretError, match=r"chmod 600"):
        load_secret("SHENBAO_ZZD_APP_SECRET", None, path)
    path.chmod(0o600)
    loaded = load_secret("SHENBAO_ZZD_APP_SECRET", None, path)
    assert loaded is not None and loaded.reveal() == "from-file"
    with pytest.raises(SecretError, match="只能设置一个"):
        load_secret("SHENBAO_ZZD_APP_SECRET", "also", path)


def test_settings_build_every_configured_channel_and_hide_its_secrets(
    platforms: LocalPlatforms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = platforms.environment(robots=["丽水群"])
    robots_file = tmp_path / "robots.json"
    robots_file.write_text(env.pop("SHENBAO_ROBOTS"))
    robots_file.chmod(0o600)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHENBAO_ROBOTS_FILE", str(robots_file))
    settings = Settings()
    transports = build_transports(settings)
    assert sorted(transports) == ["robot", "sms", "zzd"]
    shown = repr(settings) + "".join(repr(t) for t in transports.values())
    hook = json.loads(robots_file.read_text())["丽水群"]
    for secret in (
        env["SHENBAO_ZZD_APP_SECRET"],
        env["SHENBAO_SMS_KEY_SECRET"],
        hook["secret"],
        hook["access_token"],
    ):
        assert secret not in shown


def test_incomplete_channel_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHENBAO_ZZD_APP_KEY", "k")
    with pytest.raises(ChannelSettingsError, match="SHENBAO_ZZD_APP_SECRET、SHENBAO_ZZD_TENANT_ID"):
        build_transports(Settings())
    with pytest.raises(ChannelSettingsError, match="SHENBAO_ZZD_APP_SECRET、SHENBAO_ZZD_AGENT_ID"):
        build_transports(Settings(zzd_api="dingtalk"))
    monkeypatch.delenv("SHENBAO_ZZD_APP_KEY")
    monkeypatch.setenv("SHENBAO_ROBOTS", '{"群": {"access_token": "t"}}')
    with pytest.raises(ChannelSettingsError, match=r"缺少 access_token（或 webhook 地址）或 secret"):
        build_transports(Settings())
    monkeypatch.setenv(
        "SHENBAO_ROBOTS",
        '{"群": {"webhook": "https://oapi.dingtalk.com/robot/send?access_token=abc", "secret": "SEC1"}}',
    )
    robot = build_transports(Settings())["robot"]
    assert isinstance(robot, RobotTransport) and robot.config.robots["群"].access_token.reveal() == "abc"
    assert build_transports(Settings(robots=None)) == {}
    with pytest.raises(ValueError, match="SHENBAO_SMS_MAX_SEGMENTS 应为不小于 1 的整数"):
        Settings(sms_max_segments=0)


def test_no_secret_reaches_a_detail_or_a_log_line(
    platforms: LocalPlatforms, sim: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    robot_config = platforms.robot_config("舟山群")
    zzd_config, sms_config = platforms.zzd_config(), platforms.sms_config()
    refused = f"http://127.0.0.1:{closed_port()}"
    hook = robot_config.robots["舟山群"]
    secrets = [
        hook.secret.reveal(),
        hook.access_token.reveal(),
        zzd_config.app_secret.reveal(),
        sms_config.key_secret.reveal(),
    ]
    outcomes = []

    async def every_way() -> None:
        for base in (robot_config.base_url, refused):
            transports = [
                (RobotTransport(replace(robot_config, base_url=base), clock=sim), "舟山群"),
                (ZzdTransport(replace(zzd_config, base_url=base), clock=sim), new_mobile()),
                (SmsTransport(replace(sms_config, base_url=base), clock=sim), new_mobile()),
            ]
            for server in platforms.servers:
                server.fail_next(1, 503)
            for transport, address in transports:
                channel = transport.channel
                outcomes.append(await transport.deliver(outgoing(channel, address)))  # 503
                outcomes.append(await transport.deliver(outgoing(channel, address)))  # sent, or refused
                await transport.aclose()
        for server in platforms.servers:
            server.answer_late(0.6)  # longer than the 0.2 s these wait, whatever the load
        for transport, address in [
            (RobotTransport(replace(robot_config, timeout=0.2), clock=sim), "舟山群"),
            (SmsTransport(replace(sms_config, timeout=0.2), clock=sim), new_mobile()),
        ]:
            outcomes.append(await transport.deliver(outgoing(transport.channel, address)))
        for server in platforms.servers:
            server.answer_late(0)

    run(every_way())
    kinds = {o.kind for o in outcomes}
    assert {"temporary", "sent", "unknown"} <= kinds
    said = caplog.text + "".join(f"{o.code} {o.detail} {o.extra}" for o in outcomes)
    assert "HTTP Request" in caplog.text  # httpx did log the requests, without their queries
    for secret in secrets:
        assert secret not in said
