"""``shenbao token issue/list/revoke`` and ``shenbao web`` on the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import _load_extensions, cli
from models.access import AccessToken, hash_token
from tests.dashboard.world import World

# The token commands on both backends' URLs once (issue, list, revoke); the refusal of an
# unknown e-mail is the same on both: SQLite only (tests/README.md, rule 4).
pytestmark = pytest.mark.backends("sqlite")

_load_extensions()


def _env(world: World, tmp_path: Path) -> dict[str, str]:
    return {
        "SHENBAO_HOME": str(tmp_path / "home"),
        "SHENBAO_DATABASE_URL": world.db.url,
        "SHENBAO_AUDIT_KEY_FILE": str(tmp_path / "keys" / "audit.key"),
        "SHENBAO_NOW": "2026-06-20T09:00",
        "SHENBAO_DASHBOARD_URL": "https://shenbao.example.gov.cn",
    }


@pytest.mark.backends("sqlite", "postgresql")
def test_it_issues_lists_and_revokes_tokens(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(world, tmp_path)
    issued = runner.invoke(cli, ["token", "issue", "wangming@hz.gov.cn", "--days", "30", "--json"], env=env)
    assert issued.exit_code == 0, issued.output
    data = json.loads(issued.output)
    assert data["link"] == f"https://shenbao.example.gov.cn/login/{data['token']}"
    assert data["org"] == "杭州市" and data["expires_at"].startswith("2026-07-20")
    with world.db.read() as session:
        row = session.get(AccessToken, data["id"])
    assert row is not None and row.token_hash == hash_token(data["token"])

    listed = runner.invoke(cli, ["token", "list", "--email", "wangming@hz.gov.cn"], env=env)
    assert listed.exit_code == 0 and "杭州市" in listed.output and data["token"] not in listed.output

    revoked = runner.invoke(cli, ["token", "revoke", str(data["id"])], env=env)
    assert revoked.exit_code == 0 and f"#{data['id']}" in revoked.output
    status = json.loads(runner.invoke(cli, ["token", "list", "--json"], env=env).output)
    assert {t["id"]: t["status"] for t in status}[data["id"]] == "revoked"


def test_it_explains_an_unknown_email(world: World, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "issue", "nobody@example.cn"], env=_env(world, tmp_path))
    assert result.exit_code == 2
    assert "找不到邮箱为 nobody@example.cn 的联系人" in result.output


def test_the_web_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["web", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
