"""The checkpoints this machine has seen: ``shenbao audit verify`` holds the log to the newest
one it accepted before, so a rollback between two runs of verify is caught here too (whoever
restores the database and this folder together is caught by a checkpoint kept elsewhere: a
witness's mail, a receipt)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from models import audit_tree
from models.checkpoint import CheckpointInvalid, Keyring, open_checkpoint
from models.identity import database_identity
from operations.runtime import Runtime


def _file(rt: Runtime, session: Session) -> Path:
    return rt.settings.resolved_checkpoint_dir / f"seen-{database_identity(session) or 'unknown'}.txt"


def seen(rt: Runtime, session: Session) -> list[tuple[str, str]]:
    path = _file(rt, session)
    return [(f"本机记下的检查点 {path}", path.read_text())] if path.exists() else []


def remember(rt: Runtime, session: Session, keyring: Keyring) -> None:
    """After a clean verify: keep the newest signed checkpoint, if it is newer than the one kept."""
    newest = audit_tree.latest_checkpoint(session)
    if newest is None:
        return
    path = _file(rt, session)
    if path.exists():
        try:
            if open_checkpoint(path.read_text(), keyring).size >= newest.size:
                return
        except CheckpointInvalid:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(newest.note)
    tmp.replace(path)
