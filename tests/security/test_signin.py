"""Sign-in service: password, lockout counted in the database, TOTP, session rows."""

from __future__ import annotations

import datetime as dt
import time

import pyotp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.config import get_settings
from cims.security import signin
from cims.security.models import AuditEvent, AuthSession, SignInAttempt


def test_right_password_then_totp_opens_a_session(session: Session) -> None:
    secret = pyotp.random_base32()
    user = factories.user(session, "doctor", totp_secret=secret)
    result = signin.check_password(
        session=session, username=user.username.upper(), password=factories.PASSWORD
    )
    assert result.error is None and result.user_id == user.id and result.needs_totp
    assert not signin.check_totp(session=session, user_id=user.id, code="000000")
    assert signin.check_totp(session=session, user_id=user.id, code=pyotp.TOTP(secret).now())
    session_id, actor = signin.start_session(session=session, user_id=user.id)
    assert actor.roles == ("doctor",)
    row = session.get(AuthSession, session_id)
    assert row is not None and row.mfa_passed_at is not None
    assert signin.touch_session(session=session, session_id=session_id)
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == user.id)).all()
    assert "auth.sign_in" in actions


def test_wrong_and_unknown_look_the_same(session: Session) -> None:
    user = factories.user(session, "nurse")
    wrong = signin.check_password(
        session=session, username=user.username, password="nope-nope-nope"
    )
    unknown = signin.check_password(session=session, username="nobody-here", password="x" * 12)
    assert wrong == unknown == signin.PasswordResult(user_id=None, error="signin.invalid")
    denied = session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auth.password")
    )
    assert denied == 2


def test_five_failures_lock_the_account_even_with_the_right_password(session: Session) -> None:
    user = factories.user(session, "registrar")
    for _ in range(get_settings().lockout_failures):
        signin.check_password(session=session, username=user.username, password="wrong-password!")
    assert user.locked_until is not None and user.locked_until > utcnow()
    result = signin.check_password(
        session=session, username=user.username, password=factories.PASSWORD
    )
    assert result.error == "signin.locked"
    failures = session.scalar(
        select(func.count())
        .select_from(SignInAttempt)
        .where(SignInAttempt.user_id == user.id, SignInAttempt.success.is_(False))
    )
    assert failures == get_settings().lockout_failures + 1


def test_staff_without_totp_must_enrol_first(session: Session) -> None:
    user = factories.user(session, "finance", totp_secret=None)
    result = signin.check_password(
        session=session, username=user.username, password=factories.PASSWORD
    )
    assert result.needs_enrolment and not result.needs_totp
    secret = pyotp.random_base32()
    assert not signin.enrol_totp(session=session, user_id=user.id, secret=secret, code="123456")
    assert signin.enrol_totp(
        session=session, user_id=user.id, secret=secret, code=pyotp.TOTP(secret).now()
    )
    assert user.mfa_enrolled_at is not None
    # The code that enrolled cannot sign in again; the next one can.
    assert not signin.check_totp(session=session, user_id=user.id, code=pyotp.TOTP(secret).now())
    upcoming = pyotp.TOTP(secret).at(time.time() + 30)
    assert signin.check_totp(session=session, user_id=user.id, code=upcoming)


def test_patients_sign_in_with_password_only(session: Session) -> None:
    person = factories.patient(session)
    user = factories.user(session, "patient", patient_id=person.id)
    result = signin.check_password(
        session=session, username=user.username, password=factories.PASSWORD
    )
    assert result.user_id == user.id and not result.needs_totp and not result.needs_enrolment


def test_idle_and_revoked_sessions_are_refused(session: Session) -> None:
    user = factories.user(session, "doctor")
    session_id, _ = signin.start_session(session=session, user_id=user.id)
    row = session.get(AuthSession, session_id)
    assert row is not None
    row.last_seen_at = utcnow() - dt.timedelta(hours=1)
    session.flush()
    assert not signin.touch_session(session=session, session_id=session_id)
    other_id, _ = signin.start_session(session=session, user_id=user.id)
    signin.end_session(session=session, session_id=other_id)
    assert not signin.touch_session(session=session, session_id=other_id)


def test_a_totp_code_works_once(session: Session) -> None:
    from cims.security.mfa import totp_code

    user = factories.user(session, "doctor", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    code = totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert signin.check_totp(session=session, user_id=user.id, code=code)
    # Someone who saw the code over the shoulder cannot use it again, even within its 30 s.
    assert not signin.check_totp(session=session, user_id=user.id, code=code)


def test_patients_may_turn_two_step_sign_in_on_and_off(session: Session) -> None:
    from cims.security.mfa import totp_code

    patient = factories.user(
        session, "patient", patient_id=factories.patient(session).id, totp_secret=None
    )
    before = signin.check_password(
        session=session, username=patient.username, password=factories.PASSWORD
    )
    assert not before.needs_totp and not before.needs_enrolment
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
    assert signin.enrol_totp(
        session=session, user_id=patient.id, secret=secret, code=totp_code(secret)
    )
    after = signin.check_password(
        session=session, username=patient.username, password=factories.PASSWORD
    )
    assert after.needs_totp
    assert not signin.turn_off_own_totp(session=session, user_id=patient.id, password="wrong-one-x")
    assert signin.turn_off_own_totp(
        session=session, user_id=patient.id, password=factories.PASSWORD
    )
    nurse = factories.user(session, "nurse")
    assert not signin.turn_off_own_totp(
        session=session, user_id=nurse.id, password=factories.PASSWORD
    )  # mandatory for staff
