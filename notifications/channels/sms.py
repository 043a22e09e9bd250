"""SMS to enterprises through a gateway, with the provider pluggable.

A ``SmsProvider`` speaks one gateway's protocol: it sends one text to one number and reads
delivery receipts. ``SmsTransport`` holds what is the same for every gateway: numbers, the
length and segment rules, the per-number limits the governor enforces, the client reference.

The shipped provider, ``JsonGateway``, speaks a plain REST/JSON contract of the kind Chinese
SMS aggregators offer (the fields of Aliyun's SendSms — phone, sign name, out id — without its
template indirection), signed so that the secret never travels:

    POST /v1/sms/send   X-Sms-Key, X-Sms-Timestamp (ms), X-Sms-Signature =
                        base64(HmacSHA256(secret, f"{timestamp}\\n{body}"))
         {"to": "13800000000", "sign_name": "申报提醒", "text": "...", "reference": "<key>"}
      200 {"code": "OK", "message_id": "...", "segments": 2}
      200 {"code": "DUPLICATE", "message_id": "..."}       the reference was seen: already sent
      400 {"code": "INVALID_NUMBER" | "BLACKLISTED" | "TOO_LONG" | "CONTENT_REFUSED", "message"}
      401 {"code": "AUTH_FAILED"}                          wrong key or signature
      429 {"code": "RATE_LIMITED", "retry_after": 60}     per-number or account pace
      5xx                                                  try again
    GET  /v1/sms/receipts?after=<cursor>   (signed over an empty body)
      200 {"receipts": [{"id", "message_id", "reference", "to", "status", "error_code", "at"}],
           "next": <cursor>}   status: DELIVERED | FAILED | EXPIRED

Receipts arrive later than the send: ``SmsTransport.receipts(after)`` pulls them, and
``receipts_from_callback(payload)`` reads the same list when the gateway pushes it to us; either
way a ``Receipt`` names the message by ``reference`` (the outbox key) for the outbox to match.

Segments: a text of GSM-7 characters fits 160 in one message and 153 per part when
concatenated; any Chinese character makes the whole text UCS-2, 70 in one and 67 per part. The
gateway prepends the sign name (【申报提醒】), so it counts. Operators cap the parts per text
(``max_segments``); a longer one is refused before it costs anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from notifications.channels.base import ChannelName, Delivered, Limit, Outgoing
from notifications.channels.http import LoopClient, json_body, send
from notifications.channels.secrets import Secret

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€")  # two septets each

ReceiptStatus = Literal["delivered", "failed", "expired"]


def is_ucs2(text: str) -> bool:
    return any(ch not in _GSM7 and ch not in _GSM7_EXT for ch in text)


def text_units(text: str) -> int:
    """Length as the network counts it: UTF-16 code units for UCS-2, septets for GSM-7."""
    if is_ucs2(text):
        return len(text.encode("utf-16-le")) // 2
    return sum(2 if ch in _GSM7_EXT else 1 for ch in text)


def segment_count(text: str) -> int:
    single, part = (70, 67) if is_ucs2(text) else (160, 153)
    units = text_units(text)
    if units <= single:
        return 1
    return -(-units // part)


def normalise_number(raw: str) -> str | None:
    """A mainland mobile as 11 digits (``+86 138-0000-0000`` → ``13800000000``), or None."""
    digits = re.sub(r"[\s\-()]", "", raw)
    digits = re.sub(r"^(\+?86|0086)", "", digits)
    return digits if re.fullmatch(r"1[3-9]\d{9}", digits) else None


def client_reference(key: str) -> str:
    """The outbox key as a gateway's out-id (Aliyun's OutId allows 64 characters)."""
    if len(key) <= 64 and re.fullmatch(r"[A-Za-z0-9_:.-]+", key):
        return key
    return "sb-" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class PerNumber:
    """What one number may receive: carriers and gateways refuse more (Aliyun's defaults for one
    number are of this order); the governor keeps to them."""

    per_minute: int = 1
    per_hour: int = 5
    per_day: int = 10

    def limits(self) -> tuple[Limit, ...]:
        return (
            Limit(
                "sms_per_number_minute",
                "address",
                self.per_minute,
                "rolling",
                60.0,
                note="短信：每号码每分钟",
            ),
            Limit(
                "sms_per_number_hour", "address", self.per_hour, "rolling", 3600.0, note="短信：每号码每小时"
            ),
            Limit("sms_per_number_day", "address", self.per_day, "local_day", note="短信：每号码每天"),
        )


@dataclass(frozen=True)
class Receipt:
    reference: str  # the client reference (the outbox key as sent)
    provider_id: str
    status: ReceiptStatus
    at: datetime
    error_code: str | None = None
    to: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class ReceiptBatch:
    receipts: tuple[Receipt, ...]
    next_cursor: str | None


class SmsProvider(Protocol):
    """One gateway's protocol. ``send`` makes exactly one request."""

    name: str

    async def send(self, http: LoopClient, to: str, text: str, reference: str) -> Delivered: ...

    async def receipts(self, http: LoopClient, after: str | None) -> ReceiptBatch | Delivered: ...


@dataclass(frozen=True)
class SmsConfig:
    base_url: str
    key_id: str
    key_secret: Secret
    sign_name: str = "申报提醒"
    max_segments: int = 3
    per_number: PerNumber = PerNumber()
    timeout: float = 10.0


class JsonGateway:
    """The REST/JSON gateway of the module docstring."""

    name = "json"

    def __init__(self, config: SmsConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))

    def _headers(self, body: str) -> dict[str, str]:
        timestamp = str(int(self.clock().timestamp() * 1000))
        digest = hmac.new(
            self.config.key_secret.reveal().encode(), f"{timestamp}\n{body}".encode(), hashlib.sha256
        ).digest()
        return {
            "X-Sms-Key": self.config.key_id,
            "X-Sms-Timestamp": timestamp,
            "X-Sms-Signature": base64.b64encode(digest).decode(),
            "Content-Type": "application/json; charset=utf-8",
        }

    async def send(self, http: LoopClient, to: str, text: str, reference: str) -> Delivered:
        body = json.dumps(
            {"to": to, "sign_name": self.config.sign_name, "text": text, "reference": reference},
            ensure_ascii=False,
        )
        answer = await send(
            http,
            "POST",
            self.config.base_url.rstrip("/") + "/v1/sms/send",
            content=body.encode(),
            headers=self._headers(body),
            secrets=(self.config.key_secret,),
        )
        if isinstance(answer, Delivered):
            return answer
        parsed = json_body(answer) or {}
        code = str(parsed.get("code", f"HTTP {answer.status_code}"))
        said = str(parsed.get("message", ""))[:200]
        message_id = parsed.get("message_id")
        provider_id = str(message_id) if message_id else None
        if answer.status_code == 200 and code == "OK":
            return Delivered(
                "sent",
                code=code,
                provider_id=provider_id,
                extra={"segments": str(parsed.get("segments", ""))},
            )
        if answer.status_code == 200 and code == "DUPLICATE":
            return Delivered(
                "sent",
                code=code,
                provider_id=provider_id,
                detail="网关已有此消息（客户参考号重复：先前一次发送已送达）",
                extra={"duplicate": "reference"},
            )
        if code == "RATE_LIMITED":
            retry = parsed.get("retry_after")
            return Delivered(
                "rate_limited",
                code=code,
                detail=f"短信网关限流：{said}",
                retry_after=float(retry) if isinstance(retry, int | float) else None,
            )
        if code == "AUTH_FAILED":
            return Delivered(
                "permanent", code=code, detail="短信网关拒绝了凭据（请检查 SHENBAO_SMS_KEY_ID 与密钥）"
            )
        if answer.status_code >= 400 or code != "OK":
            return Delivered("permanent", code=code, detail=f"短信网关拒收：{said or code}")
        return Delivered("unknown", code=code, detail="短信网关的答复无法识别")

    async def receipts(self, http: LoopClient, after: str | None) -> ReceiptBatch | Delivered:
        answer = await send(
            http,
            "GET",
            self.config.base_url.rstrip("/") + "/v1/sms/receipts",
            params={"after": after} if after else {},
            headers=self._headers(""),
            secrets=(self.config.key_secret,),
        )
        if isinstance(answer, Delivered):
            return answer
        parsed = json_body(answer)
        if answer.status_code != 200 or parsed is None:
            return Delivered("temporary", code=f"HTTP {answer.status_code}", detail="读取短信回执失败")
        batch = receipts_from_callback(parsed)
        return ReceiptBatch(batch, str(parsed["next"]) if parsed.get("next") is not None else after)


_STATUS: dict[str, ReceiptStatus] = {"DELIVERED": "delivered", "FAILED": "failed", "EXPIRED": "expired"}


def receipts_from_callback(payload: Mapping[str, Any]) -> tuple[Receipt, ...]:
    """Receipts from the gateway's JSON (pulled, or pushed to our callback). Rows that do not
    parse are skipped, not guessed: a receipt is evidence, and a wrong one is worse than none."""
    out: list[Receipt] = []
    rows = payload.get("receipts")
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        status = _STATUS.get(str(row.get("status", "")).upper())
        reference, provider_id = row.get("reference"), row.get("message_id")
        try:
            at = datetime.fromisoformat(str(row.get("at")))
        except ValueError:
            continue
        if status is None or not reference or not provider_id or at.tzinfo is None:
            continue
        out.append(
            Receipt(
                reference=str(reference),
                provider_id=str(provider_id),
                status=status,
                at=at.astimezone(UTC),
                error_code=str(row["error_code"]) if row.get("error_code") else None,
                to=str(row["to"]) if row.get("to") else None,
                cursor=str(row["id"]) if row.get("id") is not None else None,
            )
        )
    return tuple(out)


class SmsTransport:
    channel: ChannelName = "sms"

    def __init__(
        self,
        config: SmsConfig,
        provider: SmsProvider | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.provider: SmsProvider = provider if provider is not None else JsonGateway(config, clock=clock)
        self.limits = config.per_number.limits()
        self._http = LoopClient(config.timeout)

    def __repr__(self) -> str:
        return f"SmsTransport({self.provider.name}, {self.config.base_url})"

    def segments(self, text: str) -> int:
        """Parts the network will bill for ``text`` as received (sign name included)."""
        return segment_count(f"【{self.config.sign_name}】{text}")

    async def deliver(self, message: Outgoing) -> Delivered:
        to = normalise_number(message.address)
        if to is None:
            return Delivered("permanent", code="INVALID_NUMBER", detail="不是有效的手机号")
        parts = self.segments(message.text)
        if parts > self.config.max_segments:
            return Delivered(
                "permanent",
                code="TOO_LONG",
                detail=f"短信共 {parts} 条，超过上限 {self.config.max_segments} 条",
            )
        return await self.provider.send(self._http, to, message.text, client_reference(message.key))

    async def receipts(self, after: str | None = None) -> ReceiptBatch | Delivered:
        return await self.provider.receipts(self._http, after)

    async def aclose(self) -> None:
        await self._http.aclose()


def references(messages: Iterable[Outgoing]) -> dict[str, str]:
    """client reference → outbox key, to match receipts back to the messages that were sent."""
    return {client_reference(m.key): m.key for m in messages}
