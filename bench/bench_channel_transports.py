"""What one message costs each channel's transport, beside an email, in the same run.

    .venv/bin/python bench/bench_channel_transports.py [--messages 400] [--concurrency 8] [--repeat 3] [--quick]

All on loopback, in one process: the local contract servers (notifications/channels/
local_servers.py, threads) and LoopbackSMTP (aiosmtpd, a thread). Each round sends ``--messages``
through each transport, sequentially and then ``--concurrency`` at a time, with a simulated
clock advancing 4 s per robot message so the robot never exceeds its 20 a minute:

  email  aiosmtplib.send over one reused connection per worker (the dispatcher's way)
  robot  RobotTransport.deliver (sign + POST)
  zzd    ZzdTransport.deliver (token and account id cached after the first: one POST)
  sms    SmsTransport.deliver (segment check + signed POST)

The machine is shared: rounds alternate email and the three channels, and the figure printed is
the median over ``--repeat`` rounds of each channel's time per message divided by email's in
the same round. Every run is checked: each server holds exactly the messages sent, nothing
refused. The server side is included (it is Python too), so the ratios bound the client cost
from above.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifications.channels.base import Outgoing
from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.robot import RobotTransport
from notifications.channels.sms import PerNumber, SmsTransport
from notifications.channels.zzd import ZzdTransport
from notifications.loopback import LoopbackSMTP

START = datetime(2026, 6, 22, 1, 0, tzinfo=UTC)
TEXT = "#### 【提醒】网上申报将于本周四（6月25日）24:00截止，3项待办\n- 环节：网上申报\n- 截止：2026-06-25（周四）24:00"


async def _in_parallel(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def email_round(smtp: LoopbackSMTP, count: int, concurrency: int) -> float:
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port) for _ in range(concurrency)]
    for c in clients:
        await c.connect()
    free: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for c in clients:
        free.put_nowait(c)

    async def one(i: int) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.cn", f"p{i}@x.cn", "申报提醒"
        message["Message-ID"] = f"<{uuid.uuid4().hex}@x.cn>"
        message.set_content(TEXT)
        client = await free.get()
        try:
            await client.send_message(message)
        finally:
            free.put_nowait(client)

    started = time.perf_counter()
    await _in_parallel(count, concurrency, one)
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.quit()
    return elapsed / count


async def channel_round(
    transport: RobotTransport | ZzdTransport | SmsTransport,
    address: Callable[[int], str],
    count: int,
    concurrency: int,
    clock: ManualClock,
    step: float,
) -> float:
    refused: list[str] = []

    async def one(i: int) -> None:
        clock.advance(step)
        key = f"b:{uuid.uuid4().hex}"
        # a different text each time: 浙政钉 refuses the same content to a person twice a day
        message = Outgoing(key, transport.channel, address(i), "申报提醒", f"{TEXT} {key}")
        result = await transport.deliver(message)
        if result.kind != "sent":
            refused.append(f"{result.kind} {result.code} {result.detail}")

    started = time.perf_counter()
    await _in_parallel(count, concurrency, one)
    elapsed = time.perf_counter() - started
    if refused:
        raise SystemExit(f"{transport.channel}: {len(refused)} not sent, first: {refused[0]}")
    return elapsed / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 messages, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeat = 100, 2
    clock = ManualClock(START)
    ratios: dict[tuple[str, int], list[float]] = {}
    per_message: dict[tuple[str, int], list[float]] = {}
    with LocalPlatforms(clock=clock) as platforms, LoopbackSMTP(keep_raw=False) as smtp:
        platforms.sms.per_minute = 0  # the gateway's own pace is the governor's business, not this bench's
        robot = RobotTransport(platforms.robot_config("基准群"), clock=clock)
        zzd = ZzdTransport(platforms.zzd_config(), clock=clock)
        sms = SmsTransport(platforms.sms_config(per_number=PerNumber(0, 0, 0)), clock=clock)
        mobiles = [f"139{n:08d}" for n in range(args.messages)]
        for _ in range(args.repeat):
            for concurrency in (1, args.concurrency):

                async def round_(concurrency: int) -> dict[str, float]:
                    email = await email_round(smtp, args.messages, concurrency)
                    return {
                        "email": email,
                        # 4 s a message: 15 a minute, under the robot's 20
                        "robot": await channel_round(
                            robot, lambda i: "基准群", args.messages, concurrency, clock, 4.0
                        ),
                        "zzd": await channel_round(
                            zzd, lambda i: mobiles[i], args.messages, concurrency, clock, 0.0
                        ),
                        "sms": await channel_round(
                            sms, lambda i: mobiles[i], args.messages, concurrency, clock, 0.0
                        ),
                    }

                figures = asyncio.run(round_(concurrency))
                for name, seconds in figures.items():
                    per_message.setdefault((name, concurrency), []).append(seconds)
                    ratios.setdefault((name, concurrency), []).append(seconds / figures["email"])
        sent = len(platforms.robot.messages("基准群"))
        expected = args.messages * 2 * args.repeat
        assert sent == expected, f"robot server holds {sent}, expected {expected}"
        assert len(smtp) == expected, f"SMTP server holds {len(smtp)}, expected {expected}"
        assert platforms.robot.busiest_minute("基准群") <= 20
        for name in (robot, zzd, sms):
            run(name.aclose)
    load = os.getloadavg()[0]
    print(f"messages {args.messages} × {args.repeat} rounds, load average {load:.1f}")
    print(f"{'channel':8s} {'conc':>4s} {'ms/msg (median)':>16s} {'× email (median)':>17s}")
    for (name, concurrency), values in per_message.items():
        print(
            f"{name:8s} {concurrency:4d} {statistics.median(values) * 1000:16.2f} "
            f"{statistics.median(ratios[(name, concurrency)]):17.2f}"
        )
    return 0


def run(close: Callable[[], Awaitable[None]]) -> None:
    try:
        asyncio.run(close())
    except RuntimeError:
        pass


if __name__ == "__main__":
    sys.exit(main())
