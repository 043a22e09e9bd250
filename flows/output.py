"""Printing for people (Chinese tables) and for programs (--json)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Non-terminal output (pipes, CI logs) defaults to 80 columns in rich, which folds Chinese
# tables into unreadable stacks; use a wide page unless the terminal says otherwise.
_width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
# emoji=False: a ":name:" in people's text is shown as typed, not turned into a picture (and
# rich's emoji table, a tenth of what `status` added to the start-up, is never imported).
console = Console(width=_width, highlight=False, soft_wrap=False, emoji=False)
err_console = Console(stderr=True, width=_width, highlight=False, emoji=False)


# Everything that moves the cursor, changes colours or reorders text when it reaches a terminal:
# C0 controls but tab and newline, DEL, C1 (a lone 0x9b is CSI on some terminals), and the
# bidirectional overrides that make a reason read differently from what it says.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ESC is shown as ␛
    if code == 0x7F:
        return "\u2421"
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def printable(text: str) -> str:
    """People's text as it was typed, made safe to print: controls shown, never obeyed."""
    return _UNPRINTABLE.sub(_visible, text)


def one_line(text: str) -> str:
    """Text for a log line: a newline in someone's text must not start a forged entry."""
    return printable(text.replace("\r", "\\r").replace("\n", "\\n"))


def _cell(value: Any) -> Text:
    # A Text is never read as rich markup: a reason "[/]" or "[bold]" prints as typed.
    return Text("" if value is None else printable(str(value)))


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
        t.add_column(_cell(h), justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        t.add_row(*(_cell(v) for v in r))
    console.print(t)


def line(text: str = "") -> None:
    console.print(printable(text), markup=False, soft_wrap=True)


def warning(text: str) -> None:
    """Something allowed but likely not meant (validate's 提示): apart from errors, on stderr."""
    err_console.print("[bold yellow]提示：[/]" + escape(printable(text)), markup=True, soft_wrap=True)


def error(text: str) -> None:
    err_console.print("[bold red]错误：[/]" + escape(printable(text)), markup=True, soft_wrap=True)
