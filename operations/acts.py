"""What people do, one operation each: act on a case, move a deadline, import a roster, a
directory of contacts or applications, load a campaign. Every edge (CLI, web, API, Prefect, demo) calls these with an
:class:`~models.context.Actor` it has established; each is one transaction, and a refusal leaves
only its audit record behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.actions import ActionRefused, perform, record_refusal, set_deadline
from models.context import Actor
from operations.runtime import Runtime

if TYPE_CHECKING:
    from models.campaign import Campaign, StageDeadline
    from models.case import Case
    from models.imports import ImportProgress, ImportSummary
    from models.sync import SyncReport


def act(
    rt: Runtime,
    actor: Actor,
    ref: str,
    action: str,
    *,
    reason: str = "",
    overrides: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Case:
    """Act on a case, or raise ActionRefused (recorded in the audit)."""
    return perform(
        rt.db, rt.ctx(actor, now=now), ref, action, reason=reason, overrides=overrides, params=params
    )


def move_deadline(
    rt: Runtime,
    actor: Actor,
    campaign_id: str,
    stage_id: str,
    due_at: datetime | None,
    reason: str,
    *,
    now: datetime | None = None,
) -> StageDeadline:
    """Announce or move a stage's deadline (None: back to 另行通知), or raise ActionRefused."""
    ctx = rt.ctx(actor, now=now)
    try:
        with rt.db.write() as session:
            return set_deadline(session, ctx, campaign_id, stage_id, due_at, reason)
    except ActionRefused as exc:
        with rt.db.write() as session:
            record_refusal(
                session, ctx, f"stage:{campaign_id}/{stage_id}", "deadline_set", exc, campaign_id=campaign_id
            )
        raise


def import_roster(
    rt: Runtime,
    actor: Actor,
    path: Path,
    *,
    replace: bool = False,
    submit: bool = False,
    now: datetime | None = None,
) -> ImportSummary:
    """附件3 into contacts, all rows or none (ImportRejected names every bad cell); with
    ``submit`` the listed cities' roster tasks are submitted too, or nothing is (ActionRefused,
    recorded in the audit)."""
    from models.imports import import_roster as load

    ctx = rt.ctx(actor, now=now)
    try:
        with rt.db.write() as session:
            return load(session, ctx, path, replace=replace, submit=submit)
    except ActionRefused as exc:
        with rt.db.write() as session:
            record_refusal(session, ctx, f"roster:{path.name}", "roster_submit", exc)
        raise


def import_directory(
    rt: Runtime,
    actor: Actor,
    path: Path,
    *,
    source: str | None = None,
    replace_source: str | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """People from an address book (any 附件3-shaped file) into contacts, all rows or none;
    no roster task changes."""
    from models.imports import import_directory as load

    ctx = rt.ctx(actor, now=now)
    with rt.db.write() as session:
        return load(session, ctx, path, source=source, replace_source=replace_source)


def import_cases(
    rt: Runtime,
    actor: Actor,
    campaign_id: str,
    path: Path,
    *,
    now: datetime | None = None,
    progress: ImportProgress | None = None,
) -> ImportSummary:
    """Applications from a sheet, all rows or none (``progress`` hears how far it got)."""
    from models.campaign import get_campaign
    from models.imports import read_cases, write_cases

    ctx = rt.ctx(actor, now=now)
    # The file is checked outside the write transaction: other writers are not held up by it.
    with rt.db.read() as session:
        spec = get_campaign(session, campaign_id).spec()
    sheet = read_cases(spec, path, progress)
    with rt.db.write() as session:
        return write_cases(session, ctx, campaign_id, sheet, progress)


def load_campaign(
    rt: Runtime, actor: Actor, text: str, *, origin: str, now: datetime | None = None
) -> tuple[Campaign, list[str]]:
    """Load or update a campaign file; a moved deadline is recorded as an adjustment."""
    from models.registry import load_campaign as load

    ctx = rt.ctx(actor, now=now)
    try:
        with rt.db.write() as session:
            return load(session, ctx, text, origin=origin)
    except ActionRefused as exc:
        with rt.db.write() as session:
            record_refusal(session, ctx, f"campaign-file:{origin}", "campaign_load", exc)
        raise


def requeue_dead_letters(
    rt: Runtime,
    actor: Actor,
    email_ids: list[int] | None,
    reason: str,
    *,
    now: datetime | None = None,
    channel: str = "email",
) -> list[int]:
    """Put dead letters of one channel back in the outbox (None: all of them); a refusal is
    audited too. ``email_ids`` are the ids of that channel's outbox (emails, or channel messages)."""
    from models.audit import EventDraft
    from models.channels import requeue_channel
    from models.outbox import requeue

    ctx = rt.ctx(actor, now=now)
    try:
        with rt.db.write() as session:
            if channel == "email":
                return requeue(session, ctx, email_ids, reason)
            return requeue_channel(session, ctx, channel, email_ids, reason)
    except (ValueError, LookupError) as exc:
        with rt.db.write() as session:
            ctx.audit.append(
                session,
                EventDraft(
                    at=ctx.now,
                    actor=actor.label,
                    action="refusal",
                    subject="outbox",
                    reason=str(exc),
                    details={"action": "outbox_requeue", "channel": channel, "email_ids": email_ids}
                    | actor.audit_details(),
                ),
            )
        raise


def sync_platform(
    rt: Runtime,
    requested_by: Actor,
    campaign_id: str,
    path: Path,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SyncReport:
    """Bring a campaign in line with a platform's list export, in one transaction.

    The changes are 平台同步's (the platform is where people acted); ``requested_by`` is who
    handed the file over, recorded with every change. A dry run writes nothing at all.
    """
    from models.context import PLATFORM_SYNC
    from models.sync import sync_file

    ctx = rt.ctx(PLATFORM_SYNC, now=now)
    with rt.db.write() as session:
        return sync_file(session, ctx, campaign_id, path, dry_run=dry_run, requested_by=requested_by.label)


def sync_pushed_rows(
    rt: Runtime,
    requested_by: Actor,
    campaign_id: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SyncReport:
    """The same as :func:`sync_platform`, for rows a platform pushes instead of a file.

    ``source`` is the name the pusher gives its batch (it stands where a file name would);
    ``requested_by`` is whose token pushed it.
    """
    from models.context import PLATFORM_SYNC
    from models.sync import sync_rows

    ctx = rt.ctx(PLATFORM_SYNC, now=now)
    with rt.db.write() as session:
        return sync_rows(
            session, ctx, campaign_id, rows, source=source, dry_run=dry_run, requested_by=requested_by.label
        )


def load_workdays(
    rt: Runtime, actor: Actor, path: Path, *, dry_run: bool = False, now: datetime | None = None
) -> Any:
    """Load a year's 节假日安排 (YAML, or the State Council notice's text) as a new version, and
    re-plan every deadline counted in working days; returns a CalendarLoadReport (what moved).
    Raises WorkdaysFileError naming the file and line for an unreadable arrangement."""
    from calendars.arrangement import read_arrangement
    from calendars.workdays import load_default_calendar
    from models.workdays import load_arrangement
    from notifications.wakeups import wakeups

    arrangement, text = read_arrangement(path)
    env = {"SHENBAO_WORKDAYS_FILE": str(rt.settings.workdays_file)} if rt.settings.workdays_file else {}
    ctx = rt.ctx(actor, now=now)
    with rt.db.write() as session:
        report = load_arrangement(
            session, ctx, arrangement, text, load_default_calendar(env), dry_run=dry_run, plan=wakeups
        )
    if not dry_run:
        rt.refresh_calendar()
    return report
