"""A DingTalk group robot (自定义机器人) posting to a bureau's work group, signed (加签).

    POST https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=MS&sign=S
    {"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}
    {"msgtype": "actionCard", "actionCard": {"title", "text", "singleTitle", "singleURL"}}
    → {"errcode": 0, "errmsg": "ok"}

``sign`` is base64(HmacSHA256(secret, f"{timestamp}\\n{secret}")), url-encoded, with the
timestamp in milliseconds; the platform refuses a timestamp more than an hour from its own
clock. A robot takes 20 messages a minute; going over answers errcode 130101 and locks the robot
for 10 minutes. 310000 means the group's security settings refused the message (signature,
keyword, IP allow-list): it never goes through by retrying.

Why httpx and not apprise: apprise's DingTalk plugin (NotifyDingTalk) signs the same way, but
a send answers only True/False, so 130101 (wait 10 minutes), 310000 (never) and a 503 (try
again) look alike; it posts synchronously with ``requests`` and stamps the wall clock, so
neither the dispatcher's event loop nor a simulated clock (by which the local robot judges the
pace) can drive it; and its throttling lives in one process, where the governor's buckets are
in the database. The request itself is ten lines.

The message carries ``msgUuid``, derived from the outbox key, so that a repeat of the same
message is recognisable in the group's record (DingTalk itself does not de-duplicate robot
messages: the governor's at-least-once window is the only source of repeats).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from notifications.channels.base import ChannelName, Delivered, Limit, Outgoing
from notifications.channels.http import LoopClient, json_body, send
from notifications.channels.secrets import Secret

SEND_PATH = "/robot/send"
PER_MINUTE = 20
LOCKOUT_SECONDS = 600.0
TIMESTAMP_WINDOW_MS = 3_600_000  # the platform's tolerance between the signed time and its own

OK = 0
TOO_FAST = 130101  # 发送速度太快而限流: the robot is locked for 10 minutes
SECURITY = 310000  # 加签/关键词/IP 校验未通过
TOKEN_UNKNOWN = 300001  # token is not exist: the robot was removed from the group
BUSY = -1  # 系统繁忙

LIMITS: tuple[Limit, ...] = (
    Limit(
        "robot_per_minute",
        scope="address",
        count=PER_MINUTE,
        window="rolling",
        seconds=60.0,
        lockout_seconds=LOCKOUT_SECONDS,
        note="钉钉群机器人每分钟最多 20 条，超过则被限流 10 分钟",
    ),
)


@dataclass(frozen=True)
class RobotHook:
    """One group's robot: the access token from its webhook address and its signing secret."""

    name: str  # what Outgoing.address says (e.g. 杭州市经信局工作群)
    access_token: Secret
    secret: Secret


@dataclass(frozen=True)
class RobotConfig:
    robots: Mapping[str, RobotHook] = field(default_factory=dict)
    base_url: str = "https://oapi.dingtalk.com"
    timeout: float = 10.0


def sign(secret: str, timestamp_ms: int) -> str:
    """The robot's signature, before url-encoding (the query encoder does that once)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def message_uuid(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"shenbao:robot:{key}"))


def payload(message: Outgoing) -> dict[str, Any]:
    """markdown, or an ActionCard whose button opens the case or board."""
    body: dict[str, Any]
    if message.link:
        body = {
            "msgtype": "actionCard",
            "actionCard": {
                "title": message.title,
                "text": message.text,
                "singleTitle": "查看详情",
                "singleURL": message.link,
                "btnOrientation": "0",
            },
        }
    else:
        body = {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.text}}
    body["msgUuid"] = message_uuid(message.key)
    return body


class RobotTransport:
    channel: ChannelName = "robot"
    limits = LIMITS

    def __init__(self, config: RobotConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self._http = LoopClient(config.timeout)

    def __repr__(self) -> str:
        return f"RobotTransport({self.config.base_url}, robots={sorted(self.config.robots)})"

    async def deliver(self, message: Outgoing) -> Delivered:
        hook = self.config.robots.get(message.address)
        if hook is None:
            return Delivered(
                "permanent", code="no-robot", detail=f"未配置名为「{message.address}」的群机器人"
            )
        timestamp = int(self.clock().timestamp() * 1000)
        params = {
            "access_token": hook.access_token.reveal(),
            "timestamp": str(timestamp),
            "sign": sign(hook.secret.reveal(), timestamp),
        }
        answer = await send(
            self._http,
            "POST",
            self.config.base_url.rstrip("/") + SEND_PATH,
            params=params,
            json=payload(message),
            secrets=(hook.access_token, hook.secret, params["sign"]),
        )
        if isinstance(answer, Delivered):
            return answer
        body = json_body(answer)
        if body is None or "errcode" not in body:
            return Delivered("unknown", code=f"HTTP {answer.status_code}", detail="机器人接口的答复无法识别")
        return outcome(body)

    async def aclose(self) -> None:
        await self._http.aclose()


def outcome(body: Mapping[str, Any]) -> Delivered:
    code = int(body.get("errcode", BUSY))
    said = str(body.get("errmsg", ""))[:200]
    if code == OK:
        return Delivered("sent", code="0")
    if code == TOO_FAST:
        return Delivered(
            "rate_limited",
            code=str(code),
            detail=f"群机器人发送过快，已被限流 10 分钟（{said}）",
            retry_after=LOCKOUT_SECONDS,
        )
    if code == BUSY:
        return Delivered("temporary", code=str(code), detail=f"钉钉系统繁忙（{said}）")
    if code == SECURITY:
        return Delivered(
            "permanent", code=str(code), detail=f"群机器人安全设置拒收（加签、关键词或 IP 白名单）：{said}"
        )
    if code == TOKEN_UNKNOWN:
        return Delivered("permanent", code=str(code), detail="群机器人不存在（可能已被移出群）")
    return Delivered("permanent", code=str(code), detail=f"群机器人拒收：{said}")
