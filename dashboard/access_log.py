"""No secret in a log: sign-in tokens and calendar feed ids are cut out of every logged request.

A personal link (``/login/sb_…``) and a calendar feed (``/calendar/<feed id>.ics``) carry their
secret in the path, and uvicorn's access log prints the path of every request; whoever reads the
log (or the journal, or a log shipper) could otherwise sign in as the coordinator. The filter sits
on the ``uvicorn.access`` logger itself, so it holds whichever edge serves the app (``shenbao
web``, the thread inside ``shenbao serve``) and whatever handlers a log config adds.
"""

from __future__ import annotations

import logging
import re

# Tokens are "sb_" + urlsafe base64; feed ids are "<token id>.<signature>".
_SECRETS = (
    (re.compile(r"sb_[A-Za-z0-9_\-]+"), "sb_…"),
    (re.compile(r"(/calendar/)[^/?#\s]+?(\.ics)"), r"\1…\2"),
    (re.compile(r"((?:^|[?&])(?:token|access_token|feed)=)[^&#\s]*", re.IGNORECASE), r"\1…"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
