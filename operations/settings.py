"""Settings, read and validated once at the edge (environment variables SHENBAO_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.db import Timeouts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHENBAO_", env_file=None, extra="ignore")

    home: Path = Field(
        default=Path(".shenbao"),
        description="数据目录：SQLite 文件（审计密钥与锚点默认在其旁的 <home>.keys）",
    )
    database_url: str | None = Field(default=None, description="数据库，默认 SQLite 文件 <home>/shenbao.db")
    audit_key_file: Path | None = Field(default=None, description="审计链密钥文件（应放在数据库之外）")
    audit_anchor_file: Path | None = Field(default=None, description="审计链头锚点文件（库外）")
    audit_signing_key_file: Path | None = Field(
        default=None, description="签署审计检查点的 Ed25519 私钥（库外，权限 0600）"
    )
    audit_keyring_file: Path | None = Field(default=None, description="审计公钥文件（新旧公钥，每行一个）")
    audit_witnesses: str = Field(
        default="",
        description="每天收到签名检查点的单位（名称或代码，逗号分隔）；默认省级单位的联系人",
    )
    audit_checkpoint_dir: Path | None = Field(
        default=None, description="shenbao audit verify 记下已核对过的检查点的目录"
    )
    actor: str | None = Field(
        default=None, description="操作身份「单位/姓名」，如 省经信厅/张伟（命令行 --as/--by 优先）"
    )
    now: str | None = Field(default=None, description="模拟当前时间，如 2026-06-20T09:00")
    workdays_file: Path | None = None
    dashboard_url: str | None = Field(default=None, description="邮件中的看板链接前缀")

    # Database: how long one step may wait before it is reported as an outage (exit 4).
    db_connect_timeout: float = Field(default=10.0, description="连接数据库的超时（秒，PostgreSQL）")
    db_statement_timeout: float = Field(default=120.0, description="单条数据库语句的超时（秒，PostgreSQL）")
    db_busy_timeout: float = Field(default=15.0, description="等待其他写入者释放数据库的超时（秒，SQLite）")

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
    sync_inbox: Path | None = Field(
        default=None,
        description="平台导出收件箱（shenbao serve 每分钟同步 <收件箱>/<批次编号>/ 下的 CSV/XLSX），默认 <home>/inbox",
    )

    # Channels beside email (notifications/channels). Secrets: the value, or a file named by
    # the *_FILE setting (owner-readable only); never logged, never a Prefect parameter.
    zzd_api: str = Field(
        default="zzd", description="工作通知走哪个平台：zzd（浙政钉/专有钉钉）或 dingtalk（钉钉开放平台）"
    )
    zzd_base_url: str | None = Field(
        default=None,
        description="开放平台地址，默认 zzd 为 https://openplatform-pro.ding.zj.gov.cn，dingtalk 为 https://oapi.dingtalk.com",
    )
    zzd_agent_id: str | None = Field(default=None, description="钉钉开放平台应用的 AgentId（仅 dingtalk）")
    zzd_app_key: str | None = Field(default=None, description="浙政钉应用 AppKey")
    zzd_app_secret: str | None = Field(
        default=None, description="浙政钉应用 AppSecret（或用 _FILE）", repr=False
    )
    zzd_app_secret_file: Path | None = Field(
        default=None, description="存放浙政钉 AppSecret 的文件（权限 600）"
    )
    zzd_tenant_id: str | None = Field(default=None, description="浙政钉租户 ID")
    zzd_daily_cap: int = Field(default=500, description="浙政钉工作通知：同一应用每天给每人最多条数")
    zzd_user_ttl_days: int = Field(default=30, description="手机号对应的浙政钉账号缓存天数")
    robot_base_url: str = Field(default="https://oapi.dingtalk.com", description="钉钉群机器人接口地址")
    robots: str | None = Field(
        default=None,
        description='群机器人（JSON：{"名称": {"access_token": "...", "secret": "SEC..."}}，或用 _FILE）',
        repr=False,
    )
    robots_file: Path | None = Field(default=None, description="存放群机器人 JSON 的文件（权限 600）")
    sms_base_url: str | None = Field(default=None, description="短信网关地址")
    sms_key_id: str | None = Field(default=None, description="短信网关 Key ID")
    sms_key_secret: str | None = Field(default=None, description="短信网关密钥（或用 _FILE）", repr=False)
    sms_key_secret_file: Path | None = Field(default=None, description="存放短信网关密钥的文件（权限 600）")
    sms_sign_name: str = Field(default="申报提醒", description="短信签名（网关加在正文前：【申报提醒】）")
    sms_max_segments: int = Field(default=3, description="一条短信最多拆分条数")
    sms_per_number_minute: int = Field(default=1, description="每号码每分钟最多短信条数")
    sms_per_number_hour: int = Field(default=5, description="每号码每小时最多短信条数")
    sms_per_number_day: int = Field(default=10, description="每号码每天最多短信条数")
    channel_timeout: float = Field(default=10.0, description="浙政钉、群机器人、短信接口的请求超时（秒）")

    @field_validator("zzd_api")
    @classmethod
    def _zzd_api(cls, value: str) -> str:
        value = value.lower().strip()
        if value not in ("zzd", "dingtalk"):
            raise ValueError("SHENBAO_ZZD_API 应为 zzd（浙政钉）或 dingtalk（钉钉开放平台）")
        return value

    @field_validator("smtp_security")
    @classmethod
    def _security(cls, value: str) -> str:
        value = value.lower().strip()
        if value not in ("none", "starttls", "tls"):
            raise ValueError("SHENBAO_SMTP_SECURITY 应为 none、starttls 或 tls")
        return value

    @field_validator(
        "zzd_daily_cap",
        "zzd_user_ttl_days",
        "sms_max_segments",
        "sms_per_number_minute",
        "sms_per_number_hour",
        "sms_per_number_day",
    )
    @classmethod
    def _positive_count(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"SHENBAO_{(info.field_name or '').upper()} 应为不小于 1 的整数，而不是 {value}")
        return value

    @field_validator("channel_timeout")
    @classmethod
    def _channel_timeout(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"SHENBAO_CHANNEL_TIMEOUT 应为大于 0 的秒数，而不是 {value:g}")
        return value

    @field_validator("db_connect_timeout", "db_statement_timeout", "db_busy_timeout")
    @classmethod
    def _positive_seconds(cls, value: float, info: ValidationInfo) -> float:
        # Zero means "wait forever" to both PostgreSQL and SQLite: the hang these settings prevent.
        if not value > 0:
            raise ValueError(f"SHENBAO_{(info.field_name or '').upper()} 应为大于 0 的秒数，而不是 {value:g}")
        return value

    @property
    def db_timeouts(self) -> Timeouts:
        return Timeouts(
            connect=self.db_connect_timeout, statement=self.db_statement_timeout, busy=self.db_busy_timeout
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'shenbao.db').resolve()}"

    @property
    def resolved_sync_inbox(self) -> Path:
        return self.sync_inbox or self.home / "inbox"

    @property
    def secrets_dir(self) -> Path:
        """Where the audit key and anchor go by default: beside the data directory, not in it.

        Whoever can copy or restore the database folder (a backup, a shared disk) must not get
        the key that signs the chain, nor the anchor that pins its head, in the same copy: then a
        rewritten database could be re-signed and re-anchored. A sibling ``<home>.keys`` keeps
        one home's secrets together and visible, without writing into the user's config.
        """
        home = self.home.resolve()
        return home.parent / f"{home.name}.keys"

    @property
    def resolved_key_file(self) -> Path:
        return self.audit_key_file or self.secrets_dir / "audit.key"

    @property
    def resolved_anchor_file(self) -> Path:
        # {database} is the database's own identity (models/identity.py), never its URL.
        return self.audit_anchor_file or self.secrets_dir / "audit-anchor-{database}.json"

    @property
    def witness_orgs(self) -> list[str]:
        return [p.strip() for p in self.audit_witnesses.replace("，", ",").split(",") if p.strip()]

    @property
    def resolved_signing_key_file(self) -> Path:
        return self.audit_signing_key_file or self.secrets_dir / "audit-signing.key"

    @property
    def resolved_keyring_file(self) -> Path:
        return self.audit_keyring_file or self.secrets_dir / "audit-keyring.txt"

    @property
    def resolved_checkpoint_dir(self) -> Path:
        return self.audit_checkpoint_dir or self.secrets_dir / "checkpoints"

    def secrets_beside_database(self) -> list[Path]:
        """The audit key or anchor configured in the SQLite database's own folder (to warn about)."""
        url = self.resolved_database_url
        if not url.startswith("sqlite:///"):
            return []
        folder = Path(url.removeprefix("sqlite:///")).resolve().parent
        return [
            p
            for p in (self.resolved_key_file, self.resolved_anchor_file, self.resolved_signing_key_file)
            if p.resolve().parent == folder
        ]
