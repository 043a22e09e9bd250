"""The token bucket with an injected clock: computed waits, never wall time."""

from __future__ import annotations

import pytest

from notifications.dispatcher import SmtpConfig, TokenBucket, backoff, per_process_config, rate_limiter_for


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_it_spaces_messages_evenly_without_a_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)

    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_it_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, clock=FakeClock())

    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_it_refills_with_time_but_never_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    bucket.reserve()
    bucket.reserve()

    clock.t += 0.1  # one token back
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)

    clock.t += 3600  # an idle hour earns two tokens, not 36,000
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]


def test_it_queues_callers_that_arrive_while_others_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 1.0

    clock.t += 0.5  # the second caller is still sleeping; a third must queue behind it
    assert bucket.reserve() == pytest.approx(1.5)


def test_it_shares_one_bucket_per_smtp_server_in_a_process() -> None:
    a = SmtpConfig(host="smtp.zj.gov.cn", port=25, rate_per_second=5)
    b = SmtpConfig(host="smtp.zj.gov.cn", port=25, rate_per_second=5, concurrency=8)
    other = SmtpConfig(host="smtp.zj.gov.cn", port=587, rate_per_second=5)

    assert rate_limiter_for(a) is rate_limiter_for(b)
    assert rate_limiter_for(a) is not rate_limiter_for(other)
    assert rate_limiter_for(SmtpConfig(rate_per_second=0)) is None


def test_it_splits_the_rate_between_processes() -> None:
    config = SmtpConfig(rate_per_second=10)

    assert per_process_config(config, 4).rate_per_second == 2.5
    assert per_process_config(SmtpConfig(rate_per_second=0), 4).rate_per_second == 0


def test_it_doubles_the_backoff_per_attempt_up_to_the_cap() -> None:
    config = SmtpConfig(backoff_base_seconds=60, backoff_cap_seconds=3600)

    assert [backoff(config, n).total_seconds() for n in (1, 2, 3, 6, 7, 100)] == [
        60,
        120,
        240,
        1920,
        3600,
        3600,
    ]


def test_it_names_the_setting_that_is_wrong() -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpConfig(security="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concurrency"):
        SmtpConfig(concurrency=0)
