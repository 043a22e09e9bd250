"""Organisations (province, cities, counties, parks, enterprises, recommenders) and contacts.

Divisions come from the built-in reference data and keep their GB/T 2260 code as id, so a
county is the same row in every campaign. Parks, enterprises, SOE groups and associations are
created on import and get a generated id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

TIERS = ("province", "city", "county", "park", "enterprise", "soe_group", "association")
TIER_LABELS = {
    "province": "省级",
    "city": "设区市",
    "county": "县（市、区）",
    "park": "开发区（园区）",
    "enterprise": "企业",
    "soe_group": "省属企业集团",
    "association": "省级行业协会",
}


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, index=True)
    tier: str = Field(max_length=20)
    # Jurisdiction: the city and county a row belongs to, for filters and permissions.
    city_code: str | None = Field(default=None, max_length=6, index=True)
    county_code: str | None = Field(default=None, max_length=6, index=True)
    mountain_island: bool = False


class Contact(SQLModel, table=True):
    """A person from a staff roster (附件3) or from an application's contact columns."""

    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("org_id", "name", "email", name="uq_contact_org_name_email"),
        Index("ix_contact_org_active", "org_id", "active"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organisation.id", max_length=40)
    department: str = Field(default="", max_length=100)
    name: str = Field(max_length=50)
    title: str = Field(default="", max_length=50)
    mobile: str = Field(default="", max_length=40)  # as typed, for people to read and dial
    # 手机号码（浙政钉号码）, normalised to 11 digits: 浙政钉 finds its user by this number. Empty when
    # the roster gave a landline, which no 浙政钉 account has.
    zzd_mobile: str = Field(default="", max_length=11)
    # An enterprise contact's SMS number (11 digits); empty = no SMS. Bureau staff read 浙政钉.
    sms_mobile: str = Field(default="", max_length=11)
    # The bureau work group's DingTalk robot this person's items may go to: a robot *name*
    # configured in settings (never its webhook or secret), from the directory's 钉钉群机器人.
    robot: str = Field(default="", max_length=60)
    # Where the person wants what is not urgent: email (default), zzd, robot or sms. Urgent items
    # (last day, escalations) go to every channel the person has.
    prefers: str = Field(default="email", max_length=10)
    email: str = Field(max_length=200)
    # Comma-separated programs this person works on (program ids of the campaign files); empty:
    # every program, including one whose campaign is loaded after this person was entered.
    programs: str = Field(default="", max_length=40)
    active: bool = True
    # Where the person was last loaded from: a roster file and row, or a directory's name such as
    # 「省厅通讯录 2026-05-26」 (``--replace-source`` retires by it).
    source: str = Field(default="", max_length=200)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    def works_on(self, program: str) -> bool:
        return not self.programs or program in self.programs.split(",")

    def program_ids(self, known: Iterable[str]) -> frozenset[str]:
        """The programs this person works on, of ``known`` (every one of them when none is named)."""
        return frozenset(known) if not self.programs else frozenset(p for p in self.programs.split(",") if p)
