"""The web edge's own settings (SHENBAO_WEB_*), read once when the app is built.

They live here rather than in operations.settings because only the dashboard needs them; the same
environment prefix keeps one way of configuring the whole engine.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHENBAO_WEB_", env_file=None, extra="ignore")

    secret: str | None = Field(default=None, description="会话签名密钥；不设则在数据目录生成 web.secret")
    # Behind TLS set this, so the session cookie is never sent over plain HTTP.
    secure_cookies: bool = Field(default=False, description="会话 Cookie 仅经 HTTPS 发送")
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="登录会话有效时长（小时）")
    # A sealed scan is a few MB; anything much larger is a mistake or an attack on the disk.
    max_upload_mb: int = Field(default=20, ge=1, le=1024, description="请求体（含上传文件）大小上限（MB）")


class WebSecretError(RuntimeError):
    pass


def load_secret(configured: str | None, home: Path) -> str:
    """SHENBAO_WEB_SECRET, or a random secret kept in ``<home>/web.secret`` (made on first use).

    A secret generated per process would sign everyone out at every restart and make several
    workers disagree, so it is kept in a file beside the audit key.
    """
    if configured:
        if len(configured) < 16:
            raise WebSecretError("SHENBAO_WEB_SECRET 太短：至少 16 个字符")
        return configured
    path = home / "web.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    secret = path.read_text().strip()
    if len(secret) < 16:
        raise WebSecretError(f"会话密钥文件 {path} 内容无效（至少 16 个字符）")
    return secret
