"""Local HTTP servers that keep each platform's contract: for the demo, tests and fault drills.

DingTalk, 浙政钉 and an SMS gateway cannot be reached from here, so these stand in for them the
way notifications/loopback.py stands in for a mail server: real HTTP on 127.0.0.1, driven by the
real transports, keeping what they accept so that a test or the demo can count what each person
got. Each enforces the rules its platform documents, judged by its own clock (injectable, so a
simulated hour runs in a second):

* ``RobotServer`` — the signature and its 1-hour timestamp window (errcode 310000), 20 messages
  a minute per robot judged from the *signed* timestamp, and over that 130101 with the robot
  locked for 10 minutes.
* ``ZzdServer`` — 专有钉钉's request signature, ``gettoken.json`` with tokens valid 7,200 s (the
  same token while it lives; 42001 after), ``get_by_mobiles``, and ``workNotification`` with the
  repeated-bizMsgId refusal, same content to the same person once a day (143106) and a daily
  cap per person (143105).
* ``SmsServer`` — the JSON gateway of notifications/channels/sms.py: signature, invalid and
  blacklisted numbers, a per-number pace (429), repeated references, and receipts that become
  readable ``receipt_delay`` seconds after the send (FAILED for numbers in ``undeliverable``).

Every server has the same fault switches: ``fail_next(n, status)`` (a burst of 5xx),
``outage(until)`` (503 until that instant of its clock: down for a period), ``stop()`` (the
port refuses connections) and ``answer_late(seconds)`` (accepts, then answers late).

    with LocalPlatforms() as platforms:
        robot = RobotTransport(platforms.robot_config())
        ...
        platforms.robot.messages("杭州市经信局工作群")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets as random
import threading
import time as walltime
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from calendars.timeutil import LOCAL_TZ
from notifications.channels import robot as robot_api
from notifications.channels import zzd as zzd_api
from notifications.channels.robot import RobotConfig, RobotHook
from notifications.channels.secrets import Secret
from notifications.channels.sms import PerNumber, SmsConfig, segment_count
from notifications.channels.zzd import ZzdConfig

Clock = Callable[[], datetime]
Answer = tuple[int, dict[str, Any]]


def _real_clock() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told: shared by the servers and the transports of a
    simulation, so an hour of sending takes as long as the requests do."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        if self.method == "GET":
            return dict(self.query)
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)) | self.query

    def json(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class Received:
    """One request as the server saw it, and what it answered."""

    path: str
    at: datetime  # the server's clock
    status: int
    code: str  # the platform's answer code ("0", "130101", "OK", "HTTP 503", …)
    data: dict[str, Any] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        status, answer = self.server.owner.answer(request)
        payload = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 429 and "retry_after" in answer:
            self.send_header("Retry-After", str(answer["retry_after"]))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the servers record what they receive; stderr lines would only be noise in tests


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LocalServer, port: int) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)


class LocalServer:
    """One platform on one port, with the fault switches every platform shares."""

    platform = "local"

    def __init__(self, *, clock: Clock | None = None, port: int = 0) -> None:
        self.clock: Clock = clock or _real_clock
        self.lock = threading.RLock()
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.received: list[Received] = []
        self._fail_next: deque[int] = deque()
        self._outage_until: datetime | None = None
        self._late = 0.0

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> LocalServer:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: a client now gets connection refused (the same port comes back on start)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` requests get ``status`` (a burst of 5xx), whatever they ask."""
        with self.lock:
            self._fail_next.extend([status] * count)

    def outage(self, until: datetime | None) -> None:
        """Answer 503 until ``until`` by this server's clock (None: back now)."""
        with self.lock:
            self._outage_until = until

    def answer_late(self, seconds: float) -> None:
        """Handle each request, then wait before answering (the client may time out: 'unknown')."""
        with self.lock:
            self._late = seconds

    def reset(self) -> None:
        """Forget what was received and every fault; platform state is each subclass's."""
        with self.lock:
            self.received.clear()
            self._fail_next.clear()
            self._outage_until = None
            self._late = 0.0

    # -- serving --------------------------------------------------------------------------------------
    def answer(self, request: Request) -> Answer:
        with self.lock:
            now = self.clock()
            fault: int | None = None
            if self._fail_next:
                fault = self._fail_next.popleft()
            elif self._outage_until is not None and now < self._outage_until:
                fault = 503
            if fault is not None:
                self.received.append(Received(request.path, now, fault, f"HTTP {fault}"))
                status, body = fault, {"message": "Service Unavailable"}
            else:
                status, body = self.handle(request, now)
            late = self._late
        if late > 0:
            walltime.sleep(late)
        return status, body

    def handle(self, request: Request, now: datetime) -> Answer:
        raise NotImplementedError

    def _record(self, request: Request, now: datetime, status: int, code: str, **data: Any) -> None:
        self.received.append(Received(request.path, now, status, code, data))

    def codes(self) -> list[str]:
        with self.lock:
            return [r.code for r in self.received]


