"""Run by bench_audit.py in each tree (7cf4329 and HEAD): N audited writes, one transaction each,
as an action appends its event (lock the head, insert, move the head, commit, write the anchor).
Prints {"per_append_us": …} on its last line. Uses only what both commits have."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from models.audit import AuditLog, EventDraft
from models.db import Database
from models.schema import upgrade

n = int(sys.argv[1])
rounds = int(sys.argv[2])
folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
db = Database(f"sqlite:///{folder / 'a.db'}")
upgrade(db)
log = AuditLog.from_key_file(
    folder / "keys" / "audit.key", folder / "keys" / "anchor-{database}.json", create=True
)
at = datetime(2026, 6, 25, 15, 50, tzinfo=UTC)
draft = EventDraft(
    at=at,
    actor="李娜@330111",
    action="state_change",
    subject="case:CL26-00001",
    case_id=1,
    campaign_id="2026-cluster-selection",
    from_value="draft",
    to_value="submitted",
    details={"action": "submit", "label": "提交"},
)
for _ in range(200):  # warm up: the anchor file exists, pages are cached
    with db.write() as session:
        log.append(session, draft)
best = float("inf")
for _ in range(rounds):
    started = time.perf_counter()
    for _ in range(n):
        with db.write() as session:
            log.append(session, draft)
    best = min(best, (time.perf_counter() - started) / n)
print(json.dumps({"per_append_us": best * 1e6}))
