"""Which channels a person has, and which of them a notification takes.

A person has email (every contact), 浙政钉 when the roster gave a mobile (``zzd_mobile``), SMS
when the directory gave an enterprise contact's number (``sms_mobile``) and their bureau work
group's robot when the directory named one (``robot``, configured in settings). Urgent items (the
last day, escalations) go to every channel the person has; the rest to the channel the person
prefers (``prefers``), or email when they prefer one they do not have.
"""

from __future__ import annotations

from models.org import Contact

# The order fallbacks are tried in after a permanent failure: the person's own inbox first.
FALLBACK_ORDER: tuple[str, ...] = ("email", "zzd", "sms", "robot")


def channels_of(contact: Contact) -> list[str]:
    have = {
        "email": bool(contact.email),
        "zzd": bool(contact.zzd_mobile),
        "sms": bool(getattr(contact, "sms_mobile", "")),
        "robot": bool(getattr(contact, "robot", "")),
    }
    return [c for c in FALLBACK_ORDER if have[c]]


def address_of(contact: Contact, channel: str) -> str:
    return {
        "email": contact.email,
        "zzd": contact.zzd_mobile,
        "sms": getattr(contact, "sms_mobile", ""),
        "robot": getattr(contact, "robot", ""),
    }[channel]


def routes_for(contact: Contact, urgent: bool) -> list[str]:
    have = channels_of(contact)
    if urgent:
        return have
    preferred = getattr(contact, "prefers", "email") or "email"
    if preferred in have:
        return [preferred]
    return have[:1]


def fallback_for(contact: Contact, tried: set[str]) -> str | None:
    """The next channel to try after a permanent failure, or None when the person has no other."""
    for channel in channels_of(contact):
        if channel not in tried:
            return channel
    return None
