"""Charges: priced from the catalogue on the service date, split into insurance and patient share.

A clinical source (an order, a prescription, a procedure, a registration) is charged at most
once while its charge is live: checked first, and backed by the partial unique index
``uq_charges_source_live`` whose violation becomes the same refusal. Bed-days are charged
per encounter from the bed assignments: each call posts only the nights not yet charged,
as one row starting on the first uncharged night (compatible with the demo's lump rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.billing.catalogue import BillingRefused, price_on, round_cents
from cims.billing.models import CHARGE_SOURCES, Charge, InsurancePlan
from cims.clock import local_today, to_local
from cims.patients.models import Patient
from cims.records.models import BedAssignment, Encounter, Order, Prescription, Procedure
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires
from cims.text_limits import MAX_REASON, TOO_LONG_KEY, too_long

# Registration fee by the doctor's professional title; emergency visits have their own fee.
TITLE_FEES: Final = {
    "主任医师": "REG-CHIEF",
    "副主任医师": "REG-ASSOC",
    "主治医师": "REG-ATTEND",
    "住院医师": "REG-RES",
}
DEFAULT_FEE: Final = "REG-ATTEND"
EMERGENCY_FEE: Final = "REG-ER"
BED_DAY_CODE: Final = "BED-GEN"
ONE: Final = Decimal("1")


def _local_day(moment: dt.datetime) -> dt.date:
    return (to_local(moment) or moment).date()


def _shares(
    session: Session, patient: Patient, encounter: Encounter | None, category: str, amount: Decimal
) -> Decimal:
    """The insured share of ``amount`` under the patient's plan (0 for excluded categories)."""
    plan = session.scalar(
        select(InsurancePlan).where(InsurancePlan.insurance_type == patient.insurance_type)
    )
    if plan is None or category in (plan.excluded_categories or []):
        return Decimal("0.00")
    inpatient = encounter is not None and encounter.encounter_type == "inpatient"
    rate = plan.inpatient_coverage_rate if inpatient else plan.coverage_rate
    return round_cents(amount * rate)


def _already_charged(
    session: Session, source_type: str, source_id: int | None, service_date: dt.date
) -> bool:
    if source_id is None:
        return False
    query = select(Charge.id).where(
        Charge.source_type == source_type,
        Charge.source_id == source_id,
        Charge.voided.is_(False),
    )
    if source_type == "bed_day":  # one source, one row per first uncharged night
        query = query.where(Charge.service_date == service_date)
    return session.scalar(query.limit(1)) is not None


def _post(
    session: Session,
    actor: Actor,
    *,
    patient_id: int,
    encounter_id: int | None,
    price_code: str,
    quantity: Decimal,
    source_type: str,
    source_id: int | None,
    service_date: dt.date,
) -> Charge:
    """Price, split and insert one charge (no audit row: callers write theirs)."""
    if source_type not in CHARGE_SOURCES:
        raise BillingRefused("billing.source_invalid")
    try:
        qty = Decimal(str(quantity))
    except ArithmeticError as bad:
        raise BillingRefused("billing.quantity_invalid") from bad
    if not qty.is_finite() or qty <= 0 or qty != qty.quantize(Decimal("0.01")):
        raise BillingRefused("billing.quantity_invalid")
    qty = qty.quantize(Decimal("0.01"))
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise BillingRefused("billing.patient_not_live")
    encounter = session.get(Encounter, encounter_id) if encounter_id is not None else None
    if encounter_id is not None and (encounter is None or encounter.patient_id != patient_id):
        raise BillingRefused("billing.encounter_mismatch")
    item = price_on(session=session, code=price_code, day=service_date)
    if _already_charged(session, source_type, source_id, service_date):
        raise BillingRefused("billing.already_charged")
    amount = round_cents(qty * item.unit_price)
    insured = _shares(session, patient, encounter, item.category, amount)
    charge = Charge(
        patient_id=patient_id,
        encounter_id=encounter_id,
        price_item_id=item.id,
        source_type=source_type,
        source_id=source_id,
        service_date=service_date,
        description=f"{item.name_zh} / {item.name_en}",
        quantity=qty,
        unit_price=item.unit_price,
        amount=amount,
        insurance_amount=insured,
        patient_amount=amount - insured,
        posted_at=utcnow(),
        created_by_id=actor.user_id,
    )
    try:
        with session.begin_nested():  # a lost race on the unique index leaves nothing behind
            session.add(charge)
            session.flush()
    except IntegrityError as clash:
        raise BillingRefused("billing.already_charged") from clash
    return charge


