"""Personal access tokens for the dashboard and API: one row per token issued to a contact.

Only a hash of the token is stored: a leaked database (or backup) must not let anyone sign in
as a coordinator. The token is long and random, so a plain SHA-256 is enough (no salt or slow
hash needed: there is no dictionary to attack), and it lets sign-in look the row up by index.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


class AccessToken(SQLModel, table=True):
    __tablename__ = "access_token"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # A session cookie names the token and the epoch it was made in. Signing out (or revoking)
    # moves the epoch on, so every cookie made from this token, copies included, stops working;
    # the signed cookie alone cannot be withdrawn from a browser that kept it.
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at
