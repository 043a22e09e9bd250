"""Signed checkpoints of the audit log: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.

A checkpoint says "the log named <origin> had <size> events with this Merkle root"; whoever keeps
one can later demand a consistency proof and so catch a rollback, a rewritten past or a second
history shown to someone else. The formats are the transparency community's own (c2sp.org
tlog-checkpoint and signed-note, as sigstore and the Go checksum database use), so a note can be
checked by their tools too:

    shenbao.audit/<database identity>        origin
    1234                                     tree size
    <base64 root>                            RFC 6962 root
                                             (blank line)
    — <key name> <base64(4-byte key id || Ed25519 signature)>

The key id is the first four bytes of SHA-256(name || "\\n" || 0x01 || public key): it is in the
signature line, so after a rotation an old checkpoint still names the key that signed it, and a
keyring of public keys (one verifier key a line) verifies old and new alike.

The private key lives in a file outside the database and its backups (default ``<home>.keys/``,
mode 0600, checked); only writing a checkpoint needs it, never appending an event or verifying.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
_DASH = "— "


class KeyProblem(ValueError):
    """A signing or verifier key that is missing, unreadable, too open or the wrong one; the message
    names the file and what to do."""


class CheckpointInvalid(ValueError):
    """A checkpoint that cannot be read or whose signature does not verify; the message says which."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CheckpointInvalid(f"{what}不是合法的 base64：{text[:40]}") from exc


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def key_id(name: str, public: bytes) -> int:
    return int.from_bytes(
        hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()[:4], "big"
    )


@dataclass(frozen=True)
class VerifierKey:
    name: str
    id: int
    public: bytes

    @property
    def text(self) -> str:
        return f"{self.name}+{self.id:08x}+{_b64(bytes([ALG_ED25519]) + self.public)}"

    @property
    def label(self) -> str:
        return f"{self.name}+{self.id:08x}"

    @property
    def fingerprint(self) -> str:
        """What a person compares by eye or over the phone: SHA-256 of the key's text, 32 hex
        digits in groups of four (the 8-digit key id alone is too short to be a fingerprint)."""
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:32].upper()
        return " ".join(digest[i : i + 4] for i in range(0, 32, 4))

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 has "+" of its own
        if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
            raise KeyProblem(f"不是公钥（应为 名称+8位十六进制+base64）：{text.strip()[:60]}")
        raw = _unb64(parts[2], "公钥")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise KeyProblem(f"公钥不是 Ed25519：{parts[0]}")
        key = cls(parts[0], int(parts[1], 16), raw[1:])
        if key_id(key.name, key.public) != key.id:
            raise KeyProblem(f"公钥 {parts[0]} 的标识与内容不符（被改动过）")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SignerKey:
    name: str
    private: Ed25519PrivateKey

    @property
    def verifier(self) -> VerifierKey:
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifierKey(self.name, key_id(self.name, public), public)

    @property
    def text(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        v = self.verifier
        return f"PRIVATE+KEY+{v.name}+{v.id:08x}+{_b64(bytes([ALG_ED25519]) + seed)}"

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        if not _valid_name(name):
            raise KeyProblem(f"密钥名称不能含空格或“+”：{name!r}")
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str, source: str) -> SignerKey:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise KeyProblem(f"审计签名私钥文件格式不对：{source}（应为 PRIVATE+KEY+名称+标识+base64）")
        raw = _unb64(parts[4], "私钥")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise KeyProblem(f"审计签名私钥不是 Ed25519：{source}")
        key = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if f"{key.verifier.id:08x}" != parts[3]:
            raise KeyProblem(f"审计签名私钥的标识与内容不符：{source}（文件被改动过）")
        return key

    def sign(self, message: bytes) -> str:
        v = self.verifier
        sig = v.id.to_bytes(4, "big") + self.private.sign(message)
        return f"{_DASH}{v.name} {_b64(sig)}\n"


# -- key files ---------------------------------------------------------------------------------


