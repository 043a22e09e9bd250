"""浙政钉 work notifications against the local 专有钉钉 server, over real HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from models.db import Database
from notifications.channels.local_servers import LocalPlatforms, ManualClock
from notifications.channels.secrets import Secret
from notifications.channels.user_ids import DatabaseUserIds
from notifications.channels.zzd import (
    DAILY_CAP,
    DINGTALK_SEND_PATH,
    DINGTALK_TOKEN_PATH,
    DINGTALK_USER_PATH,
    SAME_CONTENT,
    SEND_PATH,
    TOKEN_PATH,
    USER_PATH,
    MemoryUserIds,
    ZzdConfig,
    ZzdTransport,
    clear_token_cache,
    signing_text,
)
from tests.notifications.channels.conftest import NOW, closed_port, new_mobile, outgoing, run


def _paths(platforms: LocalPlatforms) -> list[str]:
    return [r.path for r in platforms.zzd.received]


def test_the_signature_covers_method_time_nonce_path_and_sorted_parameters() -> None:
    text = signing_text("post", "2026-06-22T09:30:00.000+08:00", "n1", "/p", {"b": "2", "a": "1"})
    assert text == "POST\n2026-06-22T09:30:00.000+08:00\nn1\n/p\na=1&b=2"


def test_it_resolves_the_mobile_and_sends_with_the_key_as_biz_msg_id(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    mobile = new_mobile()
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    message = outgoing("zzd", mobile, link="https://sb.example/cases/JQ-7")
    result = run(zzd.deliver(message))
    assert result.kind == "sent" and result.provider_id
    [got] = platforms.zzd.notifications_to(mobile)
    assert got["biz_msg_id"] == message.key
    assert got["msg"]["msgtype"] == "action_card"
    assert got["msg"]["action_card"]["single_url"] == "https://sb.example/cases/JQ-7"
    assert _paths(platforms) == [TOKEN_PATH, USER_PATH, SEND_PATH]


def test_account_ids_are_shared_through_the_database(
    platforms: LocalPlatforms, sim: ManualClock, sqlite_db: Database
) -> None:
    mobile = new_mobile()
    ids = DatabaseUserIds(sqlite_db)
    run(ZzdTransport(platforms.zzd_config(), ids, clock=sim).deliver(outgoing("zzd", mobile)))
    platforms.zzd.reset()
    clear_token_cache()  # another process: no token, but the same database
    result = run(
        ZzdTransport(platforms.zzd_config(), DatabaseUserIds(sqlite_db), clock=sim).deliver(
            outgoing("zzd", mobile)
        )
    )
    assert result.kind == "sent"
    assert USER_PATH not in _paths(platforms)
    assert ids.lookup("zzd:" + platforms.zzd.tenant_id, mobile, NOW) == platforms.zzd.account_of(mobile)
    assert ids.lookup("zzd:" + platforms.zzd.tenant_id, mobile, NOW + timedelta(days=31)) is None


def test_the_database_cache_updates_and_forgets(sqlite_db: Database) -> None:
    ids = DatabaseUserIds(sqlite_db)
    ids.remember("zzd:1", "13900000001", "7001", NOW)
    ids.remember("zzd:1", "13900000001", "7002", NOW)
    assert ids.lookup("zzd:1", "13900000001", NOW) == "7002"
    assert ids.lookup("zzd:2", "13900000001", NOW) is None  # another tenant's ids mean nothing here
    ids.forget("zzd:1", "13900000001")
    assert ids.lookup("zzd:1", "13900000001", NOW) is None


def test_a_token_is_reused_until_shortly_before_it_expires(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))
    sim.advance(3600)
    run(zzd.deliver(outgoing("zzd", mobile)))
    assert _paths(platforms).count(TOKEN_PATH) == 1
    sim.advance(7200 - 3600 - 200)  # within 5 minutes of expiry: fetched again, early
    assert run(zzd.deliver(outgoing("zzd", mobile))).kind == "sent"
    assert _paths(platforms).count(TOKEN_PATH) == 2


def test_an_expired_token_is_refreshed_and_the_call_made_once_more(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    # The app's clock runs behind the platform's: its cached token looks fresh to it.
    zzd = ZzdTransport(platforms.zzd_config(), clock=lambda: NOW)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))
    sim.advance(7201)
    result = run(zzd.deliver(outgoing("zzd", mobile)))
    assert result.kind == "sent"
    assert "42001" in platforms.zzd.codes()
    assert _paths(platforms).count(TOKEN_PATH) == 2
    assert len(platforms.zzd.notifications_to(mobile)) == 2


def test_a_revoked_token_is_refreshed(platforms: LocalPlatforms, sim: ManualClock) -> None:
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))
    platforms.zzd.revoke_tokens()
    assert run(zzd.deliver(outgoing("zzd", mobile))).kind == "sent"
    assert "40014" in platforms.zzd.codes()


def test_a_repeated_biz_msg_id_means_it_was_already_sent(platforms: LocalPlatforms, sim: ManualClock) -> None:
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    mobile = new_mobile()
    message = outgoing("zzd", mobile)
    assert run(zzd.deliver(message)).kind == "sent"
    again = run(zzd.deliver(message))
    assert again.kind == "sent" and again.extra == {"duplicate": "bizMsgId"}
    assert len(platforms.zzd.notifications_to(mobile)) == 1


def test_the_same_content_twice_a_day_is_refused(platforms: LocalPlatforms, sim: ManualClock) -> None:
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    mobile = new_mobile()
    assert run(zzd.deliver(outgoing("zzd", mobile, "同一段内容"))).kind == "sent"
    twice = run(zzd.deliver(outgoing("zzd", mobile, "同一段内容")))
    assert (twice.kind, twice.code) == ("permanent", SAME_CONTENT)
    assert twice.extra["already_received"] == "same_content"
    sim.advance(24 * 3600)  # the next day in Shanghai
    assert run(zzd.deliver(outgoing("zzd", mobile, "同一段内容"))).kind == "sent"


def test_the_daily_cap_per_person_is_rate_limited_until_midnight(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    zzd = ZzdTransport(replace(platforms.zzd_config(), daily_cap=3), clock=sim)
    mobile = new_mobile()
    platforms.zzd.daily_cap = 3
    try:
        assert [run(zzd.deliver(outgoing("zzd", mobile))).kind for _ in range(3)] == ["sent"] * 3
        over = run(zzd.deliver(outgoing("zzd", mobile)))
    finally:
        platforms.zzd.daily_cap = 500
    assert (over.kind, over.code) == ("rate_limited", DAILY_CAP)
    assert over.retry_after == 14.5 * 3600  # 09:30 → 24:00 Shanghai
    assert {limit.name: limit.count for limit in zzd.limits} == {
        "zzd_per_person_day": 3,
        "zzd_same_content_day": 1,
    }


def test_a_mobile_nobody_has_is_permanent(platforms: LocalPlatforms, sim: ManualClock) -> None:
    mobile = new_mobile()
    platforms.zzd.absent.add(mobile)
    result = run(ZzdTransport(platforms.zzd_config(), clock=sim).deliver(outgoing("zzd", mobile)))
    assert (result.kind, result.code) == ("permanent", "60121")
    assert mobile not in result.detail  # masked: 139****0007


def test_a_wrong_app_secret_is_permanent(platforms: LocalPlatforms, sim: ManualClock) -> None:
    config = replace(platforms.zzd_config(), app_secret=Secret("wrong", "SHENBAO_ZZD_APP_SECRET"))
    result = run(ZzdTransport(config, clock=sim).deliver(outgoing("zzd", new_mobile())))
    assert result.kind == "permanent" and "access_token" in result.detail


def test_a_5xx_is_temporary_and_connection_refused_too(platforms: LocalPlatforms, sim: ManualClock) -> None:
    zzd = ZzdTransport(platforms.zzd_config(), clock=sim)
    platforms.zzd.fail_next(1, 503)
    assert run(zzd.deliver(outgoing("zzd", new_mobile()))).kind == "temporary"
    down = ZzdConfig(
        "k", Secret("s", "SHENBAO_ZZD_APP_SECRET"), "1", base_url=f"http://127.0.0.1:{closed_port()}"
    )
    result = run(ZzdTransport(down, clock=sim).deliver(outgoing("zzd", new_mobile())))
    assert (result.kind, result.code) == ("temporary", "ConnectError")


def test_an_answer_that_comes_too_late_is_unknown(platforms: LocalPlatforms, sim: ManualClock) -> None:
    ids = MemoryUserIds()
    zzd = ZzdTransport(platforms.zzd_config(), ids, clock=sim)
    impatient = ZzdTransport(replace(platforms.zzd_config(), timeout=0.2), ids, clock=sim)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))  # token and account id cached
    platforms.zzd.answer_late(0.6)  # longer than the impatient one waits, whatever the load
    message = outgoing("zzd", mobile)
    assert run(impatient.deliver(message)).kind == "unknown"
    platforms.zzd.answer_late(0)
    retried = run(zzd.deliver(message))  # the same key: the platform knows it
    assert retried.kind == "sent" and retried.extra == {"duplicate": "bizMsgId"}
    assert len(platforms.zzd.notifications_to(mobile)) == 2


def test_an_account_gone_since_it_was_cached_is_forgotten(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    ids = MemoryUserIds()
    zzd = ZzdTransport(platforms.zzd_config(), ids, clock=sim)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))
    platform = "zzd:" + platforms.zzd.tenant_id
    account = ids.lookup(platform, mobile, NOW)
    assert account is not None
    ids.remember(platform, mobile, "99999999", NOW)  # the person left; the cache still says so
    result = run(zzd.deliver(outgoing("zzd", mobile)))
    assert (result.kind, result.code) == ("permanent", "60121")
    assert ids.lookup(platform, mobile, NOW) is None
    assert run(zzd.deliver(outgoing("zzd", mobile))).kind == "sent"  # looked up afresh


# -- DingTalk's public API (SHENBAO_ZZD_API=dingtalk), same server, DingTalk's shapes ----------------


def test_dingtalk_api_resolves_the_mobile_and_sends(platforms: LocalPlatforms, sim: ManualClock) -> None:
    zzd = ZzdTransport(platforms.zzd_config("dingtalk"), clock=sim)
    mobile = new_mobile()
    result = run(zzd.deliver(outgoing("zzd", mobile)))
    assert result.kind == "sent" and result.provider_id
    assert _paths(platforms) == [DINGTALK_TOKEN_PATH, DINGTALK_USER_PATH, DINGTALK_SEND_PATH]
    [got] = platforms.zzd.notifications_to(mobile)
    assert got["msg"]["msgtype"] == "markdown"


def test_dingtalk_api_refreshes_a_revoked_token_and_refuses_unknown_mobiles(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    zzd = ZzdTransport(platforms.zzd_config("dingtalk"), clock=sim)
    mobile = new_mobile()
    run(zzd.deliver(outgoing("zzd", mobile)))
    platforms.zzd.revoke_tokens()
    assert run(zzd.deliver(outgoing("zzd", mobile))).kind == "sent"
    assert "40014" in platforms.zzd.codes()
    nobody = new_mobile()
    platforms.zzd.absent.add(nobody)
    assert run(zzd.deliver(outgoing("zzd", nobody))).code == "60121"


def test_dingtalk_api_hides_same_content_refusals_from_the_sender(
    platforms: LocalPlatforms, sim: ManualClock
) -> None:
    # Why 浙政钉's API is the default: DingTalk answers 0 and drops the repeat later, so only the
    # governor's limits (zzd_same_content_day) can keep it from being lost.
    zzd = ZzdTransport(platforms.zzd_config("dingtalk"), clock=sim)
    mobile = new_mobile()
    assert run(zzd.deliver(outgoing("zzd", mobile, "同一段内容"))).kind == "sent"
    assert run(zzd.deliver(outgoing("zzd", mobile, "同一段内容"))).kind == "sent"
    assert len(platforms.zzd.notifications_to(mobile)) == 1
    assert SAME_CONTENT in platforms.zzd.codes()
