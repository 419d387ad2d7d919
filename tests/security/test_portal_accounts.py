"""Patients open their own portal account and reset a forgotten password by a message code."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import factories
from cims.engagement.models import OutboxMessage
from cims.patients.resident_id import check_digit
from cims.patients.schemas import PatientInput
from cims.patients.service import register_patient
from cims.security import portal_accounts as portal
from cims.security import signin
from cims.security.models import AuthSession, User

MOBILE = "13912345601"


def _patient(session: Session) -> tuple[int, str, str]:
    first17 = "110101" + "19850312" + "453"
    national_id = first17 + check_digit(first17)
    view = register_patient(
        session=session,
        actor=factories.actor(session, "registrar"),
        data=PatientInput(
            family_name="林",
            given_name="小雨",
            sex="M",
            birth_date=dt.date(1985, 3, 12),
            national_id=national_id,
            mobile=MOBILE,
            insurance_type="self_pay",
        ),
        confirm_not_duplicate=True,
        today=dt.date(2026, 11, 26),
    )
    return view.id, view.mrn, national_id


def _code(session: Session, user_id: int) -> str:
    message = session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.recipient == f"user:{user_id}")
        .order_by(OutboxMessage.id.desc())
    )
    assert message is not None
    return str(message.params["code"])


def test_a_patient_opens_an_account_with_mrn_id_and_a_code(session: Session) -> None:
    patient_id, mrn, national_id = _patient(session)
    ticket = portal.start_signup(session=session, mrn=mrn, id_or_phone=national_id)
    assert ticket is not None
    pending = session.get(User, ticket.user_id)
    assert pending is not None and not pending.is_active
    with pytest.raises(portal.PortalAccountRefused) as wrong:
        portal.finish_signup(
            session=session, ticket=ticket, code="000000", username="linxiaoyu",
            password="Rainy-Season-2026",
        )  # fmt: skip
    assert wrong.value.problems == ["portal_signup.bad_code"]
    user = portal.finish_signup(
        session=session,
        ticket=ticket,
        code=_code(session, ticket.user_id),
        username="linxiaoyu",
        password="Rainy-Season-2026",
    )
    assert user.is_active and user.patient_id == patient_id and user.kind == "patient"
    result = signin.check_password(
        session=session, username="linxiaoyu", password="Rainy-Season-2026"
    )
    assert result.error is None and result.user_id == user.id
    # A second sign-up for the same patient is refused (silently: the form never tells).
    assert portal.start_signup(session=session, mrn=mrn, id_or_phone=MOBILE) is None


def test_wrong_details_send_nothing(session: Session) -> None:
    _, mrn, _ = _patient(session)
    before = session.scalars(select(OutboxMessage.id)).all()
    assert portal.start_signup(session=session, mrn=mrn, id_or_phone="13900000000") is None
    assert portal.start_signup(session=session, mrn="0000000000", id_or_phone=MOBILE) is None
    assert session.scalars(select(OutboxMessage.id)).all() == before


def test_a_forgotten_password_is_reset_and_old_sessions_end(session: Session) -> None:
    patient_id, mrn, _ = _patient(session)
    user = factories.user(session, "patient", patient_id=patient_id)
    session_id, _ = signin.start_session(session=session, user_id=user.id)
    assert portal.start_password_reset(session=session, username=user.username, mrn="1") is None
    ticket = portal.start_password_reset(session=session, username=user.username, mrn=mrn)
    assert ticket is not None
    code = _code(session, user.id)
    with pytest.raises(portal.PortalAccountRefused) as weak:
        portal.finish_password_reset(session=session, ticket=ticket, code=code, password="short")
    assert "portal_signup.bad_code" not in weak.value.problems
    # The weak attempt did not spend the code.
    portal.finish_password_reset(
        session=session, ticket=ticket, code=code, password="Monsoon-Morning-2026"
    )
    assert (
        signin.check_password(
            session=session, username=user.username, password="Monsoon-Morning-2026"
        ).user_id
        == user.id
    )
    assert not signin.touch_session(session=session, session_id=session_id)  # signed out
    with pytest.raises(portal.PortalAccountRefused) as reused:
        portal.finish_password_reset(
            session=session, ticket=ticket, code=code, password="Another-Monsoon-2027"
        )
    assert reused.value.problems == ["portal_signup.bad_code"]  # a code works once


def test_staff_cannot_reset_through_the_patient_form(session: Session) -> None:
    nurse = factories.user(session, "nurse")
    assert portal.start_password_reset(session=session, username=nurse.username, mrn="") is None
    assert session.scalar(select(AuthSession.id).where(AuthSession.user_id == nurse.id)) is None
