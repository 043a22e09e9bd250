"""The SMS transport and its JSON gateway against the local gateway, over real HTTP."""

from __future__ import annotations

from dataclasses import replace

from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.secrets import Secret
from notifications.channels.sms import (
    PerNumber,
    ReceiptBatch,
    SmsTransport,
    client_reference,
    normalise_number,
    receipts_from_callback,
    segment_count,
)
from tests.notifications.channels.conftest import closed_port, new_mobile, outgoing, run


def test_segments_follow_ucs2_and_gsm7_rules() -> None:
    assert segment_count("申" * 70) == 1
    assert segment_count("申" * 71) == 2  # 67 a part once concatenated
    assert segment_count("申" * 134) == 2
    assert segment_count("申" * 135) == 3
    assert segment_count("a" * 160) == 1
    assert segment_count("a" * 161) == 2
    assert segment_count("a" * 159 + "申") == 3  # one Chinese character makes it all UCS-2
    assert segment_count("€" * 80) == 1 and segment_count("€" * 81) == 2  # two septets each


def test_numbers_are_normalised_or_refused() -> None:
    assert normalise_number("+86 138-0000-0000") == "13800000000"
    assert normalise_number("0086 13800000000") == "13800000000"
    assert normalise_number("12345") is None
    assert normalise_number("0571-88888888") is None


def test_it_sends_with_the_sign_name_and_the_key_as_reference(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    number = new_mobile()
    message = outgoing("sms", f"+86 {number}", "【提醒】申报信息表将于本周四（6月25日）24:00截止")
    result = run(sms.deliver(message))
    assert result.kind == "sent" and result.provider_id and result.extra["segments"] == "1"
    assert platforms.sms.texts_to(number) == ["【申报提醒】【提醒】申报信息表将于本周四（6月25日）24:00截止"]
    assert platforms.sms.delivered[number][0]["reference"] == client_reference(message.key)
    assert platforms.delivered_counts()["sms"] >= 1


def test_a_text_over_the_segment_cap_is_refused_before_a_request(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    sms = SmsTransport(platforms.sms_config(max_segments=2), clock=sim)
    result = run(sms.deliver(outgoing("sms", new_mobile(), "申" * 130)))
    assert (result.kind, result.code) == ("permanent", "TOO_LONG")
    assert platforms.sms.received == []
    assert sms.segments("申" * 128) == 2  # with 【申报提醒】 in front: 134 units


def test_bad_and_blacklisted_numbers_are_permanent(platforms: LocalPlatforms, sim: ManualClock) -> None:
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    assert run(sms.deliver(outgoing("sms", "12345"))).code == "INVALID_NUMBER"
    number = new_mobile()
    platforms.sms.blacklist.add(number)
    result = run(sms.deliver(outgoing("sms", number)))
    assert (result.kind, result.code) == ("permanent", "BLACKLISTED")


def test_a_repeated_reference_means_already_sent(platforms: LocalPlatforms, sim: ManualClock) -> None:
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    number = new_mobile()
    message = outgoing("sms", number)
    first = run(sms.deliver(message))
    again = run(sms.deliver(message))
    assert again.kind == "sent" and again.extra == {"duplicate": "reference"}
    assert again.provider_id == first.provider_id
    assert len(platforms.sms.texts_to(number)) == 1


def test_the_gateways_pace_per_number_is_rate_limited(platforms: LocalPlatforms, sim: ManualClock) -> None:
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    number = new_mobile()
    assert run(sms.deliver(outgoing("sms", number))).kind == "sent"
    sim.advance(20)
    second = run(sms.deliver(outgoing("sms", number)))
    assert (second.kind, second.code) == ("rate_limited", "RATE_LIMITED")
    assert second.retry_after == 41
    sim.advance(41)
    assert run(sms.deliver(outgoing("sms", number))).kind == "sent"


def test_per_number_limits_are_data_for_the_governor(platforms: LocalPlatforms) -> None:
    sms = SmsTransport(platforms.sms_config(per_number=PerNumber(1, 4, 8)))
    assert [(limit.name, limit.count, limit.window, limit.seconds) for limit in sms.limits] == [
        ("sms_per_number_minute", 1, "rolling", 60.0),
        ("sms_per_number_hour", 4, "rolling", 3600.0),
        ("sms_per_number_day", 8, "local_day", 0.0),
    ]


def test_receipts_arrive_later_and_name_the_message(platforms: LocalPlatforms, sim: ManualClock) -> None:
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    good, bad = new_mobile(), new_mobile()
    platforms.sms.undeliverable.add(bad)
    first, second = outgoing("sms", good), outgoing("sms", bad)
    run(sms.deliver(first))
    run(sms.deliver(second))
    before = run(sms.receipts(None))
    assert isinstance(before, ReceiptBatch)
    pending = [r for r in before.receipts if r.reference in (first.key, second.key)]
    assert pending == []
    sim.advance(6)
    batch = run(sms.receipts(before.next_cursor))
    assert isinstance(batch, ReceiptBatch)
    by_reference = {r.reference: r for r in batch.receipts}
    assert by_reference[first.key].status == "delivered"
    assert (
        by_reference[second.key].status == "failed" and by_reference[second.key].error_code == "UNDELIVERABLE"
    )
    after = run(sms.receipts(batch.next_cursor))
    assert isinstance(after, ReceiptBatch) and after.receipts == ()


def test_pushed_receipts_are_read_and_bad_rows_skipped() -> None:
    receipts = receipts_from_callback(
        {
            "receipts": [
                {
                    "id": 1,
                    "message_id": "m1",
                    "reference": "k1",
                    "status": "DELIVERED",
                    "at": "2026-06-22T09:30:05+08:00",
                },
                {
                    "id": 2,
                    "message_id": "m2",
                    "reference": "k2",
                    "status": "LOST",
                    "at": "2026-06-22T09:30:05+08:00",
                },
                {
                    "id": 3,
                    "message_id": "m3",
                    "reference": "k3",
                    "status": "FAILED",
                    "at": "2026-06-22 09:30",
                },
                "not a row",
            ]
        }
    )
    assert [(r.reference, r.status, r.at.isoformat()) for r in receipts] == [
        ("k1", "delivered", "2026-06-22T01:30:05+00:00")
    ]


def test_wrong_credentials_are_permanent_and_outages_temporary(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    wrong = replace(platforms.sms_config(), key_secret=Secret("nope", "SHENBAO_SMS_KEY_SECRET"))
    assert run(SmsTransport(wrong, clock=sim).deliver(outgoing("sms", new_mobile()))).code == "AUTH_FAILED"
    sms = SmsTransport(platforms.sms_config(), clock=sim)
    platforms.sms.fail_next(1, 500)
    assert run(sms.deliver(outgoing("sms", new_mobile()))).kind == "temporary"
    down = replace(platforms.sms_config(), base_url=f"http://127.0.0.1:{closed_port()}")
    assert run(SmsTransport(down, clock=sim).deliver(outgoing("sms", new_mobile()))).kind == "temporary"
