"""Access reviews, dormant accounts and the security report."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.config import get_settings
from cims.security import care, reviews, signin
from cims.security.models import AccessReview, AccessReviewItem, User
from cims.security.rbac import AccessDenied


def test_review_certifies_or_revokes_each_account(session: Session) -> None:
    boss = factories.actor(session, "admin")
    keep = factories.user(session, "doctor")
    drop = factories.user(session, "finance")
    session_id, _ = signin.start_session(session=session, user_id=drop.id)
    review = reviews.start_access_review(session=session, actor=boss)
    items = {
        i.user_id: i
        for i in session.scalars(
            select(AccessReviewItem).where(AccessReviewItem.review_id == review.id)
        )
    }
    assert items[keep.id].roles_snapshot == ["doctor"] and items[keep.id].mfa_enrolled
    reviews.decide(session=session, actor=boss, item_id=items[keep.id].id, certify=True)
    reviews.decide(session=session, actor=boss, item_id=items[drop.id].id, certify=False)
    assert keep.is_active and not drop.is_active
    assert not signin.touch_session(session=session, session_id=session_id)
    for item in items.values():
        if item.decision == "pending":
            reviews.decide(session=session, actor=boss, item_id=item.id, certify=True)
    assert session.get(AccessReview, review.id).completed_at is not None  # type: ignore[union-attr]


def test_only_admins_run_reviews_and_reports(session: Session) -> None:
    for role in ("doctor", "nurse", "registrar", "finance", "manager", "data_staff", "patient"):
        actor = factories.actor(session, role)
        with pytest.raises(AccessDenied):
            reviews.start_access_review(session=session, actor=actor)
        with pytest.raises(AccessDenied):
            reviews.security_report(
                session=session, actor=actor, start=utcnow() - dt.timedelta(days=1), end=utcnow()
            )


def test_dormant_accounts_are_disabled(session: Session) -> None:
    old = factories.user(session, "nurse")
    recent = factories.user(session, "nurse")
    now = utcnow()
    old.last_login_at = now - dt.timedelta(days=120)
    recent.last_login_at = now - dt.timedelta(days=5)
    session.flush()
    disabled = reviews.disable_dormant(session, now=now)
    assert old.username in disabled and recent.username not in disabled
    assert not old.is_active and old.disabled_reason == "dormant for 90 days"
    assert (
        signin.check_password(
            session=session, username=old.username, password=factories.PASSWORD
        ).error
        == "signin.invalid"
    )


def test_security_report_counts_what_happened(session: Session) -> None:
    start = utcnow() - dt.timedelta(minutes=1)
    boss = factories.actor(session, "admin")
    victim = factories.user(session, "registrar")
    for _ in range(get_settings().lockout_failures):
        signin.check_password(session=session, username=victim.username, password="bad-password!!")
    no_mfa = factories.user(session, "nurse", totp_secret=None)
    both = factories.user(session, "admin", username="admindoc")
    from cims.security.models import Role, UserRole

    doctor_role = session.scalar(select(Role).where(Role.code == "doctor"))
    assert doctor_role is not None
    session.add(UserRole(user_id=both.id, role_id=doctor_role.id))
    endo = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(endo.id,))
    patient = factories.patient(session)
    care.open_break_glass(
        session=session, actor=doctor, patient_id=patient.id, reason="unconscious, no relatives"
    )
    from cims.security import admin

    admin.unlock_account(session=session, actor=boss, user_id=victim.id)
    session.flush()
    report = reviews.security_report(session=session, actor=boss, start=start, end=utcnow())
    assert report.failed_sign_ins >= 5
    assert (victim.username, 5) in report.failed_by_username
    assert report.lockouts >= 1
    assert report.break_glass_uses >= 1 and report.break_glass_unreviewed >= 1
    assert any(action == "admin.unlock" for _, _, action in report.privilege_changes)
    assert no_mfa.username in report.staff_without_mfa
    assert ("admindoc", ["admin", "doctor"]) in report.over_privileged
    assert session.scalar(select(User.id).where(User.username == "admindoc")) == both.id
