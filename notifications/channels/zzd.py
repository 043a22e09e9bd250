"""浙政钉 work notifications (工作通知) to one person, through 专有钉钉's open platform.

Which API: 浙政钉 is 专有钉钉 (the government's private DingTalk) at
``https://openplatform-pro.ding.zj.gov.cn`` (its SaaS test bed: ``openplatform.dg-work.cn``).
Its work-notification call takes a ``bizMsgId`` that the platform refuses when repeated, which
is exactly the idempotency key the outbox needs; DingTalk's public ``asyncsend_v2`` has none and
tells its daily-cap and same-content refusals only later (``getsendresult``'s forbidden list),
so one request could not say what became of a message. Zhejiang's bureau staff read 浙政钉, and
the roster's column is "手机号码（浙政钉号码）": this is the one to implement. The calls, as the
platform's SDK (zwdd-sdk) and its published request classes give them:

    GET  /gettoken.json?appkey&appsecret                → content.data.{accessToken, expiresIn=7200}
    POST /mozi/employee/get_by_mobiles  access_token, mobiles, areaCode=86, namespace=local, tenantId
                                                        → content.data[{mobile, accountId, employeeCode}]
    POST /message/workNotification      access_token, receiverIds, tenantId, bizMsgId, msg(JSON)
                                                        → content.data.msgId

Every call is signed (X-Hmac-Auth-*: base64 HmacSHA256(app secret, method, timestamp, nonce,
path and the sorted parameters, joined by newlines)) and answers
``{"success": bool, "content": {"success", "responseCode", "responseMessage", "data"}}``.

Answer codes: the platform's public pages give no list; it shares DingTalk's, so these are
DingTalk's documented ones: 40014/42001 a stale token, 60121 nobody with that mobile, 143105
the per-person daily cap of an app, 143106 the same content to the same person twice in a day.
A repeated bizMsgId is recognised by ``BIZ_MSG_ID_REPEATED`` or a message naming it (our
local server says both). Keep them here: this is the one place they are read.

A repeated bizMsgId means **sent**: the key is the same only on attempts of the same message,
so the platform refusing it is the platform saying it already has it (an earlier attempt whose
answer was lost). Retrying would never succeed and falling back would deliver it twice.
The same content twice a day is **permanent** for this channel today (the person has that text
already; ``extra["already_received"]``), the daily cap **rate_limited** until the next day.

The access token (7,200 s) is cached in this process per app and fetched again 5 minutes
early, or at once when a call says it is stale (that call is then made once more with the new
token: the platform refused it before looking at it, and bizMsgId makes a repeat harmless).
The mobile → account id answer is cached for every process by ``UserIds`` (the database).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets as random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from calendars.timeutil import LOCAL_TZ
from notifications.channels.base import ChannelName, Delivered, Limit, Outgoing
from notifications.channels.http import LoopClient, json_body, send
from notifications.channels.secrets import Secret

TOKEN_PATH = "/gettoken.json"
USER_PATH = "/mozi/employee/get_by_mobiles"
SEND_PATH = "/message/workNotification"

TOKEN_LIFETIME = 7200.0
TOKEN_REFRESH_EARLY = 300.0

TOKEN_STALE = {"40014", "42001"}  # 不合法的 access_token · access_token 超时
USER_UNKNOWN = "60121"  # 找不到该用户
DAILY_CAP = "143105"  # 应用每日推送给该用户的消息超过上限
SAME_CONTENT = "143106"  # 应用推送给该用户的消息重复（同一内容一天一次）
BIZ_MSG_ID_REPEATED = "BIZ_MSG_ID_REPEATED"
SIGNATURE = "SIGNATURE"  # the gateway refused the request signature (wrong app secret)

DEFAULT_DAILY_CAP = 500


def limits(daily_cap: int = DEFAULT_DAILY_CAP) -> tuple[Limit, ...]:
    return (
        Limit(
            "zzd_per_person_day",
            scope="address",
            count=daily_cap,
            window="local_day",
            note=f"浙政钉工作通知：同一应用每天给每人最多 {daily_cap} 条",
        ),
        Limit(
            "zzd_same_content_day",
            scope="address_content",
            count=1,
            window="local_day",
            note="浙政钉工作通知：相同内容每天只能给同一人发一次",
        ),
    )


@dataclass(frozen=True)
class ZzdConfig:
    app_key: str
    app_secret: Secret
    tenant_id: str
    base_url: str = "https://openplatform-pro.ding.zj.gov.cn"
    timeout: float = 10.0
    daily_cap: int = DEFAULT_DAILY_CAP

    @property
    def platform(self) -> str:
        return f"zzd:{self.tenant_id}"


class UserIds(Protocol):
    """Where mobile → account id answers are kept (``DatabaseUserIds`` shares them)."""

    def lookup(self, platform: str, mobile: str, now: datetime) -> str | None: ...

    def remember(self, platform: str, mobile: str, user_id: str, now: datetime) -> None: ...

    def forget(self, platform: str, mobile: str) -> None: ...


class MemoryUserIds:
    """One process's cache: for a single command, or where no database is at hand."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], str] = {}

    def lookup(self, platform: str, mobile: str, now: datetime) -> str | None:
        return self._ids.get((platform, mobile))

    def remember(self, platform: str, mobile: str, user_id: str, now: datetime) -> None:
        self._ids[(platform, mobile)] = user_id

    def forget(self, platform: str, mobile: str) -> None:
        self._ids.pop((platform, mobile), None)


