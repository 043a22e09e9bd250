"""The channel transports as configured: settings (and secret files) read once, here.

Every edge that sends on a channel gets its transports from ``build_transports``; a channel
whose settings are absent is simply not offered (``configured_channels``), and a channel whose
settings are wrong stops the command with the setting named (``ChannelSettingsError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from models.db import Database
from notifications.channels.base import ChannelName, Transport
from notifications.channels.robot import RobotConfig, RobotHook, RobotTransport
from notifications.channels.secrets import Secret, SecretError, load_secret, read_secret_file
from notifications.channels.sms import PerNumber, SmsConfig, SmsTransport
from notifications.channels.user_ids import DatabaseUserIds
from notifications.channels.zzd import UserIds, ZzdConfig, ZzdTransport
from operations.settings import Settings


class ChannelSettingsError(SecretError):
    """A channel's settings that cannot be used; the message names the setting."""


def zzd_config(settings: Settings) -> ZzdConfig | None:
    secret = load_secret("SHENBAO_ZZD_APP_SECRET", settings.zzd_app_secret, settings.zzd_app_secret_file)
    given = [settings.zzd_app_key, secret, settings.zzd_tenant_id]
    if not any(given):
        return None
    missing = [
        name
        for name, value in zip(
            ("SHENBAO_ZZD_APP_KEY", "SHENBAO_ZZD_APP_SECRET", "SHENBAO_ZZD_TENANT_ID"), given, strict=True
        )
        if not value
    ]
    if missing or secret is None or not settings.zzd_app_key or not settings.zzd_tenant_id:
        raise ChannelSettingsError(f"浙政钉设置不完整，缺少：{'、'.join(missing)}")
    return ZzdConfig(
        app_key=settings.zzd_app_key,
        app_secret=secret,
        tenant_id=settings.zzd_tenant_id,
        base_url=settings.zzd_base_url,
        timeout=settings.channel_timeout,
        daily_cap=settings.zzd_daily_cap,
    )


def robot_config(settings: Settings) -> RobotConfig | None:
    if settings.robots and settings.robots_file is not None:
        raise ChannelSettingsError("SHENBAO_ROBOTS 与 SHENBAO_ROBOTS_FILE 只能设置一个")
    setting = "SHENBAO_ROBOTS"
    text = settings.robots
    if settings.robots_file is not None:
        setting = "SHENBAO_ROBOTS_FILE"
        text = read_secret_file(settings.robots_file, setting)
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        # The position only: the text itself holds secrets.
        raise ChannelSettingsError(
            f"{setting} 不是合法的 JSON（第 {getattr(exc, 'lineno', '?')} 行）"
        ) from None
    if not isinstance(parsed, dict) or not parsed:
        raise ChannelSettingsError(f'{setting} 应为 {{"群名称": {{"access_token": "...", "secret": "..."}}}}')
    hooks: dict[str, RobotHook] = {}
    for name, entry in parsed.items():
        if not isinstance(entry, dict) or not entry.get("access_token") or not entry.get("secret"):
            raise ChannelSettingsError(f"{setting}：群机器人「{name}」缺少 access_token 或 secret")
        hooks[str(name)] = RobotHook(
            str(name),
            Secret(str(entry["access_token"]), f"{setting}[{name}].access_token"),
            Secret(str(entry["secret"]), f"{setting}[{name}].secret"),
        )
    return RobotConfig(robots=hooks, base_url=settings.robot_base_url, timeout=settings.channel_timeout)


def sms_config(settings: Settings) -> SmsConfig | None:
    secret = load_secret("SHENBAO_SMS_KEY_SECRET", settings.sms_key_secret, settings.sms_key_secret_file)
    if not any([settings.sms_base_url, settings.sms_key_id, secret]):
        return None
    if not settings.sms_base_url or not settings.sms_key_id or secret is None:
        missing = [
            name
            for name, value in (
                ("SHENBAO_SMS_BASE_URL", settings.sms_base_url),
                ("SHENBAO_SMS_KEY_ID", settings.sms_key_id),
                ("SHENBAO_SMS_KEY_SECRET", secret),
            )
            if not value
        ]
        raise ChannelSettingsError(f"短信网关设置不完整，缺少：{'、'.join(missing)}")
    return SmsConfig(
        base_url=settings.sms_base_url,
        key_id=settings.sms_key_id,
        key_secret=secret,
        sign_name=settings.sms_sign_name,
        max_segments=settings.sms_max_segments,
        per_number=PerNumber(
            settings.sms_per_number_minute, settings.sms_per_number_hour, settings.sms_per_number_day
        ),
        timeout=settings.channel_timeout,
    )


def build_transports(
    settings: Settings,
    db: Database | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    user_ids: UserIds | None = None,
) -> dict[ChannelName, Transport]:
    """A transport for every channel beside email that is configured. ``db``: where 浙政钉
    account ids are shared (without it, each process keeps its own)."""
    transports: dict[ChannelName, Transport] = {}
    try:
        zzd = zzd_config(settings)
        robots = robot_config(settings)
        sms = sms_config(settings)
    except ChannelSettingsError:
        raise
    except SecretError as exc:
        raise ChannelSettingsError(str(exc)) from None
    if zzd is not None:
        if user_ids is None and db is not None:
            user_ids = DatabaseUserIds(db, ttl=timedelta(days=settings.zzd_user_ttl_days))
        transports["zzd"] = ZzdTransport(zzd, user_ids, clock=clock)
    if robots is not None:
        transports["robot"] = RobotTransport(robots, clock=clock)
    if sms is not None:
        transports["sms"] = SmsTransport(sms, clock=clock)
    return transports