# -- DingTalk group robots ------------------------------------------------------------------------------


@dataclass
class _Robot:
    name: str
    token: str
    secret: str
    accepted: deque[int] = field(default_factory=deque)  # signed timestamps (ms) of the last minute
    locked_until_ms: int = 0


class RobotServer(LocalServer):
    platform = "robot"

    def __init__(self, *, clock: Clock | None = None, port: int = 0) -> None:
        super().__init__(clock=clock, port=port)
        self._robots: dict[str, _Robot] = {}
        self.delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add_robot(self, name: str, token: str | None = None, secret: str | None = None) -> RobotHook:
        """A robot in a group; returns the hook (token and secret) a transport needs for it."""
        robot = _Robot(name, token or random.token_hex(32), secret or "SEC" + random.token_hex(32))
        with self.lock:
            self._robots[robot.token] = robot
        return RobotHook(
            name, Secret(robot.token, f"robot {name} token"), Secret(robot.secret, f"robot {name} secret")
        )

    def handle(self, request: Request, now: datetime) -> Answer:
        if request.path != robot_api.SEND_PATH or request.method != "POST":
            return 404, {"errcode": 404, "errmsg": "not found"}
        robot = self._robots.get(request.query.get("access_token", ""))
        if robot is None:
            self._record(request, now, 200, str(robot_api.TOKEN_UNKNOWN))
            return 200, {"errcode": robot_api.TOKEN_UNKNOWN, "errmsg": "token is not exist"}
        try:
            timestamp = int(request.query.get("timestamp", ""))
        except ValueError:
            timestamp = -1
        server_ms = int(now.timestamp() * 1000)
        if abs(server_ms - timestamp) > robot_api.TIMESTAMP_WINDOW_MS:
            self._record(request, now, 200, str(robot_api.SECURITY), robot=robot.name, why="timestamp")
            return 200, {"errcode": robot_api.SECURITY, "errmsg": "invalid timestamp"}
        expected = robot_api.sign(robot.secret, timestamp)
        if not hmac.compare_digest(request.query.get("sign", ""), expected):
            self._record(request, now, 200, str(robot_api.SECURITY), robot=robot.name, why="sign")
            return 200, {"errcode": robot_api.SECURITY, "errmsg": "sign not match"}
        body = request.json()
        if timestamp < robot.locked_until_ms:
            self._record(request, now, 200, str(robot_api.TOO_FAST), robot=robot.name, why="locked")
            return 200, {"errcode": robot_api.TOO_FAST, "errmsg": "send too fast, exceed 20 times per minute"}
        window = robot.accepted
        while window and window[0] <= timestamp - 60_000:
            window.popleft()
        if sum(1 for t in window if t <= timestamp) >= robot_api.PER_MINUTE:
            robot.locked_until_ms = timestamp + int(robot_api.LOCKOUT_SECONDS * 1000)
            self._record(request, now, 200, str(robot_api.TOO_FAST), robot=robot.name, why="over")
            return 200, {"errcode": robot_api.TOO_FAST, "errmsg": "send too fast, exceed 20 times per minute"}
        window.append(timestamp)
        message = {"signed_at_ms": timestamp, **body}
        self.delivered[robot.name].append(message)
        self._record(request, now, 200, "0", robot=robot.name, uuid=body.get("msgUuid"))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def messages(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.delivered.get(name, ()))

    def busiest_minute(self, name: str) -> int:
        """The most messages this robot accepted in any 60 s (by signed timestamp)."""
        stamps = sorted(m["signed_at_ms"] for m in self.messages(name))
        best, start = 0, 0
        for end, stamp in enumerate(stamps):
            while stamps[start] <= stamp - 60_000:
                start += 1
            best = max(best, end - start + 1)
        return best


