"""Who a mobile number is on a messaging platform: 浙政钉's account id, cached for every process.

Resolving a mobile costs a request to the platform (and its own quota); the dispatchers of
several machines would each ask again if the answer lived in one process's memory. The row is
re-checked after ``ttl`` (people move between bureaus) and dropped when the platform says the
account is gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class PlatformUser(SQLModel, table=True):
    __tablename__ = "platform_user"

    # "zzd:<tenant id>": one tenant's account ids mean nothing in another's
    platform: str = Field(primary_key=True, max_length=64)
    mobile: str = Field(primary_key=True, max_length=20)
    user_id: str = Field(max_length=64)
    resolved_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
