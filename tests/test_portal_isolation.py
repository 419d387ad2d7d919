"""A patient can never reach another patient's bills, payments, receipts or bookings,
whatever id they try (every id in a seeded hospital)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.appointments.booking import BookingRefused, cancel_my_appointment
from cims.appointments.models import Appointment
from cims.billing.catalogue import BillingRefused
from cims.billing.models import Invoice, Payment
from cims.billing.online import online_payment_status, start_online_payment
from cims.billing.printing import print_my_invoice, print_my_receipt
from cims.billing.sandbox import SandboxProvider
from cims.security.accounts import build_actor
from cims.security.models import User
from cims.security.rbac import Actor


@pytest.fixture(scope="module")
def hospital(
    seeded_app_database: Callable[..., AbstractContextManager[str]],
) -> Iterator[tuple[Session, Actor]]:
    with seeded_app_database("portal_isolation", patients=200, seed=23) as url:
        engine = create_engine(url)
        with Session(engine) as session:
            user = session.scalar(select(User).where(User.username == "patient"))
            assert user is not None and user.patient_id is not None
            yield session, build_actor(session, user)
            session.rollback()
        engine.dispose()


def _others(session: Session, model: type, patient_id: int) -> list[int]:
    return list(session.scalars(select(model.id).where(model.patient_id != patient_id)))  # type: ignore[attr-defined]


def test_every_other_patients_invoice_and_payment_is_out_of_reach(
    hospital: tuple[Session, Actor],
) -> None:
    session, me = hospital
    assert me.patient_id is not None
    invoices = _others(session, Invoice, me.patient_id)
    payments = _others(session, Payment, me.patient_id)
    assert invoices and payments
    provider = SandboxProvider(Path(tempfile.mkdtemp()) / "ledger.sqlite3", lambda b, s: None)
    for invoice_id in invoices:
        with pytest.raises(BillingRefused):
            print_my_invoice(session=session, actor=me, invoice_id=invoice_id, language="en")
        with pytest.raises(BillingRefused):
            start_online_payment(
                session=session, actor=me, invoice_id=invoice_id, method="wechat",
                provider=provider,
            )  # fmt: skip
    for payment_id in payments:
        with pytest.raises(BillingRefused):
            print_my_receipt(session=session, actor=me, payment_id=payment_id, language="en")
        with pytest.raises(BillingRefused):
            online_payment_status(session=session, actor=me, payment_id=payment_id)


def test_every_other_patients_booking_is_out_of_reach(hospital: tuple[Session, Actor]) -> None:
    session, me = hospital
    assert me.patient_id is not None
    bookings = _others(session, Appointment, me.patient_id)
    assert bookings
    for appointment_id in bookings:
        with pytest.raises(BookingRefused):
            cancel_my_appointment(
                session=session, actor=me, appointment_id=appointment_id, reason=""
            )
