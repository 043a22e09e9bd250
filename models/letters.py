"""Sealed letters (推荐函 / 推荐意见汇总表): scans stored by content, the name kept as data.

A letter is what the province receives with a recommendation, so the rule that one must be on
file before submitting is only worth something if a letter is a real file: stored under
``<SHENBAO_HOME>/letters/<sha256>``, its digest on the case and in the audit event, so anyone can
check that the file on disk is the one that was attached. The name a coordinator's computer gave
the file is never used as a path.

Storing happens in two steps so that a refused action leaves nothing behind: ``stage`` writes the
upload to a temporary file; the edge performs the action and then either ``keep``s the staged file
(moved into place) or ``discard``s it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.case import Case

MAX_LETTER_BYTES = 20 * 1024 * 1024

# The notice asks for sealed scans: PDF, OFD (China's fixed-layout format, a zip package) or a
# photo. Each is recognised by its first bytes as well as its name, so a renamed .exe is refused.
_KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".ofd": ("application/ofd", (b"PK\x03\x04",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
}
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class LetterRefused(ValueError):
    """A file that cannot be a sealed letter; the message names the file and the rule."""


@dataclass(frozen=True)
class Letter:
    """A stored letter as the case and the audit event record it."""

    name: str
    sha256: str
    size: int
    media_type: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


def letter_on_file(case: Case) -> dict[str, Any] | None:
    """The stored letter a case carries (name, sha256, size), or None: a bare name is not one."""
    record = case.attrs.get("letter")
    return dict(record) if isinstance(record, dict) and record.get("sha256") else None


def display_name(name: str) -> str:
    """The uploaded name as data: no folders, no control characters, at most 120 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f/:*?\"<>|]", "_", name).strip(" .")
    return name[-120:]


def check_letter(name: str, data: bytes) -> Letter:
    """The letter ``data`` would be, or LetterRefused naming what is wrong with it."""
    shown = display_name(name)
    if not shown:
        raise LetterRefused("签章文件没有文件名")
    suffix = Path(shown).suffix.lower()
    if suffix not in _KINDS:
        raise LetterRefused(f"签章文件「{shown}」应为 PDF、OFD 或图片（.pdf .ofd .jpg .png）")
    if not data:
        raise LetterRefused(f"签章文件「{shown}」是空的")
    if len(data) > MAX_LETTER_BYTES:
        raise LetterRefused(f"签章文件「{shown}」超过 {MAX_LETTER_BYTES // (1024 * 1024)} MB")
    media_type, magics = _KINDS[suffix]
    if not data.startswith(magics):
        raise LetterRefused(f"签章文件「{shown}」的内容不是 {suffix[1:].upper()} 文件")
    return Letter(shown, hashlib.sha256(data).hexdigest(), len(data), media_type)


@dataclass(frozen=True)
class StagedLetter:
    letter: Letter
    path: Path


class LetterStore:
    """Letters under one folder, one file per digest plus a small record of name and type."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def under(cls, home: Path) -> LetterStore:
        return cls(home / "letters")

    def path(self, sha256: str) -> Path:
        if not _DIGEST.match(sha256):
            raise LetterRefused(f"签章文件摘要应为 64 位十六进制 SHA-256，收到：{sha256[:80]}")
        return self.root / sha256

    def stage(self, name: str, data: bytes) -> StagedLetter:
        letter = check_letter(name, data)
        incoming = self.root / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        path = incoming / f"{letter.sha256}.{secrets.token_hex(8)}"
        path.write_bytes(data)
        return StagedLetter(letter, path)

    def keep(self, staged: StagedLetter) -> Letter:
        """Move a staged letter into place (after its action was committed)."""
        letter = staged.letter
        record = self.path(letter.sha256).with_suffix(".json")
        tmp = record.with_name(f".{record.name}.{secrets.token_hex(4)}")
        tmp.write_text(
            json.dumps({"name": letter.name, "size": letter.size, "media_type": letter.media_type}),
            encoding="utf-8",
        )
        os.replace(staged.path, self.path(letter.sha256))
        os.replace(tmp, record)
        return letter

    def discard(self, staged: StagedLetter) -> None:
        staged.path.unlink(missing_ok=True)

    @contextmanager
    def attaching(self, name: str, data: bytes) -> Iterator[Letter]:
        """The letter for the action performed inside the block, stored only if the block succeeds.

        The action commits first and the file is moved into place after it: a crash in between
        leaves a digest whose file is missing (the download says so), never an orphan file.
        """
        staged = self.stage(name, data)
        try:
            yield staged.letter
        except BaseException:
            self.discard(staged)
            raise
        self.keep(staged)

    def find(self, sha256: str) -> Letter | None:
        """A letter already stored, by digest."""
        path = self.path(sha256.strip().lower())
        record = path.with_suffix(".json")
        if not path.is_file() or not record.is_file():
            return None
        meta = json.loads(record.read_text(encoding="utf-8"))
        return Letter(
            str(meta["name"]),
            path.name,
            int(meta["size"]),
            str(meta["media_type"]),
        )
