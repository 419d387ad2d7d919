"""One-time sign-in codes over the message channel (default adapter: the outbox)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.engagement.models import OutboxMessage
from cims.security import otp_channel, signin
from cims.security.models import OneTimeCode, SignInAttempt


def _sent_code(session: Session, user_id: int) -> str:
    message = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.recipient == f"user:{user_id}")
        .order_by(OutboxMessage.id.desc())
    ).first()
    assert message is not None and message.channel == "sms"
    return str(message.params["code"])


def test_code_goes_to_the_outbox_is_stored_hashed_and_works_once(session: Session) -> None:
    user = factories.user(session, "nurse")
    assert otp_channel.send_code(session=session, user_id=user.id)
    code = _sent_code(session, user.id)
    stored = session.scalars(select(OneTimeCode).where(OneTimeCode.user_id == user.id)).one()
    assert code not in stored.code_hash
    assert not signin.check_message_code(
        session=session, user_id=user.id, code="000000" if code != "000000" else "111111"
    )
    assert signin.check_message_code(session=session, user_id=user.id, code=code)
    assert not signin.check_message_code(session=session, user_id=user.id, code=code)
    stages = session.scalars(
        select(SignInAttempt.stage).where(SignInAttempt.user_id == user.id)
    ).all()
    assert "message" in stages


def test_resend_is_rate_limited_and_codes_expire(session: Session) -> None:
    user = factories.user(session, "registrar")
    assert otp_channel.send_code(session=session, user_id=user.id)
    assert not otp_channel.send_code(session=session, user_id=user.id)  # within a minute
    row = session.scalars(select(OneTimeCode).where(OneTimeCode.user_id == user.id)).one()
    code = _sent_code(session, user.id)
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    row.created_at = utcnow() - dt.timedelta(minutes=6)
    session.flush()
    assert not signin.check_message_code(session=session, user_id=user.id, code=code)
    assert otp_channel.send_code(session=session, user_id=user.id)


def test_wrong_guesses_spend_the_code(session: Session) -> None:
    user = factories.user(session, "finance")
    otp_channel.send_code(session=session, user_id=user.id)
    code = _sent_code(session, user.id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(otp_channel.MAX_ATTEMPTS):
        assert not otp_channel.check_code(session=session, user_id=user.id, code=wrong)
    assert not otp_channel.check_code(session=session, user_id=user.id, code=code)


def test_a_message_code_never_replaces_enrolment(session: Session) -> None:
    user = factories.user(session, "doctor", totp_secret=None)
    otp_channel.send_code(session=session, user_id=user.id)
    code = _sent_code(session, user.id)
    assert not signin.check_message_code(session=session, user_id=user.id, code=code)
