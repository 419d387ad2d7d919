"""A small hospital for hostile cases: actors with privileges and rows they may touch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.billing.charges import post_charge
from cims.billing.payments import take_payment
from cims.records.models import Encounter
from cims.records.notes import sign_note, write_note
from cims.security.rbac import Actor


@dataclass(frozen=True)
class World:
    """Everyone and everything a hostile case may need (flushed, rolled back with the test)."""

    doctor: Actor
    nurse: Actor
    registrar: Actor
    finance: Actor
    approver: Actor
    admin: Actor
    analyst: Actor
    portal: Actor
    department_id: int
    patient_id: int  # in the doctor's care, the portal user's own record
    encounter_id: int  # open, attended by the doctor
    closed_encounter_id: int  # finished visit the portal user may rate
    signed_note_id: int
    invoice_id: int
    payment_id: int
    charge_id: int
    slot_id: int


def build_world(session: Session) -> World:
    """Create the actors and rows once per test."""
    department = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(department.id,))
    patient = factories.patient(session, insurance_type="self_pay")
    portal = factories.actor(session, "patient", patient_id=patient.id)
    encounter = Encounter(
        patient_id=patient.id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=doctor.user_id,
        started_at=utcnow(),
        chief_complaint="headache",
        status="open",
    )
    closed = Encounter(
        patient_id=patient.id,
        encounter_type="outpatient",
        department_id=department.id,
        attending_id=doctor.user_id,
        started_at=utcnow() - dt.timedelta(hours=3),
        ended_at=utcnow() - dt.timedelta(hours=2),
        status="closed",
    )
    session.add_all([encounter, closed])
    session.flush()
    note = write_note(
        session=session,
        actor=doctor,
        patient_id=patient.id,
        encounter_id=encounter.id,
        title="门诊病历",
        assessment="2型糖尿病",
    )
    sign_note(session=session, actor=doctor, note_id=note.id)
    finance = factories.actor(session, "finance")
    invoice_id = factories.issued_invoice(session, amount="100.00", patient_id=patient.id)
    payment = take_payment(
        session=session,
        actor=finance,
        invoice_id=invoice_id,
        amount=Decimal("100.00"),
        method="cash",
        idempotency_key="hostile-world-payment",
    )
    factories.price_item(session, "HOSTILE-ITEM", unit_price="12.00")
    charge = post_charge(
        session=session,
        actor=finance,
        patient_id=patient.id,
        encounter_id=None,
        price_code="HOSTILE-ITEM",
        quantity=Decimal("1"),
        source_type="manual",
        source_id=None,
        service_date=dt.date.today(),
    )
    return World(
        doctor=doctor,
        nurse=factories.actor(session, "nurse", departments=(department.id,)),
        registrar=factories.actor(session, "registrar"),
        finance=finance,
        approver=factories.actor(session, "finance"),
        admin=factories.actor(session, "admin"),
        analyst=factories.actor(session, "data_staff"),
        portal=portal,
        department_id=department.id,
        patient_id=patient.id,
        encounter_id=encounter.id,
        closed_encounter_id=closed.id,
        signed_note_id=note.id,
        invoice_id=invoice_id,
        payment_id=payment.id,
        charge_id=charge.id,
        slot_id=factories.future_slot(session, doctor_id=doctor.user_id).id,
    )