@requires(Privilege.POST_CHARGES)
def post_charge(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    encounter_id: int | None,
    price_code: str,
    quantity: Decimal,
    source_type: str,
    source_id: int | None,
    service_date: dt.date,
) -> Charge:
    """Post one charge priced on ``service_date``; a clinical source is chargeable only once."""
    charge = _post(
        session,
        actor,
        patient_id=patient_id,
        encounter_id=encounter_id,
        price_code=price_code,
        quantity=quantity,
        source_type=source_type,
        source_id=source_id,
        service_date=service_date,
    )
    audit.record(
        session,
        actor,
        "billing.post_charge",
        patient_id=patient_id,
        object_type="charge",
        object_id=charge.id,
        detail={"source_type": source_type, "price_code": price_code, "amount": str(charge.amount)},
    )
    return charge


@dataclass
class EncounterCharges:
    """What one posting run did: new charges, and sources with no catalogue price."""

    posted: list[Charge] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    price_code: str
    quantity: Decimal
    source_type: str
    source_id: int | None
    service_date: dt.date


def _stay_nights(session: Session, encounter: Encounter) -> tuple[list[BedAssignment], int]:
    beds = list(
        session.scalars(
            select(BedAssignment)
            .where(BedAssignment.encounter_id == encounter.id, BedAssignment.voided.is_(False))
            .order_by(BedAssignment.start_at)
        )
    )
    if not beds:
        return beds, 0
    first = _local_day(beds[0].start_at)
    ends = [b.end_at for b in beds]
    if encounter.ended_at is not None:
        last = _local_day(encounter.ended_at)
    elif all(end is not None for end in ends):
        last = max(_local_day(end) for end in ends if end is not None)
    else:
        last = local_today()
    return beds, max((last - first).days, 1)


def _bed_days(session: Session, encounter: Encounter) -> list[_Source]:
    beds, nights = _stay_nights(session, encounter)
    if not beds:
        return []
    charged = session.scalar(
        select(func.coalesce(func.sum(Charge.quantity), 0)).where(
            Charge.encounter_id == encounter.id,
            Charge.source_type == "bed_day",
            Charge.voided.is_(False),
        )
    )
    done = int(Decimal(charged or 0))
    if nights <= done:
        return []
    start = _local_day(beds[0].start_at) + dt.timedelta(days=done)
    holder = [b for b in beds if _local_day(b.start_at) <= start][-1]
    return [_Source(BED_DAY_CODE, Decimal(nights - done), "bed_day", holder.id, start)]


def _registration(session: Session, encounter: Encounter) -> list[_Source]:
    if encounter.encounter_type == "inpatient":
        return []
    posted = session.scalar(
        select(Charge.id).where(
            Charge.encounter_id == encounter.id,
            Charge.source_type == "registration",
            Charge.voided.is_(False),
        )
    )
    if posted is not None:
        return []
    day = _local_day(encounter.started_at)
    if encounter.encounter_type == "emergency":
        return [_Source(EMERGENCY_FEE, ONE, "registration", encounter.appointment_id, day)]
    doctor_id = encounter.attending_id
    if encounter.appointment_id is not None:
        appointment = session.get(Appointment, encounter.appointment_id)
        doctor_id = appointment.doctor_id if appointment else doctor_id
    doctor = session.get(User, doctor_id) if doctor_id is not None else None
    code = TITLE_FEES.get((doctor.title or "") if doctor else "", DEFAULT_FEE)
    return [_Source(code, ONE, "registration", encounter.appointment_id, day)]


def _clinical(session: Session, encounter: Encounter, nights: int) -> list[_Source]:
    found: list[_Source] = []
    live = (Order.encounter_id == encounter.id, Order.voided.is_(False))
    for order in session.scalars(select(Order).where(*live, Order.status != "cancelled")):
        if order.price_item_code is None:
            continue
        quantity = Decimal(max(nights, 1)) if order.order_type == "nursing" else ONE
        when = order.completed_at if order.order_type == "procedure" else None
        day = _local_day(when or order.ordered_at)
        found.append(_Source(order.price_item_code, quantity, "order", order.id, day))
    for procedure in session.scalars(
        select(Procedure).where(
            Procedure.encounter_id == encounter.id,
            Procedure.voided.is_(False),
            Procedure.order_id.is_(None),  # ordered procedures are charged through the order
        )
    ):
        day = _local_day(procedure.performed_at)
        found.append(_Source(procedure.code, ONE, "procedure", procedure.id, day))
    for rx in session.scalars(
        select(Prescription).where(
            Prescription.encounter_id == encounter.id, Prescription.voided.is_(False)
        )
    ):
        day = _local_day(rx.prescribed_at)
        found.append(_Source(rx.drug_code, rx.quantity, "prescription", rx.id, day))
    return found


