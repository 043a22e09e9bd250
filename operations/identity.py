"""Who a person at an edge is: an organisation and a name, or an administrator who says why.

Every writing command acts as somebody. ``--as 单位 --by 姓名`` (or SHENBAO_ACTOR="单位/姓名")
names a person of an organisation in the organisations table; ``--admin 理由 --by 姓名`` is the
only way past the tier and jurisdiction checks, and the reason goes into the audit. There is no
default identity: a command without one is refused before it touches anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from models.context import Actor
from models.org import Organisation

ACTOR_SETTING = "SHENBAO_ACTOR"
ACTOR_FORMAT = "单位/姓名"


class IdentityMissing(ValueError):
    """No identity, or one that names nobody: the message says how to give one."""


@dataclass(frozen=True)
class Claim:
    """An identity as given at the edge, before it is looked up."""

    org: str | None
    person: str | None
    admin_reason: str | None = None
    source: str = "--as/--by"


def claim_from(org: str | None, person: str | None, admin_reason: str | None, setting: str | None) -> Claim:
    """Command-line options first; SHENBAO_ACTOR fills what they leave out."""
    if admin_reason is not None and not admin_reason.strip():
        raise IdentityMissing('--admin 须写明以管理员身份操作的理由，如 --admin "省厅授权补录"')
    if setting and not (org and person):
        text = setting.strip()
        org_part, sep, person_part = text.partition("/")
        if not sep or not org_part.strip() or not person_part.strip() or "/" in person_part:
            raise IdentityMissing(
                f'{ACTOR_SETTING} 应为「{ACTOR_FORMAT}」，如 {ACTOR_SETTING}="省经信厅/张伟"；收到：{setting!r}'
            )
        return Claim(
            org=org or org_part.strip(),
            person=person or person_part.strip(),
            admin_reason=admin_reason.strip() if admin_reason else None,
            source=ACTOR_SETTING if not (org or person) else f"--as/--by 与 {ACTOR_SETTING}",
        )
    return Claim(org=org, person=person, admin_reason=admin_reason.strip() if admin_reason else None)


def require_complete(claim: Claim) -> None:
    """Refuse a claim that names no person, or a person of no organisation without --admin."""
    if not (claim.person or "").strip():
        raise IdentityMissing(
            "请说明是谁在操作：--as 单位 --by 姓名，或设置 "
            f'{ACTOR_SETTING}="{ACTOR_FORMAT}"，如 {ACTOR_SETTING}="省经信厅/张伟"'
        )
    if not claim.org and not claim.admin_reason:
        raise IdentityMissing(
            f"请说明 {claim.person} 代表哪个单位操作：--as 单位（如 --as 西湖区），或设置 "
            f'{ACTOR_SETTING}="{ACTOR_FORMAT}"；确需以管理员身份操作时用 --admin 理由'
        )


def resolve(session: Session, claim: Claim) -> Actor:
    """The Actor for a claim, checked against the organisations table."""
    from models.imports import resolve_org

    require_complete(claim)
    person = (claim.person or "").strip()
    org: Organisation | None = None
    if claim.org:
        org, why = resolve_org(session, claim.org)
        if org is None:
            org = session.get(Organisation, claim.org.strip())
        if org is None:
            raise IdentityMissing(
                f"{claim.source}：未知的单位「{claim.org}」" + (f"（{why}）" if why else "")
            )
    return Actor(
        name=person,
        org_id=org.id if org else None,
        tier=org.tier if org else None,
        admin_reason=claim.admin_reason,
    )


def describe(label: str, org_names: dict[str, str]) -> str:
    """An audit label for people: 李娜（西湖区）, 张伟（管理员）, 系统."""
    if label == "system":
        return "系统"
    if label.startswith("admin:"):
        return f"{label.removeprefix('admin:')}（管理员）"
    name, sep, org_id = label.rpartition("@")
    if sep and name:
        return f"{name}（{org_names.get(org_id, org_id)}）"
    return label