# -- 浙政钉 work notifications --------------------------------------------------------------------------


def _ok(data: Any) -> dict[str, Any]:
    return {
        "success": True,
        "content": {"success": True, "responseCode": "0", "responseMessage": "OK", "data": data},
    }


def _refused(code: str, message: str) -> dict[str, Any]:
    return {"success": True, "content": {"success": False, "responseCode": code, "responseMessage": message}}


class ZzdServer(LocalServer):
    platform = "zzd"

    def __init__(
        self,
        *,
        app_key: str = "shenbao-local",
        app_secret: str | None = None,
        tenant_id: str = "196729",
        people: Iterable[str] | None = None,
        daily_cap: int = zzd_api.DEFAULT_DAILY_CAP,
        clock: Clock | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(clock=clock, port=port)
        self.app_key = app_key
        self.app_secret = app_secret or random.token_urlsafe(24)
        self.tenant_id = tenant_id
        self.daily_cap = daily_cap
        # None: everybody's mobile is in the directory (an account id is made on first lookup)
        self.people: dict[str, str] | None = None if people is None else {}
        self._ids = itertools.count(70_000_001)
        for mobile in people or ():
            self.add_person(mobile)
        self._auto: dict[str, str] = {}
        self.absent: set[str] = set()  # mobiles nobody in the directory has (60121)
        self._tokens: dict[str, datetime] = {}
        self._current: str | None = None
        self._biz_ids: set[str] = set()
        self._per_day: dict[tuple[str, str], int] = defaultdict(int)
        self._contents: set[tuple[str, str, str]] = set()
        self.delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)  # by account id

    def add_person(self, mobile: str) -> str:
        with self.lock:
            if self.people is None:
                self.people = {}
            account = self.people.get(mobile) or str(next(self._ids))
            self.people[mobile] = account
            return account

    def account_of(self, mobile: str) -> str | None:
        with self.lock:
            if mobile in self.absent:
                return None
            if self.people is not None:
                return self.people.get(mobile)
            if mobile not in self._auto:
                self._auto[mobile] = str(next(self._ids))
            return self._auto[mobile]

    def revoke_tokens(self) -> None:
        """The platform forgets every token it issued (a secret rotated, a restart): 40014."""
        with self.lock:
            self._tokens.clear()
            self._current = None

    def _signature_ok(self, request: Request) -> bool:
        h = request.headers
        if h.get("apikey") != self.app_key:
            return False
        text = zzd_api.signing_text(
            request.method,
            h.get("x-hmac-auth-timestamp", ""),
            h.get("x-hmac-auth-nonce", ""),
            request.path,
            request.form(),
        )
        expected = base64.b64encode(
            hmac.new(self.app_secret.encode(), text.encode(), hashlib.sha256).digest()
        )
        return hmac.compare_digest(h.get("x-hmac-auth-signature", "").encode(), expected)

    def handle(self, request: Request, now: datetime) -> Answer:
        if not self._signature_ok(request):
            self._record(request, now, 200, zzd_api.SIGNATURE)
            return 200, {"success": False, "errorCode": zzd_api.SIGNATURE, "errorMsg": "签名校验失败"}
        params = request.form()
        if request.path == zzd_api.TOKEN_PATH:
            return self._gettoken(request, params, now)
        token = params.get("access_token", "")
        expires = self._tokens.get(token)
        if expires is None or now >= expires:
            code = "42001" if expires is not None else "40014"
            self._record(request, now, 200, code)
            return 200, _refused(code, "access_token超时" if expires is not None else "不合法的access_token")
        if params.get("tenantId") != self.tenant_id:
            self._record(request, now, 200, "TENANT")
            return 200, _refused("TENANT", "租户不存在或无权限")
        if request.path == zzd_api.USER_PATH:
            rows = []
            for mobile in filter(None, params.get("mobiles", "").split(",")):
                account = self.account_of(mobile)
                if account is not None:
                    rows.append(
                        {"mobile": mobile, "accountId": int(account), "employeeCode": f"GE_{account}"}
                    )
            self._record(request, now, 200, "0", found=len(rows))
            return 200, _ok(rows)
        if request.path == zzd_api.SEND_PATH:
            return self._work_notification(request, params, now)
        return 404, {"success": False, "errorCode": "404", "errorMsg": "api not found"}

    def _gettoken(self, request: Request, params: dict[str, str], now: datetime) -> Answer:
        if params.get("appkey") != self.app_key or params.get("appsecret") != self.app_secret:
            self._record(request, now, 200, "40089")
            return 200, _refused("40089", "不合法的appkey或appsecret")
        # While a token lives, asking again returns it and renews it (有效期内重复获取返回相同
        # 结果，并自动续期); once it has expired, a new one.
        current = self._current
        if current is None or now >= self._tokens[current]:
            current = "app_" + random.token_hex(16)
            self._current = current
        self._tokens[current] = now + timedelta(seconds=zzd_api.TOKEN_LIFETIME)
        self._record(request, now, 200, "0")
        return 200, _ok({"accessToken": current, "expiresIn": int(zzd_api.TOKEN_LIFETIME)})

    def _work_notification(self, request: Request, params: dict[str, str], now: datetime) -> Answer:
        biz_id = params.get("bizMsgId", "")
        receivers = [r for r in params.get("receiverIds", "").split(",") if r]
        if biz_id and biz_id in self._biz_ids:
            self._record(request, now, 200, zzd_api.BIZ_MSG_ID_REPEATED, biz_msg_id=biz_id)
            return 200, _refused(zzd_api.BIZ_MSG_ID_REPEATED, "bizMsgId重复")
        known = set(self._auto.values()) | set((self.people or {}).values())
        if not receivers or any(r not in known for r in receivers):
            self._record(request, now, 200, zzd_api.USER_UNKNOWN)
            return 200, _refused(zzd_api.USER_UNKNOWN, "找不到该用户")
        day = now.astimezone(LOCAL_TZ).date().isoformat()
        msg = params.get("msg", "")
        content = hashlib.sha256(msg.encode()).hexdigest()
        for receiver in receivers:
            if (receiver, day, content) in self._contents:
                self._record(request, now, 200, zzd_api.SAME_CONTENT, receiver=receiver)
                return 200, _refused(zzd_api.SAME_CONTENT, "同一内容每天只能发送一次")
            if self._per_day[(receiver, day)] >= self.daily_cap:
                self._record(request, now, 200, zzd_api.DAILY_CAP, receiver=receiver)
                return 200, _refused(zzd_api.DAILY_CAP, "超过每人每日消息上限")
        try:
            parsed = json.loads(msg)
        except ValueError:
            self._record(request, now, 200, "MSG")
            return 200, _refused("MSG", "msg 不是合法的 JSON")
        msg_id = random.token_hex(16)
        for receiver in receivers:
            self._contents.add((receiver, day, content))
            self._per_day[(receiver, day)] += 1
            self.delivered[receiver].append(
                {"biz_msg_id": biz_id, "msg_id": msg_id, "at": now, "msg": parsed}
            )
        if biz_id:
            self._biz_ids.add(biz_id)
        self._record(request, now, 200, "0", biz_msg_id=biz_id, receivers=receivers)
        return 200, _ok({"msgId": msg_id})

    def notifications_to(self, mobile: str) -> list[dict[str, Any]]:
        """Every work notification the person with ``mobile`` received."""
        account = self.account_of(mobile)
        with self.lock:
            return list(self.delivered.get(account or "", ()))