def _post_encounter(session: Session, actor: Actor, encounter: Encounter) -> EncounterCharges:
    """Post an encounter's not-yet-charged sources (no audit row: callers write theirs)."""
    _, nights = _stay_nights(session, encounter)
    sources = (
        _registration(session, encounter)
        + _clinical(session, encounter, nights)
        + _bed_days(session, encounter)
    )
    result = EncounterCharges()
    for source in sources:
        if source.source_type != "bed_day" and _already_charged(
            session, source.source_type, source.source_id, source.service_date
        ):
            continue
        try:
            charge = _post(
                session,
                actor,
                patient_id=encounter.patient_id,
                encounter_id=encounter.id,
                price_code=source.price_code,
                quantity=source.quantity,
                source_type=source.source_type,
                source_id=source.source_id,
                service_date=source.service_date,
            )
        except BillingRefused as refusal:
            if refusal.key == "billing.price_unknown":
                result.unpriced.append(source.price_code)
                continue
            if refusal.key == "billing.already_charged":
                continue
            raise
        result.posted.append(charge)
    return result


@requires(Privilege.POST_CHARGES)
def post_charges_for_encounter(
    *, session: Session, actor: Actor, encounter_id: int
) -> EncounterCharges:
    """Post every not-yet-charged source of an encounter (idempotent: a rerun posts nothing)."""
    encounter = session.get(Encounter, encounter_id, with_for_update=True)
    if encounter is None or encounter.voided:
        raise BillingRefused("billing.encounter_mismatch")
    result = _post_encounter(session, actor, encounter)
    audit.record(
        session,
        actor,
        "billing.post_encounter_charges",
        patient_id=encounter.patient_id,
        object_type="encounter",
        object_id=encounter.id,
        detail={"posted": len(result.posted), "unpriced": len(result.unpriced)},
    )
    return result


@requires(Privilege.POST_CHARGES)
def post_pending_charges(
    *, session: Session, actor: Actor, patient_id: int, days: int = 90
) -> EncounterCharges:
    """Post what the patient's recent visits ordered, prescribed or used and is not yet
    charged — registration, orders, procedures, prescriptions (online ones too), bed-days —
    when the cashier opens the patient. Idempotent."""
    since = utcnow() - dt.timedelta(days=days)
    encounters = session.scalars(
        select(Encounter)
        .where(
            Encounter.patient_id == patient_id,
            Encounter.voided.is_(False),
            Encounter.started_at >= since,
        )
        .order_by(Encounter.id)
        .with_for_update()
    ).all()
    total = EncounterCharges()
    for encounter in encounters:
        found = _post_encounter(session, actor, encounter)
        total.posted += found.posted
        total.unpriced += found.unpriced
    audit.record(
        session,
        actor,
        "billing.post_pending_charges",
        patient_id=patient_id,
        object_type="patient",
        object_id=patient_id,
        detail={"encounters": len(encounters), "posted": len(total.posted)},
    )
    return total


@requires(Privilege.POST_CHARGES)
def void_charge(*, session: Session, actor: Actor, charge_id: int, reason: str) -> Charge:
    """Void a charge posted in error (only while it is on no invoice); the source is freed."""
    why = (reason or "").strip()
    if not why:
        raise BillingRefused("billing.reason_required")
    if too_long(why, MAX_REASON):
        raise BillingRefused(TOO_LONG_KEY, limit=MAX_REASON)
    charge = session.get(Charge, charge_id, with_for_update=True)
    if charge is None or charge.voided:
        raise BillingRefused("billing.charge_not_found")
    if charge.invoice_id is not None:
        raise BillingRefused("billing.charge_invoiced")
    charge.voided = True
    charge.voided_at = utcnow()
    charge.voided_by_id = actor.user_id
    charge.void_reason = why
    session.flush()
    audit.record(
        session,
        actor,
        "billing.void_charge",
        patient_id=charge.patient_id,
        object_type="charge",
        object_id=charge.id,
    )
    return charge


def repost(session: Session, actor: Actor, charge: Charge, reason: str) -> Charge:
    """Void ``charge`` and post an identical live copy (same price and shares), uninvoiced.

    Used when an invoice is voided: an invoice line keeps its charge forever
    (``invoice_lines.charge_id`` is unique), so the released work is a new row.
    """
    charge.voided = True
    charge.voided_at = utcnow()
    charge.voided_by_id = actor.user_id
    charge.void_reason = reason
    session.flush()
    copy = Charge(
        patient_id=charge.patient_id,
        encounter_id=charge.encounter_id,
        price_item_id=charge.price_item_id,
        source_type=charge.source_type,
        source_id=charge.source_id,
        service_date=charge.service_date,
        description=charge.description,
        quantity=charge.quantity,
        unit_price=charge.unit_price,
        amount=charge.amount,
        insurance_amount=charge.insurance_amount,
        patient_amount=charge.patient_amount,
        posted_at=utcnow(),
        created_by_id=actor.user_id,
    )
    session.add(copy)
    return copy
