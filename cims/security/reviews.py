"""Periodic access reviews, dormant-account disabling and the security report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.security import audit
from cims.security.models import (
    AccessReview,
    AccessReviewItem,
    AuditEvent,
    BreakGlassGrant,
    Role,
    SignInAttempt,
    User,
    UserRole,
)
from cims.security.rbac import Actor, Privilege, requires
from cims.security.signin import revoke_user_sessions
from cims.text_guard import InvalidText
from cims.text_limits import MAX_NOTE, TOO_LONG_KEY, too_long

DORMANT_DAYS = 90
# Holding one of these with a clinical or finance role is more than one person needs.
_POWERFUL = {"admin"}
_OPERATIONAL = {"doctor", "nurse", "registrar", "finance"}
# Admin actions that only look, not change (left out of "privilege changes").
_VIEW_ACTIONS = ("admin.list_accounts", "roles.view_matrix", "access_review.view")


def _roles_by_user(session: Session) -> dict[int, list[str]]:
    roles: dict[int, list[str]] = {}
    for user_id, code in session.execute(
        select(UserRole.user_id, Role.code).join(Role, Role.id == UserRole.role_id)
    ):
        roles.setdefault(user_id, []).append(code)
    return roles


@requires(Privilege.MANAGE_USERS)
def start_access_review(*, session: Session, actor: Actor, note: str = "") -> AccessReview:
    """Snapshot every active account (roles, last sign-in, MFA) for certification."""
    if too_long(note, MAX_NOTE):
        raise InvalidText([TOO_LONG_KEY])
    review = AccessReview(started_by_id=actor.user_id, note=note.strip() or None)
    session.add(review)
    session.flush()
    roles = _roles_by_user(session)
    for user in session.scalars(select(User).where(User.is_active).order_by(User.username)):
        session.add(
            AccessReviewItem(
                review_id=review.id,
                user_id=user.id,
                roles_snapshot=sorted(roles.get(user.id, [])),
                last_login_at=user.last_login_at,
                mfa_enrolled=user.mfa_enrolled_at is not None,
            )
        )
    session.flush()
    audit.record(
        session, actor, "access_review.start", object_type="access_review", object_id=review.id
    )
    return review


@requires(Privilege.MANAGE_USERS)
def decide(*, session: Session, actor: Actor, item_id: int, certify: bool, note: str = "") -> None:
    """Certify an account's access, or revoke it (the account is disabled at once)."""
    item = session.get(AccessReviewItem, item_id)
    if item is None:
        raise LookupError(item_id)
    item.decision = "certify" if certify else "revoke"
    item.decided_by_id = actor.user_id
    item.decided_at = utcnow()
    item.note = note.strip() or None
    if not certify:
        user = session.get(User, item.user_id)
        if user is not None and user.id != actor.user_id:
            user.is_active = False
            user.disabled_at = utcnow()
            user.disabled_reason = "access review"
            revoke_user_sessions(session, user.id, "access_review")
    audit.record(
        session,
        actor,
        f"access_review.{item.decision}",
        object_type="user",
        object_id=item.user_id,
        detail={"review_id": item.review_id},
    )
    pending = session.scalar(
        select(func.count(AccessReviewItem.id)).where(
            AccessReviewItem.review_id == item.review_id, AccessReviewItem.decision == "pending"
        )
    )
    if not pending:
        review = session.get(AccessReview, item.review_id)
        if review is not None and review.completed_at is None:
            review.completed_at = utcnow()


def disable_dormant(session: Session, *, now: dt.datetime, days: int = DORMANT_DAYS) -> list[str]:
    """Disable accounts with no sign-in for ``days`` (scheduled job); returns usernames."""
    cutoff = now - dt.timedelta(days=days)
    dormant = session.scalars(
        select(User).where(
            User.is_active,
            or_(
                User.last_login_at < cutoff,
                User.last_login_at.is_(None) & (User.created_at < cutoff),
            ),
        )
    ).all()
    for user in dormant:
        user.is_active = False
        user.disabled_at = now
        user.disabled_reason = f"dormant for {days} days"
        revoke_user_sessions(session, user.id, "dormant")
        audit.record(
            session,
            None,
            "admin.disable_dormant",
            object_type="user",
            object_id=user.id,
            username="system",
        )
    return [u.username for u in dormant]