# (base_url, app_key) → (token, when it expires by the injected clock)
_TOKENS: dict[tuple[str, str], tuple[str, datetime]] = {}


def signed_headers(
    secret: str, app_key: str, method: str, path: str, params: Mapping[str, str], now: datetime
) -> dict[str, str]:
    """专有钉钉's request signature (X-Hmac-Auth-*) over method, time, nonce, path, parameters."""
    timestamp = now.astimezone(LOCAL_TZ).strftime("%Y-%m-%dT%H:%M:%S.000+08:00")
    nonce = f"{int(now.timestamp() * 1000)}{random.randbelow(9000) + 1000}"
    text = signing_text(method, timestamp, nonce, path, params)
    signature = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()
    return {
        "X-Hmac-Auth-Timestamp": timestamp,
        "X-Hmac-Auth-Version": "1.0",
        "X-Hmac-Auth-Nonce": nonce,
        "apiKey": app_key,
        "X-Hmac-Auth-Signature": signature,
    }


def signing_text(method: str, timestamp: str, nonce: str, path: str, params: Mapping[str, str]) -> str:
    lines = [method.upper(), timestamp, nonce, path]
    if params:
        lines.append("&".join(f"{k}={params[k]}" for k in sorted(params)))
    return "\n".join(lines)


def biz_msg_id(key: str) -> str:
    """The outbox key as the platform takes it (letters, digits, ``-_:``, at most 64)."""
    if len(key) <= 64 and re.fullmatch(r"[A-Za-z0-9_:.-]+", key):
        return key
    return "sb-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def work_message(message: Outgoing) -> dict[str, Any]:
    if message.link:
        return {
            "msgtype": "action_card",
            "action_card": {
                "title": message.title,
                "markdown": message.text,
                "single_title": "查看详情",
                "single_url": message.link,
            },
        }
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.text}}


def mask_mobile(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:] if len(mobile) == 11 else "***"


