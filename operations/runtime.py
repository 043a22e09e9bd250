"""What every command needs, built once from settings: the database, the audit log, the clock."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from calendars.timeutil import parse_instant
from calendars.workdays import WorkCalendar, load_default_calendar
from models.audit import AuditLog
from models.context import Actor, Ctx
from models.db import Database
from operations.settings import Settings

if TYPE_CHECKING:
    # Imported where used: composing mail pulls in jinja2 and the e-mail package, which a
    # command such as `shenbao status` never needs (issue 10: status within 1.2x of --help).
    from sqlmodel import Session

    from models.checkpoint import Keyring, SignerKey
    from models.outbox import Email
    from notifications.compose import MailIdentity
    from notifications.dispatcher import SmtpConfig
    from notifications.render import Renderer


@dataclass
class Runtime:
    settings: Settings
    now_override: str | None = None
    # Called after each simulated step (long runs show progress); None prints nothing.
    progress: Any = None

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.resolved_database_url, timeouts=self.settings.db_timeouts)

    def audit(self, *, create: bool = False) -> AuditLog:
        self._warn_about_secrets()
        return AuditLog.from_key_file(
            self.settings.resolved_key_file, self.settings.resolved_anchor_file, create=create
        )

    def audit_reader(self) -> AuditLog:
        """For checking: the HMAC key if this machine has it, else the public key alone."""
        return AuditLog.from_key_file(
            self.settings.resolved_key_file, self.settings.resolved_anchor_file, missing_ok=True
        )

    def signer(self) -> SignerKey:
        from models.checkpoint import read_private

        self._warn_about_secrets()
        return read_private(self.settings.resolved_signing_key_file)

    def keyring(self, option: str | None = None) -> Keyring:
        """``--key`` (a verifier key or a file), else this home's keyring file."""
        from models.checkpoint import Keyring

        return Keyring.from_option(option) if option else Keyring.read(self.settings.resolved_keyring_file)

    @cached_property
    def _secrets_checked(self) -> bool:
        beside = self.settings.secrets_beside_database()
        if beside:
            sys.stderr.write(
                "警告：审计密钥/锚点与 SQLite 数据库在同一目录（"
                + "、".join(str(p) for p in beside)
                + "）；同一份备份即可改写并重签审计链，请用 SHENBAO_AUDIT_KEY_FILE / "
                "SHENBAO_AUDIT_ANCHOR_FILE 放到数据库目录之外。\n"
            )
        return True

    def _warn_about_secrets(self) -> None:
        """Once per runtime, on stderr: a key beside the database protects nothing."""
        _ = self._secrets_checked

    @cached_property
    def calendar(self) -> WorkCalendar:
        """The packaged working days (or SHENBAO_WORKDAYS_FILE) with the arrangements loaded into
        the database (``shenbao calendar load``) on top; :meth:`refresh_calendar` after a load."""
        from models.workdays import calendar_with_loaded

        env = (
            {"SHENBAO_WORKDAYS_FILE": str(self.settings.workdays_file)} if self.settings.workdays_file else {}
        )
        base = load_default_calendar(env)
        with self.db.read() as session:
            return calendar_with_loaded(session, base)

    def refresh_calendar(self) -> None:
        """Forget the calendar: another process may have loaded a year's arrangement."""
        self.__dict__.pop("calendar", None)

    def now(self) -> datetime:
        """The clock is read once per operation: real time, or --now / SHENBAO_NOW."""
        text = self.now_override or self.settings.now
        return parse_instant(text) if text else datetime.now(UTC)

    def ctx(self, actor: Actor, *, now: datetime | None = None) -> Ctx:
        return Ctx(now=now or self.now(), actor=actor, audit=self.audit(), calendar=self.calendar)

    # -- mail -------------------------------------------------------------------------------
    @cached_property
    def identity(self) -> MailIdentity:
        from notifications.compose import MailIdentity

        s = self.settings
        return MailIdentity(from_addr=s.mail_from, from_name=s.mail_from_name, dashboard_url=s.dashboard_url)

    @cached_property
    def renderer(self) -> Renderer:
        from notifications.render import Renderer

        return Renderer(self.settings.templates_dir)

    def smtp_config(self, **overrides: object) -> SmtpConfig:
        from notifications.dispatcher import SmtpConfig

        s = self.settings
        values: dict[str, object] = {
            "host": s.smtp_host,
            "port": s.smtp_port,
            "security": s.smtp_security,
            "user": s.smtp_user,
            "password": s.smtp_password,
            "timeout": s.smtp_timeout,
            "data_timeout": s.smtp_data_timeout,
            "rate_per_second": s.mail_rate_per_second,
            "max_attempts": s.mail_max_attempts,
            "concurrency": s.mail_concurrency,
        }
        values.update(overrides)
        return SmtpConfig(**values)  # type: ignore[arg-type]

    def recheck(self):  # type: ignore[no-untyped-def]
        """The dispatcher's last look before sending: is there still something to say?"""
        from notifications.compose import Rechecker

        # An object, not a closure: its prepare() reads what a claimed batch needs at once.
        return Rechecker(self.calendar, self.identity, self.renderer)


class SettingsRecheck:
    """The recheck for a dispatcher in another process: it travels as the settings alone (a
    closure cannot be pickled) and builds calendar, identity and renderer there, once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._recheck: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "_recheck": None}

    def _built(self) -> Any:
        if self._recheck is None:
            self._recheck = Runtime(self.settings).recheck()
        return self._recheck

    def prepare(
        self, session: Session, emails: list[Email], now: datetime
    ) -> Callable[[Session, Email, datetime], bytes | Literal["keep"] | None]:
        return self._built().prepare(session, emails, now)

    def __call__(self, session: Session, email: Email, now: datetime) -> bytes | Literal["keep"] | None:
        return self._built()(session, email, now)
