"""Every table, imported in one place so that metadata and migrations see them all."""

from __future__ import annotations

from models.access import AccessToken
from models.audit import AuditEvent, AuditHead
from models.campaign import Campaign, StageDeadline
from models.case import Case
from models.identity import DatabaseIdentity
from models.org import Contact, Organisation
from models.outbox import DeliveryAttempt, Email, Notification, ReconcileCursor, ReconcilePlan

__all__ = [
    "AccessToken",
    "AuditEvent",
    "AuditHead",
    "Campaign",
    "Case",
    "Contact",
    "DatabaseIdentity",
    "DeliveryAttempt",
    "Email",
    "Notification",
    "Organisation",
    "ReconcileCursor",
    "ReconcilePlan",
    "StageDeadline",
]
