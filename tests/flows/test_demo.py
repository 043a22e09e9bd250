"""The README's main job: `shenbao demo` runs end to end and every email reaches the server."""

from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path


def test_the_demo_delivers_every_email_once_and_leaves_a_sound_audit_chain(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHENBAO_")} | {
        "SHENBAO_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Message-ID 不重复：True" in text
    assert "审计链：完好" in text
    assert "超出名额「杭州市“新星”产业群推荐数量不超过3个」" in text
    sent = int(text.split("已发送 ")[1].split("，")[0])
    emls = sorted((out / "eml").glob("*.eml"))
    assert len(emls) == sent > 500
    first = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert "截止" in str(first["Subject"]) or "通知" in str(first["Subject"])
