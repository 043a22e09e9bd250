"""A case: one application, one city's recommendation, or one city's roster task.

The columns are what filters, quotas and status boards need (indexed); the rest of an
application's fields (revenue, counts, contacts …) live in ``attrs``. ``state_since`` lets the
engine find cases that are stuck.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.programs import PROGRAM_LABELS as PROGRAM_LABELS  # program names come from the campaign files
from models.types import UTCDateTime

# States in which a case uses a recommendation quota slot.
QUOTA_STATES = frozenset(
    {
        "recommended",
        "prelim_passed",
        "prelim_failed",
        "defence_scheduled",
        "defence_held",
        "site_check",
        "selected",
        "not_selected",
    }
)

# How a zone_type or category is shown comes from the campaign's form (its choices' labels):
# CampaignSpec.column_label.


class Case(SQLModel, table=True):
    __tablename__ = "case"
    __table_args__ = (
        Index("ix_case_campaign_state", "campaign_id", "state"),
        Index("ix_case_campaign_city_state", "campaign_id", "city_code", "state"),
        Index("ix_case_campaign_county", "campaign_id", "county_code"),
        Index("ix_case_quota", "campaign_id", "quota_bucket"),
        # Covering index for the questions asked of every open case: who still has to act at a
        # stage (reconcile, grouped by organisation), how long it has waited (the stuck rule),
        # which cases a digest counts (compose's stage scan: ids and refs) and the stage counts
        # by kind and state. Every column those queries read is here, so they scan the index
        # alone, never the rows with their JSON attributes.
        Index(
            "ix_case_pending",
            "campaign_id",
            "kind",
            "state",
            "state_since",
            "org_id",
            "county_code",
            "city_code",
            "ref",
        ),
        # The status board's: counts by city (or a city's counties) and state for one kind,
        # in index order, without reading a row (`shenbao status` over 100,000 cases).
        Index("ix_case_board", "campaign_id", "kind", "city_code", "state", "county_code", "org_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=40, unique=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=60)
    kind: str = Field(max_length=30)
    state: str = Field(max_length=30)
    state_since: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # The organisation that owns the case: applicant, or the city for its recommendation.
    org_id: str = Field(foreign_key="organisation.id", max_length=40, index=True)
    city_code: str | None = Field(default=None, max_length=6)
    county_code: str | None = Field(default=None, max_length=6)
    title: str = Field(max_length=300)
    zone_type: str | None = Field(default=None, max_length=20)
    category: str | None = Field(default=None, max_length=20)
    track: str | None = Field(default=None, max_length=60)
    # Who recommends this case (jingpin: the city, an SOE group or an association).
    recommender_id: str | None = Field(default=None, max_length=40)
    brand_aligned: bool = False
    # Which quota the recommendation counted against, e.g. "city:330100", "brand:330106".
    quota_bucket: str | None = Field(default=None, max_length=40)
    external_id: str | None = Field(default=None, max_length=80, index=True)
    defence_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    letter: str | None = Field(default=None, max_length=300)
    attrs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    findings: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: int = 1
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
