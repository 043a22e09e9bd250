"""Settings, read and validated once at the edge (environment variables SHENBAO_*)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHENBAO_", env_file=None, extra="ignore")

    home: Path = Field(default=Path(".shenbao"), description="数据目录：SQLite 文件、审计密钥与锚点")
    database_url: str | None = Field(default=None, description="数据库，默认 SQLite 文件 <home>/shenbao.db")
    audit_key_file: Path | None = Field(default=None, description="审计链密钥文件（应放在数据库之外）")
    audit_anchor_file: Path | None = Field(default=None, description="审计链头锚点文件（库外）")
    now: str | None = Field(default=None, description="模拟当前时间，如 2026-06-20T09:00")
    workdays_file: Path | None = None
    dashboard_url: str | None = Field(default=None, description="邮件中的看板链接前缀")

    # Mail (notifications)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_security: str = Field(default="none", description="none | starttls | tls")
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = Field(default=30.0, description="连接与每条 SMTP 命令的超时（秒）")
    # RFC 5321 4.5.3.2.6: a server may take 10 minutes to answer after the message data.
    smtp_data_timeout: float = Field(default=600.0, description="发完邮件内容后等待服务器答复的超时（秒）")
    mail_from: str = "shenbao@localhost"
    mail_from_name: str = "申报提醒"
    mail_rate_per_second: float = Field(default=0.0, description="每个 SMTP 服务器每秒最多发送封数，0 为不限")
    # With a 60 s base doubling to a 6 h cap, 10 attempts ride out about ten hours of SMTP outage.
    mail_max_attempts: int = 10
    mail_concurrency: int = 4
    templates_dir: Path | None = Field(default=None, description="覆盖内置邮件模板的目录")

    @field_validator("smtp_security")
    @classmethod
    def _security(cls, value: str) -> str:
        value = value.lower().strip()
        if value not in ("none", "starttls", "tls"):
            raise ValueError("SHENBAO_SMTP_SECURITY 应为 none、starttls 或 tls")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'shenbao.db').resolve()}"

    @property
    def resolved_key_file(self) -> Path:
        return self.audit_key_file or self.home / "audit.key"

    @property
    def resolved_anchor_file(self) -> Path:
        if self.audit_anchor_file:
            return self.audit_anchor_file
        # One anchor per database: switching SHENBAO_DATABASE_URL must not mix two chains.
        url = self.resolved_database_url
        if url.startswith("postgresql://"):  # the same database however the driver is spelled
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        tag = hashlib.sha256(url.encode()).hexdigest()[:12]
        return self.home / f"audit-anchor-{tag}.json"