class ZzdTransport:
    channel: ChannelName = "zzd"

    def __init__(
        self,
        config: ZzdConfig,
        user_ids: UserIds | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.user_ids: UserIds = user_ids if user_ids is not None else MemoryUserIds()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.limits = limits(config.daily_cap)
        self._http = LoopClient(config.timeout)
        self.requests = 0  # every request made, token and lookups included (for the benches)

    def __repr__(self) -> str:
        return f"ZzdTransport({self.config.base_url}, tenant={self.config.tenant_id})"

    # -- the platform's calls ------------------------------------------------------------------
    async def _call(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any] | Delivered:
        config = self.config
        headers = signed_headers(
            config.app_secret.reveal(), config.app_key, method, path, params, self.clock()
        )
        url = config.base_url.rstrip("/") + path
        self.requests += 1
        options: dict[str, Any] = {"params": params} if method == "GET" else {"data": params}
        answer = await send(
            self._http,
            method,
            url,
            headers=headers,
            secrets=(config.app_secret, params.get("access_token"), params.get("appsecret")),
            **options,
        )
        if isinstance(answer, Delivered):
            return answer
        body = json_body(answer)
        if body is None:
            return Delivered("unknown", code=f"HTTP {answer.status_code}", detail="浙政钉接口的答复无法识别")
        return body

    async def _token(self, *, fresh: bool = False) -> str | Delivered:
        now = self.clock()
        cache_key = (self.config.base_url, self.config.app_key)
        cached = _TOKENS.get(cache_key)
        if cached is not None and not fresh and now < cached[1] - timedelta(seconds=TOKEN_REFRESH_EARLY):
            return cached[0]
        body = await self._call(
            "GET", TOKEN_PATH, {"appkey": self.config.app_key, "appsecret": self.config.app_secret.reveal()}
        )
        if isinstance(body, Delivered):
            return body
        ok, code, said, data = _content(body)
        if not ok or not isinstance(data, dict) or not data.get("accessToken"):
            # A wrong app key/secret never mends by retrying: every message would fail alike.
            return Delivered(
                "permanent", code=code or "token", detail=f"获取浙政钉 access_token 失败：{said}"
            )
        lifetime = float(data.get("expiresIn") or TOKEN_LIFETIME)
        token = str(data["accessToken"])
        _TOKENS[cache_key] = (token, now + timedelta(seconds=lifetime))
        return token

    async def _with_token(self, path: str, params: dict[str, str]) -> tuple[bool, str, str, Any] | Delivered:
        """One call with a valid token: fetched when stale, and the call made once more if the
        platform says the cached one is stale after all."""
        for attempt in (0, 1):
            token = await self._token(fresh=attempt == 1)
            if isinstance(token, Delivered):
                return token
            body = await self._call("POST", path, params | {"access_token": token})
            if isinstance(body, Delivered):
                return body
            answer = _content(body)
            if answer[1] not in TOKEN_STALE:
                return answer
        return Delivered("temporary", code=answer[1], detail="浙政钉 access_token 刷新后仍被拒绝")

    async def account_id(self, mobile: str) -> str | Delivered:
        now = self.clock()
        known = self.user_ids.lookup(self.config.platform, mobile, now)
        if known:
            return known
        answer = await self._with_token(
            USER_PATH,
            {"mobiles": mobile, "areaCode": "86", "namespace": "local", "tenantId": self.config.tenant_id},
        )
        if isinstance(answer, Delivered):
            return answer
        ok, code, said, data = answer
        found = [row for row in data or [] if isinstance(row, dict) and row.get("accountId")] if ok else []
        if not found:
            if ok or code == USER_UNKNOWN:
                return Delivered(
                    "permanent", code=USER_UNKNOWN, detail=f"浙政钉通讯录中没有手机号 {mask_mobile(mobile)}"
                )
            return Delivered("temporary", code=code, detail=f"查询浙政钉用户失败：{said}")
        account = str(found[0]["accountId"])
        self.user_ids.remember(self.config.platform, mobile, account, now)
        return account

    # -- the contract ----------------------------------------------------------------------------
    async def deliver(self, message: Outgoing) -> Delivered:
        mobile = re.sub(r"\D", "", message.address)[-11:]
        if not re.fullmatch(r"1[3-9]\d{9}", mobile):
            return Delivered("permanent", code="mobile", detail=f"不是有效的手机号：{mask_mobile(mobile)}")
        account = await self.account_id(mobile)
        if isinstance(account, Delivered):
            return account
        answer = await self._with_token(
            SEND_PATH,
            {
                "receiverIds": account,
                "tenantId": self.config.tenant_id,
                "bizMsgId": biz_msg_id(message.key),
                "msg": json.dumps(work_message(message), ensure_ascii=False),
            },
        )
        if isinstance(answer, Delivered):
            return answer
        return self._outcome(mobile, answer)

    def _outcome(self, mobile: str, answer: tuple[bool, str, str, Any]) -> Delivered:
        ok, code, said, data = answer
        if ok:
            msg_id = data.get("msgId") if isinstance(data, dict) else None
            return Delivered("sent", code="0", provider_id=str(msg_id) if msg_id else None)
        if code == BIZ_MSG_ID_REPEATED or ("bizMsgId" in said and "重复" in said):
            return Delivered(
                "sent",
                code=code or BIZ_MSG_ID_REPEATED,
                detail="平台已有此消息（bizMsgId 重复：先前一次发送已送达）",
                extra={"duplicate": "bizMsgId"},
            )
        if code == DAILY_CAP:
            return Delivered(
                "rate_limited",
                code=code,
                detail=f"今日发给此人的工作通知已达上限（{said}）",
                retry_after=_seconds_to_next_local_day(self.clock()),
            )
        if code == SAME_CONTENT:
            return Delivered(
                "permanent",
                code=code,
                detail="今日已向此人发送过相同内容的工作通知，平台不再重复推送",
                extra={"already_received": "same_content"},
            )
        if code == USER_UNKNOWN:
            self.user_ids.forget(self.config.platform, mobile)
            return Delivered("permanent", code=code, detail="浙政钉账号已不存在（已清除缓存的账号）")
        if code in ("-1", "500", "SYSTEM_BUSY"):
            return Delivered("temporary", code=code, detail=f"浙政钉系统繁忙：{said}")
        return Delivered("permanent", code=code or "error", detail=f"浙政钉拒收：{said}")

    async def aclose(self) -> None:
        await self._http.aclose()


def _content(body: Mapping[str, Any]) -> tuple[bool, str, str, Any]:
    """(success, responseCode, responseMessage, data) from the platform's two-level answer."""
    content = body.get("content")
    if not isinstance(content, dict):
        content = {}
    code = str(content.get("responseCode") or body.get("errorCode") or body.get("bizErrorCode") or "")
    said = str(content.get("responseMessage") or body.get("errorMsg") or body.get("message") or "")[:200]
    ok = bool(body.get("success")) and bool(content.get("success", True)) and code in ("", "0")
    return ok, ("" if ok else code), said, content.get("data")


def _seconds_to_next_local_day(now: datetime) -> float:
    local = now.astimezone(LOCAL_TZ)
    tomorrow = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (tomorrow - local).total_seconds())


def clear_token_cache() -> None:
    """Forget every cached access token (a new app secret; tests of expiry)."""
    _TOKENS.clear()