def write_private(path: Path, key: SignerKey, *, replace: bool = False) -> None:
    """Mode 0600 from the first byte (never written world-readable and then narrowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not replace:
        raise KeyProblem(f"审计签名私钥已存在：{path}（更换密钥请用 shenbao audit rotate-key）")
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.text + "\n")
    os.replace(tmp, path)


def read_private(path: Path) -> SignerKey:
    if not path.exists():
        raise KeyProblem(
            f"审计签名私钥不存在：{path}（先运行 shenbao audit keygen，或设置 SHENBAO_AUDIT_SIGNING_KEY_FILE）"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyProblem(f"审计签名私钥的权限过宽（{mode:o}）：{path}；请执行 chmod 600 {path}")
    return SignerKey.parse(path.read_text(), str(path))


@dataclass
class Keyring:
    """The public keys a verifier trusts, old (rotated out) and current; a text file, one verifier
    key a line, ``#`` starts a comment."""

    keys: list[VerifierKey]

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        keys = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                keys.append(VerifierKey.parse(line))
            except (KeyProblem, CheckpointInvalid) as exc:
                raise KeyProblem(f"{source} 第 {number} 行：{exc}") from exc
        return cls(keys)

    @classmethod
    def read(cls, path: Path) -> Keyring:
        if not path.exists():
            raise KeyProblem(
                f"审计公钥文件不存在：{path}（由 shenbao audit keygen 生成；校验者用 --key 指定公钥）"
            )
        return cls.parse(path.read_text(), str(path))

    @classmethod
    def from_option(cls, value: str) -> Keyring:
        """``--key``: a verifier key itself, or a file holding one or more."""
        if "+" in value and not Path(value).exists():
            return cls([VerifierKey.parse(value)])
        return cls.read(Path(value))

    def find(self, name: str, kid: int) -> VerifierKey | None:
        return next((k for k in self.keys if k.name == name and k.id == kid), None)


def append_to_keyring(path: Path, key: VerifierKey, comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(f"# {comment}\n{key.text}\n")


# -- checkpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str  # the whole signed note, as published
    signers: tuple[str, ...] = ()  # "name+keyid" of each signature that verified

    @property
    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root)

    @property
    def root_b64(self) -> str:
        return _b64(self.root)


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{_b64(root)}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, signers: list[SignerKey]) -> str:
    body = checkpoint_body(origin, size, root)
    return body + "\n" + "".join(s.sign(body.encode()) for s in signers)


def parse_note(note: str) -> tuple[str, list[tuple[str, int, bytes]]]:
    """The body and its signatures (name, key id, signature), without checking them."""
    if not note.endswith("\n") or "\n\n" not in note:
        raise CheckpointInvalid("不是签名检查点（缺少正文与签名之间的空行）")
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    found = []
    for line in sigs.splitlines():
        if not line.startswith(_DASH):
            raise CheckpointInvalid(f"签名行格式不对：{line[:60]}")
        name, _, b64 = line[len(_DASH) :].rpartition(" ")
        raw = _unb64(b64, "签名")
        if len(raw) != 68:
            raise CheckpointInvalid(f"签名长度不对（{name}）")
        found.append((name, int.from_bytes(raw[:4], "big"), raw[4:]))
    if not found:
        raise CheckpointInvalid("检查点没有签名")
    return body, found


def open_checkpoint(note: str, keyring: Keyring, *, origin: str | None = None) -> Checkpoint:
    """Parse and verify a signed checkpoint: at least one signature by a key in ``keyring``.

    A signature by a key the keyring does not know is passed over (a witness may add its own); no
    known signature at all is an error naming the keys that did sign (a log re-signed with a new
    key shows up here)."""
    body, signatures = parse_note(note)
    lines = body.splitlines()
    if len(lines) < 3:
        raise CheckpointInvalid("检查点正文应有三行：来源、事件数、树根")
    try:
        size = int(lines[1])
    except ValueError as exc:
        raise CheckpointInvalid(f"检查点的事件数不是整数：{lines[1]!r}") from exc
    root = _unb64(lines[2], "树根")
    if len(root) != 32 or size < 0:
        raise CheckpointInvalid("检查点的树根应为 32 字节 SHA-256")
    if origin is not None and lines[0] != origin:
        raise CheckpointInvalid(f"检查点属于另一个日志：{lines[0]}（本库为 {origin}）")
    good, unknown, bad = [], [], []
    for name, kid, sig in signatures:
        key = keyring.find(name, kid)
        if key is None:
            unknown.append(f"{name}+{kid:08x}")
        elif key.verify(body.encode(), sig):
            good.append(key.label)
        else:
            bad.append(key.label)
    if bad:
        raise CheckpointInvalid(f"检查点的签名无效（{'、'.join(bad)}）：正文被改动，或签名是伪造的")
    if not good:
        raise CheckpointInvalid(
            f"检查点不是由受信任的公钥签署的（签名者：{'、'.join(unknown)}）：可能被换了密钥重签"
        )
    return Checkpoint(lines[0], size, root, note, tuple(good))
