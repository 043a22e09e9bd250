"""Who is asking: personal tokens, signed sessions, CSRF, calendar feed ids.

- ``shenbao token issue`` makes a random token for one contact and stores only its hash.
- Signing in (paste the token, or open the link) puts the token's *id* and its session epoch into
  a session cookie signed with itsdangerous (Starlette's SessionMiddleware). Every request looks
  the token row up again, so revoking a token or deactivating a contact ends its sessions at
  once; signing out moves the epoch on, so a copy of the cookie is worth nothing afterwards.
- API clients (the provincial platforms) send the token itself: ``Authorization: Bearer …``.
- Forms carry a CSRF token kept in the signed session; a bearer request needs none because the
  browser never attaches a bearer header by itself.
- A calendar app cannot send cookies, so each token has a feed id: the token id signed with
  the web secret. It is unguessable, and dies with the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import func, update
from sqlmodel import Session, select

from models.access import AccessToken, hash_token
from models.campaign import Campaign
from models.context import Actor
from models.db import Database
from models.org import TIER_LABELS, Contact, Organisation

# Writing last_used_at on every request would turn every page view into a write transaction
# (and on SQLite, a queue behind the single writer); once an hour is enough to see who is active.
_LAST_USED_GRANULARITY = timedelta(hours=1)


class AuthError(Exception):
    """A sign-in or token command that cannot go ahead; the message is for people."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, their organisation, and the token that let them in."""

    contact_id: int
    name: str
    email: str
    mobile: str
    programs: str
    org: Organisation
    token_id: int
    expires_at: datetime
    via: str  # "session", "bearer" or "feed"
    session_epoch: int = 0

    @property
    def tier(self) -> str:
        return self.org.tier

    @property
    def tier_label(self) -> str:
        return TIER_LABELS.get(self.org.tier, self.org.tier)

    @property
    def actor(self) -> Actor:
        # perform() checks the tier and the jurisdiction of this organisation again.
        return Actor(name=self.name, org_id=self.org.id, tier=self.org.tier)

    @property
    def program_set(self) -> frozenset[str]:
        return frozenset(p for p in self.programs.split(",") if p)

    def works_on(self, program: str) -> bool:
        return program in self.program_set


# -- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    row: AccessToken
    contact: Contact
    org: Organisation


def find_contact(session: Session, email: str, org: str | None = None) -> tuple[Contact, Organisation]:
    """The one active contact with this e-mail (``org`` picks one when several share it)."""
    query = (
        select(Contact, Organisation)
        .join(Organisation, Organisation.id == Contact.org_id)
        .where(func.lower(Contact.email) == email.strip().lower())
    )
    rows = session.exec(query).all()
    if org:
        rows = [(c, o) for c, o in rows if org in (o.id, o.name)]
    if not rows:
        raise AuthError(
            f"找不到邮箱为 {email} 的联系人{'（单位：' + org + '）' if org else ''}"
            "（先导入工作人员信息汇总表：shenbao roster import）"
        )
    active = [(c, o) for c, o in rows if c.active]
    if not active:
        raise AuthError(f"联系人 {email} 已停用，不能签发令牌")
    if len(active) > 1:
        listed = "、".join(f"{o.name}（{o.id}）{c.name}" for c, o in active)
        raise AuthError(f"邮箱 {email} 对应多位联系人：{listed}；请用 --org 指定单位")
    return active[0]


