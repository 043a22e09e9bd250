"""Printing for people (Chinese tables) and for programs (--json)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Non-terminal output (pipes, CI logs) defaults to 80 columns in rich, which folds Chinese
# tables into unreadable stacks; use a wide page unless the terminal says otherwise.
_width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
console = Console(width=_width, highlight=False, soft_wrap=False)
err_console = Console(stderr=True, width=_width, highlight=False)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_default) + "\n")


def table(
    title: str | None, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, justify_numbers: bool = True
) -> None:
    if title:
        line(title)
    t = Table(show_lines=False, header_style="bold")
    rows = [list(r) for r in rows]
    for i, h in enumerate(headers):
        numeric = justify_numbers and rows and all(isinstance(r[i], (int, float)) for r in rows)
        t.add_column(h, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def line(text: str = "") -> None:
    console.print(text, markup=False, soft_wrap=True)


def error(text: str) -> None:
    err_console.print("[bold red]错误：[/]" + escape(text), markup=True, soft_wrap=True)
