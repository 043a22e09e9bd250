"""The contract between the outbox and a channel's transport.

A transport turns one ``Outgoing`` message into one request to one platform and says what came
of it, as a ``Delivered``; it does not retry, queue, rate-limit or fall back: the governor and the
dispatcher do that, once, for every channel (one way through). A transport never logs or returns
a secret (app key, robot secret, gateway password, access token) in ``detail``.

Idempotency: ``Outgoing.key`` is derived from the outbox key and is the same on every attempt of
the same message, so the platform can recognise a repeat (浙政钉's bizMsgId, a robot message's
uuid, an SMS gateway's client reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

# email: SMTP (notifications/dispatcher.py) · zzd: 浙政钉/DingTalk work notification to a person
# · robot: a DingTalk group robot (a bureau's work group) · sms: an SMS gateway
ChannelName: TypeAlias = Literal["email", "zzd", "robot", "sms"]
CHANNELS: tuple[ChannelName, ...] = ("email", "zzd", "robot", "sms")
CHANNEL_LABELS: dict[str, str] = {"email": "邮件", "zzd": "浙政钉", "robot": "钉钉群机器人", "sms": "短信"}

# sent: the platform accepted it · temporary: try again later (5xx, timeout before sending)
# · permanent: this message can never go this way (unknown user, bad number): dead-letter it and
# fall back to another channel · unknown: handed over, answer lost (retry with the same key only)
# · rate_limited: the platform refused for pace or quota; ``retry_after`` says when to try again
DeliveryKind: TypeAlias = Literal["sent", "temporary", "permanent", "unknown", "rate_limited"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: str  # idempotency key, stable across attempts (from the outbox key)
    channel: ChannelName
    address: str  # zzd: the person's mobile; robot: the robot's configured name; sms: the number
    title: str  # DingTalk markdown/ActionCard title; unused by SMS
    text: str  # the body already rendered for this channel (markdown, or plain text for SMS)
    link: str | None = None  # a link to the case or board (ActionCard button, SMS short link)
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class Delivered:
    kind: DeliveryKind
    code: str | None = None  # the platform's own code (errcode 130101, HTTP 503, …)
    detail: str = ""  # what a person reads in the outbox; never a secret
    retry_after: float | None = None  # seconds, for rate_limited / temporary when the platform says
    provider_id: str | None = None  # the platform's message/task id, for receipts
    extra: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    channel: ChannelName

    async def deliver(self, message: Outgoing) -> Delivered: ...

    async def aclose(self) -> None: ...


# A platform's own quota, as data the governor enforces before it sends (a transport never
# waits or counts). ``scope``: what one bucket is kept for (``address``: one robot / one person
# / one number; ``address_content``: one person and one text). ``window``: ``rolling`` seconds,
# or ``local_day``: the calendar day in Asia/Shanghai, as the platforms count their daily caps.
LimitScope: TypeAlias = Literal["address", "address_content"]
LimitWindow: TypeAlias = Literal["rolling", "local_day"]


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    scope: LimitScope
    count: int  # at most this many messages per bucket and window
    window: LimitWindow = "rolling"
    seconds: float = 0.0  # the rolling window's length (unused for local_day)
    lockout_seconds: float | None = None  # going over locks the address this long (robots: 600)
    note: str = ""  # what a person reads in the governor's explanation
