"""Channel secrets (app secrets, robot tokens and secrets, gateway keys): read once, never shown.

A ``Secret`` prints as ``Secret(SHENBAO_ZZD_APP_SECRET, ******)``: in a log line, a traceback's
locals, an outbox ``detail``, a dataclass repr. It refuses to be pickled or copied into JSON, so
it cannot travel as a Prefect parameter or land in the database; the code that signs a request
calls ``reveal()`` at the one place the platform needs the value.

From the environment (``SHENBAO_X``) or from a file named by ``SHENBAO_X_FILE`` (Docker/systemd
credentials). A secret file must be readable by its owner only: a file others can read is a
secret already shared, so it is refused with the command that fixes it rather than used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

MASK = "******"


class SecretError(ValueError):
    """A secret setting that cannot be used (both forms given, file missing or too open)."""


class Secret:
    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        if not value:
            raise SecretError(f"{source} 为空")
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, {MASK})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        # Prefect parameters, multiprocessing and caches pickle their arguments.
        raise TypeError(f"{self.source} 是密钥，不能序列化（不要作为 Prefect 参数或写入数据库）")


def read_secret_file(path: Path, setting: str) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretError(f"{setting}：密钥文件不存在：{path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"{setting}：不是普通文件：{path}")
    if info.st_mode & 0o077:
        raise SecretError(
            f"{setting}：密钥文件 {path} 的权限为 {stat.S_IMODE(info.st_mode):04o}，其他用户可读；"
            f"请执行 chmod 600 {path}"
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SecretError(f"{setting}：密钥文件为空：{path}")
    return value


def load_secret(setting: str, value: str | None, file: Path | None) -> Secret | None:
    """The secret named ``setting`` (e.g. ``SHENBAO_ZZD_APP_SECRET``) from its value or its file."""
    if value and file is not None:
        raise SecretError(f"{setting} 与 {setting}_FILE 只能设置一个")
    if file is not None:
        return Secret(read_secret_file(Path(os.path.expanduser(str(file))), f"{setting}_FILE"), setting)
    if value:
        return Secret(value, setting)
    return None


def scrub(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every secret value masked: for exception messages that quote a request
    (an httpx error names its URL, and a robot's URL carries its access token)."""
    for secret in secrets:
        if secret is None:
            continue
        raw = secret.reveal() if isinstance(secret, Secret) else secret
        if raw:
            text = text.replace(raw, MASK)
    return text
