"""Account administration, recovery codes, password change and the lockdown switch."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.config import get_settings
from cims.security import admin, incidents, signin
from cims.security.models import AuditEvent, AuthSession, Incident, IncidentEvent
from cims.security.rbac import AccessDenied


def _lock(session: Session, username: str) -> None:
    for _ in range(get_settings().lockout_failures):
        signin.check_password(session=session, username=username, password="wrong-password!")


def test_admin_unlocks_and_the_count_starts_again(session: Session) -> None:
    boss = factories.actor(session, "admin")
    user = factories.user(session, "nurse")
    _lock(session, user.username)
    assert (
        signin.check_password(
            session=session, username=user.username, password=factories.PASSWORD
        ).error
        == "signin.locked"
    )
    admin.unlock_account(session=session, actor=boss, user_id=user.id)
    assert (
        signin.check_password(
            session=session, username=user.username, password=factories.PASSWORD
        ).error
        is None
    )
    # One more failure after the unlock does not lock again at once.
    signin.check_password(session=session, username=user.username, password="wrong-password!")
    assert user.locked_until is None


def test_only_admins_manage_accounts(session: Session) -> None:
    user = factories.user(session, "nurse")
    for role in ("doctor", "nurse", "registrar", "finance", "manager", "data_staff"):
        actor = factories.actor(session, role)
        for action in (admin.unlock_account, admin.reset_mfa, admin.sign_out_everywhere):
            with pytest.raises(AccessDenied):
                action(session=session, actor=actor, user_id=user.id)


def test_mfa_reset_forces_enrolment_and_ends_sessions(session: Session) -> None:
    boss = factories.actor(session, "admin")
    user = factories.user(session, "doctor")
    session_id, _ = signin.start_session(session=session, user_id=user.id)
    admin.reset_mfa(session=session, actor=boss, user_id=user.id)
    assert not signin.touch_session(session=session, session_id=session_id)
    result = signin.check_password(
        session=session, username=user.username, password=factories.PASSWORD
    )
    assert result.needs_enrolment
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.actor_id == boss.user_id)
    ).all()
    assert "admin.mfa_reset" in actions


def test_recovery_code_works_exactly_once(session: Session) -> None:
    user = factories.user(session, "finance")
    codes = signin.issue_recovery_codes(session=session, user_id=user.id)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert signin.use_recovery_code(session=session, user_id=user.id, code=codes[0].upper())
    assert not signin.use_recovery_code(session=session, user_id=user.id, code=codes[0])
    fresh = signin.issue_recovery_codes(session=session, user_id=user.id)
    assert not signin.use_recovery_code(session=session, user_id=user.id, code=codes[1])
    assert signin.use_recovery_code(session=session, user_id=user.id, code=fresh[1])


def test_password_change_checks_policy_and_revokes_sessions(session: Session) -> None:
    user = factories.user(session, "registrar")
    session_id, _ = signin.start_session(session=session, user_id=user.id)
    assert signin.change_password(
        session=session, user_id=user.id, current="wrong", new="Another-Good-Pass-9"
    ) == ["password.current_wrong"]
    assert "password.too_short" in signin.change_password(
        session=session, user_id=user.id, current=factories.PASSWORD, new="short"
    )
    long_chinese = "我的密码是一句很长的中文短语而且足够安全"
    assert (
        signin.change_password(
            session=session, user_id=user.id, current=factories.PASSWORD, new=long_chinese
        )
        == []
    )
    assert not signin.touch_session(session=session, session_id=session_id)
    result = signin.check_password(session=session, username=user.username, password=long_chinese)
    assert result.error is None


def test_lockdown_revokes_everything_and_blocks_exports(session: Session) -> None:
    boss = factories.actor(session, "admin")
    secret = pyotp.random_base32()
    user = factories.user(session, "doctor", totp_secret=secret)
    live = [signin.start_session(session=session, user_id=user.id)[0] for _ in range(3)]
    incidents.require_no_lockdown(session)
    with pytest.raises(AccessDenied):
        incidents.start_lockdown(
            session=session, actor=factories.actor(session, "manager"), reason="x"
        )
    incident = incidents.start_lockdown(session=session, actor=boss, reason="suspected breach")
    assert all(not signin.touch_session(session=session, session_id=s) for s in live)
    with pytest.raises(incidents.LockdownActive):
        incidents.require_no_lockdown(session)
    assert session.scalars(select(AuthSession).where(AuthSession.revoked_at.is_(None))).all() == []
    incidents.lift_lockdown(session=session, actor=boss, note="contained")
    incidents.require_no_lockdown(session)
    kinds = session.scalars(
        select(IncidentEvent.kind).where(IncidentEvent.incident_id == incident.id)
    ).all()
    assert kinds == ["lockdown_started", "lockdown_lifted"]
    stored = session.get(Incident, incident.id)
    assert stored is not None and stored.status == "contained" and stored.lockdown


def test_a_refused_call_is_audited_even_though_the_action_rolls_back(session: Session) -> None:
    from sqlalchemy import func

    nurse = factories.actor(session, "nurse")
    target = factories.user(session, "doctor")
    session.flush()
    with pytest.raises(AccessDenied):
        admin.unlock_account(session=session, actor=nurse, user_id=target.id)
    # Written in its own transaction: visible from another connection right away.
    bind = session.get_bind()
    with Session(bind.engine) as other:
        denied = other.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.actor_username == nurse.username,
                AuditEvent.action == "security.admin.unlock_account",
                AuditEvent.outcome == "denied",
            )
        )
    assert denied == 1
