"""The user's cache: small JSON files that spare a cold process work another process did.

A coordinator runs ``shenbao status`` again and again, each time in a fresh process; what it
added to the CLI's start-up was mostly recomputing the same things (the ``holidays`` library's
year, the campaign files' YAML). Each entry is named by everything its content depends on
(a library release, a digest of the text), so an entry is never stale, only unused; nothing in
it is trusted beyond what recomputing would give: a file that cannot be read is recomputed and
written again, and a cache that cannot be written only costs the next process the work.

Where: ``SHENBAO_CACHE_DIR``, else ``$XDG_CACHE_HOME/shenbao``, else ``~/.cache/shenbao``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "SHENBAO_CACHE_DIR"


def cache_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache folder, or None when there is no home directory to put it in."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_DIR_ENV, "").strip():
        return Path(env[CACHE_DIR_ENV].strip()).expanduser()
    base = env.get("XDG_CACHE_HOME", "").strip()
    try:
        return (Path(base).expanduser() if base else Path.home() / ".cache") / "shenbao"
    except RuntimeError:
        return None


def read_json(name: str) -> Any | None:
    """The entry ``name`` (a relative path), or None when it is absent or unreadable."""
    root = cache_root()
    if root is None:
        return None
    try:
        return json.loads((root / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(name: str, data: Any) -> None:
    """Atomically (a reader sees the old file or the whole new one)."""
    root = cache_root()
    if root is None:
        return
    path = root / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass
