"""Jinja2 templates for the emails: zh-CN, a subject, a plain text and an HTML part per kind.

One Environment with autoescape for HTML and StrictUndefined (a missing field is an error, not
an empty string in a government email). Operators override any template by putting a file of
the same name in SHENBAO_TEMPLATES_DIR; the built-in set is the fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

KINDS = (
    "reminder",
    "supervisor_reminder",
    "overdue",
    "escalation",
    "stuck",
    "notice",
    "notice_group",
    "lapse_notice",
    "deadline_notice",
    "receipt",
)


class Renderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [PackageLoader("notifications", "templates")]
        if override_dir is not None:
            if not override_dir.is_dir():
                raise ValueError(f"SHENBAO_TEMPLATES_DIR 不是目录：{override_dir}")
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, context: dict[str, Any]) -> tuple[str, str, str]:
        """Subject, text and HTML of one email carrying ``context['sections']``."""
        sections = context["sections"]
        if len(sections) == 1:
            subject = self.env.get_template(f"{sections[0]['kind']}.subject.txt").render(
                context | {"s": sections[0]}
            )
        else:
            subject = self.env.get_template("digest.subject.txt").render(context)
        text = self.env.get_template("digest.txt").render(context)
        html = self.env.get_template("digest.html").render(context)
        return " ".join(subject.split()), text, html
