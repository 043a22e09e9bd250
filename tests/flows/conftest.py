"""CLI fixtures: a home directory as `shenbao init` leaves it, initialised once per session."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest


def keys_of(home: Path) -> Path:
    """Where the audit key and anchor live by default: beside the home, not in it."""
    return home.parent / f"{home.name}.keys"


@pytest.fixture(scope="session")
def initialised_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home after `shenbao init` (in-process, as the province's coordinator): copy it, never use it."""
    from tests.flows.test_cli import Shenbao

    home = tmp_path_factory.mktemp("initialised") / "home"
    Shenbao(home)("init")
    checkpoint_wal(home / "shenbao.db")
    return home


def checkpoint_wal(path: Path) -> None:
    """Every committed page of a template home's database in its main file, so that copying the
    file (without -wal/-shm) copies the whole database. The in-process run keeps its connections,
    so the WAL cannot be switched off here; a checkpoint is enough."""
    conn = sqlite3.connect(path)
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    assert busy == 0, f"the WAL of {path} could not be checkpointed"


def copy_home(template: Path, home: Path) -> None:
    """The database and its key/anchor folder: init names nothing by its path, so a copy is whole."""
    shutil.copytree(template, home, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    shutil.copytree(keys_of(template), keys_of(home))