# -- the SMS gateway ------------------------------------------------------------------------------------


class SmsServer(LocalServer):
    platform = "sms"

    def __init__(
        self,
        *,
        key_id: str = "shenbao-local",
        key_secret: str | None = None,
        per_minute: int = 1,
        max_segments: int = 10,
        undeliverable: Iterable[str] = (),
        blacklist: Iterable[str] = (),
        receipt_delay: float = 5.0,
        clock: Clock | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(clock=clock, port=port)
        self.key_id = key_id
        self.key_secret = key_secret or random.token_urlsafe(24)
        self.per_minute = per_minute  # the gateway's own pace per number (0: none)
        self.max_segments = max_segments
        self.undeliverable = set(undeliverable)
        self.blacklist = set(blacklist)
        self.receipt_delay = receipt_delay
        self._references: dict[str, str] = {}
        self._recent: dict[str, deque[datetime]] = defaultdict(deque)
        self._receipts: list[dict[str, Any]] = []
        self.delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)  # by number

    def _signature_ok(self, request: Request) -> bool:
        h = request.headers
        if h.get("x-sms-key") != self.key_id:
            return False
        text = f"{h.get('x-sms-timestamp', '')}\n".encode() + request.body
        expected = base64.b64encode(hmac.new(self.key_secret.encode(), text, hashlib.sha256).digest())
        return hmac.compare_digest(h.get("x-sms-signature", "").encode(), expected)

    def handle(self, request: Request, now: datetime) -> Answer:
        if not self._signature_ok(request):
            self._record(request, now, 401, "AUTH_FAILED")
            return 401, {"code": "AUTH_FAILED", "message": "签名校验失败"}
        if request.path == "/v1/sms/receipts" and request.method == "GET":
            return self._receipts_after(request, now)
        if request.path != "/v1/sms/send" or request.method != "POST":
            return 404, {"code": "NOT_FOUND"}
        body = request.json()
        to, text, reference = (
            str(body.get("to", "")),
            str(body.get("text", "")),
            str(body.get("reference", "")),
        )
        if reference and reference in self._references:
            self._record(request, now, 200, "DUPLICATE", to=to, reference=reference)
            return 200, {"code": "DUPLICATE", "message_id": self._references[reference]}
        if not (len(to) == 11 and to.isdigit() and to.startswith("1")):
            self._record(request, now, 400, "INVALID_NUMBER", to=to)
            return 400, {"code": "INVALID_NUMBER", "message": "号码格式错误"}
        if to in self.blacklist:
            self._record(request, now, 400, "BLACKLISTED", to=to)
            return 400, {"code": "BLACKLISTED", "message": "号码已退订或在黑名单中"}
        full = f"【{body.get('sign_name', '')}】{text}"
        parts = segment_count(full)
        if parts > self.max_segments:
            self._record(request, now, 400, "TOO_LONG", to=to)
            return 400, {"code": "TOO_LONG", "message": f"内容超过 {self.max_segments} 条"}
        recent = self._recent[to]
        while recent and recent[0] <= now - timedelta(minutes=1):
            recent.popleft()
        if self.per_minute and len(recent) >= self.per_minute:
            wait = int((recent[0] + timedelta(minutes=1) - now).total_seconds()) + 1
            self._record(request, now, 429, "RATE_LIMITED", to=to)
            return 429, {"code": "RATE_LIMITED", "message": "该号码发送过于频繁", "retry_after": wait}
        recent.append(now)
        message_id = "sms-" + random.token_hex(10)
        if reference:
            self._references[reference] = message_id
        self.delivered[to].append({"text": full, "reference": reference, "message_id": message_id, "at": now})
        status = "FAILED" if to in self.undeliverable else "DELIVERED"
        self._receipts.append(
            {
                "id": len(self._receipts) + 1,
                "message_id": message_id,
                "reference": reference,
                "to": to,
                "status": status,
                "error_code": "UNDELIVERABLE" if status == "FAILED" else None,
                "at": (now + timedelta(seconds=self.receipt_delay)).isoformat(),
            }
        )
        self._record(request, now, 200, "OK", to=to, reference=reference, segments=parts)
        return 200, {"code": "OK", "message_id": message_id, "segments": parts}

    def _receipts_after(self, request: Request, now: datetime) -> Answer:
        try:
            after = int(request.query.get("after") or 0)
        except ValueError:
            after = 0
        ready = [r for r in self._receipts if r["id"] > after and datetime.fromisoformat(r["at"]) <= now]
        # Cursor order: stop at the first one not yet ready, so none is skipped for good.
        out = []
        for r in self._receipts:
            if r["id"] <= after:
                continue
            if r not in ready:
                break
            out.append(r)
        self._record(request, now, 200, "OK", receipts=len(out))
        return 200, {"receipts": out, "next": out[-1]["id"] if out else after}

    def texts_to(self, number: str) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.delivered.get(number, ())]


