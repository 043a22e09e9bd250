"""A contact is reminded only about the programs they work on (the roster's 备注).

杭州市 has one person for 集群遴选 and one for 制造精品, the province likewise; both of the city's
附件3 roster tasks are still open, so both programs have something to remind the city of, and
after the deadline something to escalate to the province. Real tick, real SMTP on loopback.
"""

from __future__ import annotations

from typing import Any

from models.db import Database
from notifications.loopback import LoopbackSMTP
from tests.conftest import CLUSTER, JINGPIN
from tests.models.spine import roster_ref
from tests.notifications.world import add_contact, emails, notifications, quiet_rosters, send_at, tick_at


def test_each_contact_hears_only_of_their_own_program(
    seeded: Database, make_ctx: Any, smtp: LoopbackSMTP
) -> None:
    db = seeded
    people = {
        "hz_cl": add_contact(db, "杭州市", "张群", "zhangqun@hz.example", programs="cluster"),
        "hz_jp": add_contact(db, "杭州市", "李精", "lijing@hz.example", programs="jingpin"),
        "prov_cl": add_contact(db, "330000", "严梦玲", "yml@jxt.example", programs="cluster"),
        "prov_jp": add_contact(db, "330000", "陈诗瑶", "csy@jxt.example", programs="jingpin"),
    }
    quiet_rosters(db, make_ctx, keep=(roster_ref(CLUSTER, "330100"), roster_ref(JINGPIN, "330100")))

    tick_at(db, make_ctx, "2026-06-03T09:30")  # before the roster deadline (06-05 24:00)
    tick_at(db, make_ctx, "2026-06-08T09:30")  # after it: the province hears of 杭州市
    send_at(db, "2026-06-08T09:30", smtp.port)

    expected = {"hz_cl": CLUSTER, "hz_jp": JINGPIN, "prov_cl": CLUSTER, "prov_jp": JINGPIN}
    for key, campaign in expected.items():
        rows = notifications(db, contact_id=people[key])
        assert rows, f"{key} was not reminded at all"
        assert {r.campaign_id for r in rows} == {campaign}, key
        assert emails(db, contact_id=people[key]), key
    # The city hears of its own task before the deadline, the province of the city's after it.
    assert {r.kind for r in notifications(db, contact_id=people["hz_cl"])} >= {"reminder"}
    assert {r.kind for r in notifications(db, contact_id=people["prov_jp"])} >= {"escalation"}
    # What arrived says so: the cluster person's mail names their roster task, never the other.
    cluster_mail = " ".join(e.text_body for e in emails(db, contact_id=people["hz_cl"]))
    jingpin_mail = " ".join(e.text_body for e in emails(db, contact_id=people["hz_jp"]))
    assert roster_ref(CLUSTER, "330100") in cluster_mail and roster_ref(JINGPIN, "330100") not in cluster_mail
    assert roster_ref(JINGPIN, "330100") in jingpin_mail and roster_ref(CLUSTER, "330100") not in jingpin_mail
    delivered = {m.rcpt_tos[0] for m in smtp.messages}
    assert {"zhangqun@hz.example", "lijing@hz.example", "yml@jxt.example", "csy@jxt.example"} <= delivered