@dataclass
class SecurityReport:
    """What the quarterly security audit asks for, for one period."""

    start: dt.datetime
    end: dt.datetime
    failed_sign_ins: int
    failed_by_username: list[tuple[str, int]]
    lockouts: int
    break_glass_uses: int
    break_glass_unreviewed: int
    privilege_changes: list[tuple[dt.datetime, str, str]]
    dormant_accounts: list[str]
    staff_without_mfa: list[str]
    over_privileged: list[tuple[str, list[str]]]
    denied_actions: int = 0
    notes: list[str] = field(default_factory=list)


@requires(Privilege.VIEW_AUDIT)
def security_report(
    *, session: Session, actor: Actor, start: dt.datetime, end: dt.datetime
) -> SecurityReport:
    """Failed sign-ins, lockouts, break-glass, privilege changes and risky accounts."""
    in_period = (SignInAttempt.attempted_at >= start, SignInAttempt.attempted_at < end)
    failed = list(
        session.execute(
            select(SignInAttempt.username, func.count())
            .where(*in_period, SignInAttempt.success.is_(False))
            .group_by(SignInAttempt.username)
            .order_by(func.count().desc(), SignInAttempt.username)
        ).all()
    )
    audit_period = (AuditEvent.occurred_at >= start, AuditEvent.occurred_at < end)
    changes = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.actor_username, AuditEvent.action)
        .where(
            *audit_period,
            or_(
                AuditEvent.action.like("admin.%"),
                AuditEvent.action.like("roles.%"),
                AuditEvent.action.like("access_review.%"),
            ),
            AuditEvent.action.not_in(_VIEW_ACTIONS),
        )
        .order_by(AuditEvent.occurred_at)
    ).all()
    roles = _roles_by_user(session)
    users = session.scalars(select(User).order_by(User.username)).all()
    cutoff = end - dt.timedelta(days=DORMANT_DAYS)
    report = SecurityReport(
        start=start,
        end=end,
        failed_sign_ins=sum(n for _, n in failed),
        failed_by_username=[(u, n) for u, n in failed[:20]],
        lockouts=session.scalar(
            select(func.count(AuditEvent.id)).where(
                *audit_period, AuditEvent.action == "auth.locked"
            )
        )
        or 0,
        break_glass_uses=session.scalar(
            select(func.count(BreakGlassGrant.id)).where(
                BreakGlassGrant.granted_at >= start, BreakGlassGrant.granted_at < end
            )
        )
        or 0,
        break_glass_unreviewed=session.scalar(
            select(func.count(BreakGlassGrant.id)).where(BreakGlassGrant.reviewed_at.is_(None))
        )
        or 0,
        privilege_changes=[(at, who or "system", action) for at, who, action in changes],
        dormant_accounts=[
            u.username for u in users if u.is_active and (u.last_login_at or u.created_at) < cutoff
        ],
        staff_without_mfa=[
            u.username
            for u in users
            if u.kind == "staff" and u.is_active and u.mfa_enrolled_at is None
        ],
        over_privileged=[
            (u.username, sorted(roles.get(u.id, [])))
            for u in users
            if set(roles.get(u.id, [])) & _POWERFUL and set(roles.get(u.id, [])) & _OPERATIONAL
        ],
        denied_actions=session.scalar(
            select(func.count(AuditEvent.id)).where(*audit_period, AuditEvent.outcome == "denied")
        )
        or 0,
    )
    audit.record(
        session,
        actor,
        "audit.security_report",
        object_type="security_report",
        detail={"start": start.isoformat(), "end": end.isoformat()},
    )
    return report


@requires(Privilege.MANAGE_USERS)
def open_review(
    *, session: Session, actor: Actor
) -> tuple[AccessReview | None, list[tuple[AccessReviewItem, str]]]:
    """The review in progress (if any) and its accounts still awaiting a decision."""
    review = session.scalar(
        select(AccessReview).where(AccessReview.completed_at.is_(None)).order_by(AccessReview.id)
    )
    audit.record(
        session,
        actor,
        "access_review.view",
        object_type="access_review",
        object_id=review.id if review else None,
    )
    if review is None:
        return None, []
    items = session.execute(
        select(AccessReviewItem, User.username)
        .join(User, User.id == AccessReviewItem.user_id)
        .where(AccessReviewItem.review_id == review.id, AccessReviewItem.decision == "pending")
        .order_by(User.username)
    ).all()
    return review, [(item, name) for item, name in items]
