"""Every table, imported in one place so that metadata and migrations see them all."""

from __future__ import annotations

from models.access import AccessToken
from models.audit import AuditEvent, AuditHead
from models.audit_tree import SignedCheckpoint
from models.campaign import Campaign, CaseDeadline, StageDeadline
from models.case import Case
from models.channels import ChannelAttempt, ChannelItem, ChannelMessage, DeliveryBucket, DeliveryLedger
from models.identity import DatabaseIdentity
from models.org import Contact, Organisation
from models.outbox import DeliveryAttempt, Email, Notification, ReconcileCursor, ReconcilePlan
from models.platform_ids import PlatformUser
from models.workdays import WorkdayArrangement

__all__ = [
    "AccessToken",
    "AuditEvent",
    "AuditHead",
    "Campaign",
    "Case",
    "CaseDeadline",
    "ChannelAttempt",
    "ChannelItem",
    "ChannelMessage",
    "Contact",
    "DatabaseIdentity",
    "DeliveryAttempt",
    "DeliveryBucket",
    "DeliveryLedger",
    "Email",
    "Notification",
    "Organisation",
    "PlatformUser",
    "ReconcileCursor",
    "ReconcilePlan",
    "SignedCheckpoint",
    "StageDeadline",
    "WorkdayArrangement",
]
