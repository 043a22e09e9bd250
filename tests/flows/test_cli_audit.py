"""`shenbao audit` for someone holding only the public key: verify, receipts offline, a kept checkpoint."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.flows.test_cli import SCENARIO, Shenbao


def test_a_verifier_with_the_public_key_alone_catches_a_rollback_and_checks_receipts(tmp_path: Path) -> None:
    sb = Shenbao(tmp_path / "home")
    sb("init")
    keygen = sb("audit", "keygen").stdout
    public = keygen.rsplit("：", 1)[-1].strip()
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    acted = sb("case", "act", "CL26-00001", "submit", "--as", "西湖区", "--by", "赵静").stdout
    assert "shenbao audit receipt CL26-00001" in acted
    backup = tmp_path / "backup.db"
    database = tmp_path / "home" / "shenbao.db"
    with sqlite3.connect(database) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    keys = tmp_path / "home.keys"
    saved_keys = tmp_path / "saved.keys"
    shutil.copytree(keys, saved_keys)
    sb("case", "act", "CL26-00002", "submit", "--as", "萧山区", "--by", "钱进")
    kept = tmp_path / "witness.txt"
    sb("audit", "checkpoint", "--out", str(kept))
    receipt = tmp_path / "回执.json"
    sb("audit", "receipt", "CL26-00002", "--out", str(receipt))
    # On another machine: no database, no secret, only the public key.
    other = Shenbao(tmp_path / "elsewhere")
    checked = other("audit", "check-receipt", str(receipt), "--key", public).stdout
    assert "回执有效" in checked and "CL26-00002" in checked
    forged = json.loads(receipt.read_text())
    forged["entries"][-1]["event"] = forged["entries"][-1]["event"].replace("钱进", "别人")
    (tmp_path / "forged.json").write_text(json.dumps(forged, ensure_ascii=False))
    bad = other("audit", "check-receipt", str(tmp_path / "forged.json"), "--key", public, code=1)
    assert "回执无效" in bad.stdout
    # The operator restores the database and every file of the keys folder from the backup.
    with sqlite3.connect(backup) as copy, sqlite3.connect(database) as live:
        copy.backup(live)
    shutil.rmtree(keys)
    shutil.copytree(saved_keys, keys)
    (keys / "audit.key").unlink()  # the verifier has no secret
    assert "审计链完好" in sb("audit", "verify", "--key", public).stdout  # consistent in itself
    done = sb("audit", "verify", "--key", public, "--checkpoint", str(kept), "--json", code=1)
    report = json.loads(done.stdout)
    assert report["hmac_checked"] is False
    assert [p["kind"] for p in report["problems"]] == ["rollback"]
    with sqlite3.connect(tmp_path / "home" / "shenbao.db") as conn:
        size = conn.execute("SELECT max(seq) FROM audit_event").fetchone()[0]
    assert report["problems"][0]["seq"] == size + 1