def issue_token(
    session: Session, contact: Contact, org: Organisation, now: datetime, *, days: int
) -> IssuedToken:
    if days < 1 or days > 366:
        raise AuthError("有效期应为 1–366 天")
    token = "sb_" + secrets.token_urlsafe(32)
    row = AccessToken(
        contact_id=contact.id,
        token_hash=hash_token(token),
        created_at=now,  # type: ignore[arg-type]
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return IssuedToken(token=token, row=row, contact=contact, org=org)


def list_tokens(
    session: Session, email: str | None = None
) -> list[tuple[AccessToken, Contact, Organisation]]:
    query = (
        select(AccessToken, Contact, Organisation)
        .join(Contact, Contact.id == AccessToken.contact_id)
        .join(Organisation, Organisation.id == Contact.org_id)
        .order_by(AccessToken.id)
    )
    if email:
        query = query.where(func.lower(Contact.email) == email.strip().lower())
    return list(session.exec(query).all())


def revoke_tokens(
    session: Session, now: datetime, *, token_id: int | None = None, email: str | None = None
) -> list[AccessToken]:
    """Revoke one token by id, or every live token of a contact's e-mail."""
    if token_id is None and not email:
        raise AuthError("请给出令牌编号或 --email")
    rows: list[AccessToken] = []
    if token_id is not None:
        row = session.get(AccessToken, token_id)
        if row is None:
            raise AuthError(f"没有编号为 {token_id} 的令牌（shenbao token list 查看）")
        rows = [row]
    else:
        rows = [t for t, _c, _o in list_tokens(session, email)]
        if not rows:
            raise AuthError(f"邮箱 {email} 没有令牌")
    revoked = []
    for row in rows:
        if row.revoked_at is None:
            row.revoked_at = now
            row.session_epoch += 1
            session.add(row)
            revoked.append(row)
    return revoked


def end_sessions(session: Session, token_id: int, epoch: int) -> None:
    """Sign out everywhere this token signed in: every session cookie made from it stops working.

    Only a current cookie can do it (``epoch``), so replaying an old one cannot sign out the
    person's later sessions.
    """
    session.execute(
        update(AccessToken)
        .where(AccessToken.id == token_id, AccessToken.session_epoch == epoch)  # type: ignore[arg-type]
        .values(session_epoch=AccessToken.session_epoch + 1)
    )


# -- resolving a request ---------------------------------------------------------------------------


def _viewer_from(db: Database, now: datetime, where: object, via: str) -> Viewer | None:
    with db.read() as session:
        row = session.exec(
            select(AccessToken, Contact, Organisation)
            .join(Contact, Contact.id == AccessToken.contact_id)
            .join(Organisation, Organisation.id == Contact.org_id)
            .where(where)  # type: ignore[arg-type]
        ).first()
    if row is None:
        return None
    token, contact, org = row
    if not token.usable_at(now) or not contact.active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_GRANULARITY:
        with db.write() as session:
            fresh = session.get(AccessToken, token.id)
            if fresh is not None:
                fresh.last_used_at = now
                session.add(fresh)
    held: list[str] = []
    if not contact.programs:  # asked only then: this runs on every request
        # A person entered without a program works on every program this database holds.
        with db.read() as session:
            held = list(session.exec(select(Campaign.program).distinct()).all())
    return Viewer(
        contact_id=contact.id,
        name=contact.name,
        email=contact.email,  # type: ignore[arg-type]
        mobile=contact.mobile,
        programs=",".join(sorted(contact.program_ids(held))),
        org=org,
        token_id=token.id,  # type: ignore[arg-type]
        expires_at=token.expires_at,
        via=via,
        session_epoch=token.session_epoch,
    )


def viewer_for_token(db: Database, token: str, now: datetime, *, via: str = "bearer") -> Viewer | None:
    token = token.strip()
    if not token:
        return None
    return _viewer_from(db, now, AccessToken.token_hash == hash_token(token), via)


def viewer_for_token_id(db: Database, token_id: int, now: datetime, *, via: str = "session") -> Viewer | None:
    return _viewer_from(db, now, AccessToken.id == token_id, via)


def viewer_for_session(db: Database, token_id: int, epoch: int, now: datetime) -> Viewer | None:
    """The viewer a session cookie names, unless its token has signed out since the cookie was made."""
    viewer = _viewer_from(db, now, AccessToken.id == token_id, "session")
    return viewer if viewer is not None and viewer.session_epoch == epoch else None


# -- CSRF and feeds -----------------------------------------------------------------------------


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


def _feed_signer(secret: str) -> Signer:
    return Signer(secret, salt="shenbao-calendar-feed", digest_method=hashlib.sha256)


def feed_id(secret: str, token_id: int) -> str:
    return _feed_signer(secret).sign(str(token_id).encode()).decode()


def token_id_from_feed(secret: str, value: str) -> int | None:
    try:
        raw = _feed_signer(secret).unsign(value.encode())
    except BadSignature:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