# -- all three together ------------------------------------------------------------------------------------


class LocalPlatforms:
    """The three servers, started and stopped together, and the transports' configs for them."""

    def __init__(self, *, clock: Clock | None = None, zzd_people: Iterable[str] | None = None) -> None:
        self.robot = RobotServer(clock=clock)
        self.zzd = ZzdServer(clock=clock, people=zzd_people)
        self.sms = SmsServer(clock=clock)

    @property
    def servers(self) -> tuple[LocalServer, ...]:
        return (self.robot, self.zzd, self.sms)

    def set_clock(self, clock: Clock) -> None:
        for server in self.servers:
            server.clock = clock

    def start(self) -> LocalPlatforms:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> LocalPlatforms:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def robot_config(self, *names: str) -> RobotConfig:
        """A robot for each of ``names`` (added to the server), and the config that reaches them."""
        hooks = {name: self.robot.add_robot(name) for name in names}
        return RobotConfig(robots=hooks, base_url=self.robot.url, timeout=5.0)

    def zzd_config(self) -> ZzdConfig:
        return ZzdConfig(
            app_key=self.zzd.app_key,
            app_secret=Secret(self.zzd.app_secret, "SHENBAO_ZZD_APP_SECRET"),
            tenant_id=self.zzd.tenant_id,
            base_url=self.zzd.url,
            timeout=5.0,
            daily_cap=self.zzd.daily_cap,
        )

    def sms_config(self, *, max_segments: int = 3, per_number: PerNumber | None = None) -> SmsConfig:
        return SmsConfig(
            base_url=self.sms.url,
            key_id=self.sms.key_id,
            key_secret=Secret(self.sms.key_secret, "SHENBAO_SMS_KEY_SECRET"),
            max_segments=max_segments,
            per_number=per_number or PerNumber(),
            timeout=5.0,
        )

    def environment(self, robots: Iterable[str] = ()) -> dict[str, str]:
        """SHENBAO_* settings that point a shenbao process at these servers (for the demo)."""
        hooks = {name: self.robot.add_robot(name) for name in robots}
        return {
            "SHENBAO_ZZD_BASE_URL": self.zzd.url,
            "SHENBAO_ZZD_APP_KEY": self.zzd.app_key,
            "SHENBAO_ZZD_APP_SECRET": self.zzd.app_secret,
            "SHENBAO_ZZD_TENANT_ID": self.zzd.tenant_id,
            "SHENBAO_ROBOT_BASE_URL": self.robot.url,
            "SHENBAO_ROBOTS": json.dumps(
                {
                    name: {"access_token": hook.access_token.reveal(), "secret": hook.secret.reveal()}
                    for name, hook in hooks.items()
                },
                ensure_ascii=False,
            ),
            "SHENBAO_SMS_BASE_URL": self.sms.url,
            "SHENBAO_SMS_KEY_ID": self.sms.key_id,
            "SHENBAO_SMS_KEY_SECRET": self.sms.key_secret,
        }
