"""Who still owes an action at a stage: the one rule behind a board's 待办 and 已逾期, the
reminders' audience and the escalation after the deadline.

A case waiting at a stage (its ``pending_states``) is owed by its acting organisation
(``acting_org``): the county for a county stage, the city for a city's review, the applicant
for its own filing, the owner of a roster task or a recommender's list. One exception, FORMAT 3:
a recommender's list (``subject: recommendation``) that no application has reached yet (没有申报
到达的推荐单位可报“无推荐”，不算逾期). Such a recommender is *idle*: it is reminded that it may
report 无推荐, but it owes nothing, is not counted 待办 and is never overdue or escalated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from calendars.campaign import CampaignSpec, Stage
from models.actions import nothing_to_review
from models.case import Case
from models.org import Contact

PROVINCE = "330000"


def acting_org(stage: Stage, org_id: str, county: str | None, city: str | None) -> str:
    """Who still has to act on a case waiting at ``stage``: the one rule reconcile, compose,
    the stuck check and the board follow.

    The county bureau files an application on the provincial platform (a park's too), a city
    reviews what its counties sent, an enterprise files its own product, and a city, SOE group or
    association owns its roster task and its recommendation.
    """
    if stage.actor == "province":
        return PROVINCE
    if stage.actor == "county":
        return county or org_id
    if stage.actor == "city" and stage.subject not in ("roster", "recommendation"):
        return city or org_id
    return org_id


def idle_recommenders(session: Session, spec: CampaignSpec, stage: Stage) -> set[str]:
    """The recommenders whose list waits at ``stage`` although no application has reached them
    (``models.actions.nothing_to_review``); empty for any other stage. One query per waiting list:
    a campaign has one per city, SOE group and association."""
    if stage.subject != "recommendation":
        return set()
    waiting = session.exec(
        select(Case.org_id).where(
            Case.campaign_id == spec.id,
            Case.kind == stage.subject,
            col(Case.state).in_(stage.pending_states),
        )
    ).all()
    return {org_id for org_id in set(waiting) if nothing_to_review(session, spec.id, org_id)}


def owed(spec: CampaignSpec, stage: Stage, idle: Iterable[str]) -> list[Any]:
    """The SQL conditions of the cases still owed at ``stage``, given its ``idle`` recommenders."""
    conditions: list[Any] = [
        Case.campaign_id == spec.id,
        Case.kind == stage.subject,
        col(Case.state).in_(stage.pending_states),
    ]
    idle = sorted(idle)
    if idle:
        conditions.append(col(Case.org_id).not_in(idle))
    return conditions


def _acting_column(stage: Stage) -> Any:
    """``acting_org`` as a column expression (the same rule, for a DISTINCT in SQL)."""
    if stage.actor == "county":
        return func.coalesce(Case.county_code, Case.org_id)
    if stage.actor == "city" and stage.subject not in ("roster", "recommendation"):
        return func.coalesce(Case.city_code, Case.org_id)
    return Case.org_id


def acting_units(
    session: Session, spec: CampaignSpec, stage: Stage, idle: Iterable[str], *filters: Any
) -> set[str] | None:
    """The organisations that owe ``stage`` something (within ``filters``), or None where they
    are not government bodies or recommenders: an applicant's own filing (an enterprise without
    contacts is reached through its county) and the province's own stages."""
    if stage.actor in ("enterprise", "province"):
        return None
    column = _acting_column(stage)
    rows = session.exec(select(column).where(*owed(spec, stage, idle), *filters).distinct()).all()
    return {str(r) for r in rows if r}


def without_contacts(session: Session, program: str, org_ids: Iterable[str]) -> set[str]:
    """Of ``org_ids``, those with no active contact working on ``program``: nobody there can be
    reminded, and a board or an escalation says so instead of counting them silently."""
    ids = sorted(set(org_ids))
    reached: set[str] = set()
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for contact in session.exec(
            select(Contact).where(col(Contact.org_id).in_(chunk), Contact.active == True)  # noqa: E712
        ).all():
            if contact.works_on(program):
                reached.add(contact.org_id)
    return set(ids) - reached
