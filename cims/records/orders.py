"""Prescriptions (with the allergy check), orders, lab results and treatment plans.

Every function needs its privilege and the care relationship; new prescriptions, orders
and plans need an open encounter. A prescription that conflicts with one of the patient's
active allergies (same substance or same drug class, see ``cims.records.drugs``) raises
AllergyConflict unless the prescriber gives an override reason, which is kept on the row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import local_today
from cims.records.drugs import FREQUENCIES, ROUTES, conflicts
from cims.records.encounters import (
    MAX_TEXT,
    InvalidRecord,
    clean_reason,
    encounter_in_care,
    open_encounter_in_care,
    refuse_if,
)
from cims.records.models import (
    ORDER_TYPES,
    Allergy,
    FollowUp,
    Observation,
    Order,
    Prescription,
    TreatmentPlan,
)
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.rbac import Actor, Privilege, requires

MIN_OVERRIDE: Final = 5
MAX_DAYS: Final = 365
_DOSE_LIMIT: Final = Decimal("10000000")  # NUMERIC(10,3)
_QUANTITY_LIMIT: Final = Decimal("100000000")  # NUMERIC(10,2)


@dataclass(frozen=True)
class ConflictingAllergy:
    """A recorded allergy a drug conflicts with (plain values: outlives the session)."""

    allergy_id: int
    substance: str
    severity: str
    reaction: str | None


class AllergyConflict(Exception):
    """The drug conflicts with recorded active allergies; ``allergies`` names them."""

    def __init__(self, allergies: list[ConflictingAllergy]) -> None:
        self.allergies = allergies
        super().__init__(f"{len(allergies)} allergy conflict(s)")


def _decimal(value: Decimal | float | int | str) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _prescription_problems(
    drug_code: str,
    drug_name: str,
    dose: Decimal | None,
    dose_unit: str,
    route: str,
    frequency: str,
    duration_days: int,
    quantity: Decimal | None,
) -> list[str]:
    problems = []
    if not drug_code.strip() or not drug_name.strip():
        problems.append("records.drug_required")
    if dose is None or not Decimal(0) < dose < _DOSE_LIMIT:
        problems.append("records.bad_dose")
    if not dose_unit.strip() or len(dose_unit) > 20:
        problems.append("records.bad_dose_unit")
    if route not in ROUTES:
        problems.append("records.bad_route")
    if frequency not in FREQUENCIES:
        problems.append("records.bad_frequency")
    if not 1 <= duration_days <= MAX_DAYS:
        problems.append("records.bad_duration")
    if quantity is None or not Decimal(0) < quantity < _QUANTITY_LIMIT:
        problems.append("records.bad_quantity")
    return problems


def allergy_conflicts(
    session: Session, patient_id: int, drug_code: str, drug_name: str
) -> list[Allergy]:
    """The patient's active allergies the drug conflicts with (no audit: a helper)."""
    allergies = session.scalars(
        select(Allergy).where(
            Allergy.patient_id == patient_id,
            Allergy.status == "active",
            Allergy.voided.is_(False),
        )
    )
    return [a for a in allergies if conflicts(drug_code, drug_name, a.substance, a.substance_code)]


@requires(Privilege.PRESCRIBE)
def prescribe(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    drug_code: str,
    drug_name: str,
    dose: Decimal | float | int | str,
    dose_unit: str,
    route: str,
    frequency: str,
    duration_days: int,
    quantity: Decimal | float | int | str,
    override_reason: str | None = None,
) -> Prescription:
    """Prescribe on an open encounter; an allergy conflict needs an override reason."""
    encounter = open_encounter_in_care(session, actor, encounter_id)
    dose_value, quantity_value = _decimal(dose), _decimal(quantity)
    refuse_if(
        _prescription_problems(
            drug_code, drug_name, dose_value, dose_unit, route, frequency, duration_days,
            quantity_value,
        )
    )  # fmt: skip
    found = allergy_conflicts(session, encounter.patient_id, drug_code, drug_name)
    override = " ".join((override_reason or "").split())
    if found and not override:
        raise AllergyConflict(
            [ConflictingAllergy(a.id, a.substance, a.severity, a.reaction) for a in found]
        )
    if found and len(override) < MIN_OVERRIDE:
        raise InvalidRecord(["records.override_too_short"])
    assert dose_value is not None and quantity_value is not None
    prescription = Prescription(
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        prescriber_id=actor.user_id,
        drug_code=drug_code.strip(),
        drug_name=drug_name.strip(),
        dose=dose_value,
        dose_unit=dose_unit.strip(),
        route=route,
        frequency=frequency,
        duration_days=duration_days,
        quantity=quantity_value,
        prescribed_at=utcnow(),
        status="active",
        allergy_override_reason=override if found else None,
        created_by_id=actor.user_id,
    )
    session.add(prescription)
    session.flush()
    audit.record(
        session,
        actor,
        "records.prescribe",
        patient_id=encounter.patient_id,
        object_type="prescription",
        object_id=prescription.id,
        detail={"allergy_override": bool(found), "conflicts": len(found)},
    )
    return prescription


@requires(Privilege.PRESCRIBE)
def stop_prescription(
    *, session: Session, actor: Actor, prescription_id: int, reason: str
) -> Prescription:
    """Stop an active prescription (kept, with the reason)."""
    prescription = session.get(Prescription, prescription_id)
    if prescription is None or prescription.voided:
        raise LookupError(prescription_id)
    clinical_access(session, actor, prescription.patient_id)
    cleaned = clean_reason(reason)
    refuse_if([] if prescription.status == "active" else ["records.not_active"])
    prescription.status = "stopped"
    prescription.stop_reason = cleaned
    prescription.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.stop_prescription",
        patient_id=prescription.patient_id,
        object_type="prescription",
        object_id=prescription.id,
        detail={"reason_length": len(cleaned)},
    )
    return prescription


@requires(Privilege.WRITE_CLINICAL)
def place_order(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    order_type: str,
    code: str,
    description: str,
) -> Order:
    """Order a lab, imaging, procedure, ... on an open encounter."""
    encounter = open_encounter_in_care(session, actor, encounter_id)
    code, description = code.strip(), " ".join(description.split())
    problems = []
    if order_type not in ORDER_TYPES:
        problems.append("records.bad_order_type")
    if not code or len(code) > 40:
        problems.append("records.order_code_required")
    if not description:
        problems.append("records.order_description_required")
    elif len(description) > MAX_TEXT:
        problems.append("records.text_too_long")
    refuse_if(problems)
    order = Order(
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        order_type=order_type,
        code=code,
        description=description,
        status="ordered",
        ordered_by_id=actor.user_id,
        ordered_at=utcnow(),
        created_by_id=actor.user_id,
    )
    session.add(order)
    session.flush()
    audit.record(
        session,
        actor,
        "records.place_order",
        patient_id=encounter.patient_id,
        object_type="order",
        object_id=order.id,
        detail={"order_type": order_type},
    )
    return order


@requires(Privilege.WRITE_CLINICAL)
def cancel_order(*, session: Session, actor: Actor, order_id: int, reason: str) -> Order:
    """Cancel an order not yet completed (kept, with the reason)."""
    order = session.get(Order, order_id)
    if order is None or order.voided:
        raise LookupError(order_id)
    clinical_access(session, actor, order.patient_id)
    cleaned = clean_reason(reason)
    refuse_if([] if order.status in ("ordered", "in_progress") else ["records.not_active"])
    order.status = "cancelled"
    order.cancel_reason = cleaned
    order.updated_by_id = actor.user_id
    session.flush()
    audit.record(
        session,
        actor,
        "records.cancel_order",
        patient_id=order.patient_id,
        object_type="order",
        object_id=order.id,
        detail={"reason_length": len(cleaned)},
    )
    return order


def abnormal_flag(value: Decimal, low: Decimal | None, high: Decimal | None) -> str:
    """N, L or H against the reference range (critical LL/HH need critical limits, not kept)."""
    if low is not None and value < low:
        return "L"
    if high is not None and value > high:
        return "H"
    return "N"


@requires(Privilege.WRITE_CLINICAL)
def record_result(
    *,
    session: Session,
    actor: Actor,
    code: str,
    name: str,
    value: Decimal | float | int | str,
    unit: str,
    ref_low: Decimal | float | int | str | None = None,
    ref_high: Decimal | float | int | str | None = None,
    order_id: int | None = None,
    encounter_id: int | None = None,
) -> Observation:
    """A numeric lab result for an order (which it completes) or an encounter; flag computed."""
    order = session.get(Order, order_id) if order_id is not None else None
    if order_id is not None and (order is None or order.voided):
        raise LookupError(order_id)
    target = order.encounter_id if order is not None else encounter_id
    if target is None:
        raise InvalidRecord(["records.result_needs_target"])
    encounter = encounter_in_care(session, actor, target)
    number = _decimal(value)
    (low_ok, low), (high_ok, high) = _bound(ref_low), _bound(ref_high)
    problems = []
    if not code.strip() or not name.strip():
        problems.append("records.result_name_required")
    if number is None or abs(number) >= Decimal("1e10"):
        problems.append("records.bad_value")
    if not (low_ok and high_ok) or (low is not None and high is not None and low > high):
        problems.append("records.bad_range")
    if order is not None and order.status == "cancelled":
        problems.append("records.order_cancelled")
    refuse_if(problems)
    assert number is not None
    now = utcnow()
    observation = Observation(
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        category="lab",
        code=code.strip(),
        name=" ".join(name.split()),
        value_num=number,
        unit=unit.strip() or None,
        ref_low=low,
        ref_high=high,
        abnormal_flag=abnormal_flag(number, low, high),
        observed_at=now,
        recorded_by_id=actor.user_id,
        created_by_id=actor.user_id,
    )
    session.add(observation)
    if order is not None and order.status != "completed":
        order.status = "completed"
        order.completed_at = now
    session.flush()
    audit.record(
        session,
        actor,
        "records.record_result",
        patient_id=encounter.patient_id,
        object_type="observation",
        object_id=observation.id,
        detail={"abnormal": observation.abnormal_flag != "N"},
    )
    return observation


def _bound(value: Decimal | float | int | str | None) -> tuple[bool, Decimal | None]:
    """(valid, number) of a reference bound; a blank bound is valid and None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True, None
    number = _decimal(value)
    return number is not None, number


@requires(Privilege.WRITE_CLINICAL)
def create_treatment_plan(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    title: str,
    goals: str,
    follow_ups: list[tuple[dt.date, str]],
    today: dt.date | None = None,
) -> TreatmentPlan:
    """A plan with goals and dated follow-ups (none in the past) on an open encounter."""
    encounter = open_encounter_in_care(session, actor, encounter_id)
    day = today or local_today()
    heading, aims = " ".join(title.split()), goals.strip()
    problems = []
    if not heading:
        problems.append("records.plan_title_required")
    elif len(heading) > MAX_TEXT or len(aims) > 4000:
        problems.append("records.text_too_long")
    if any(due < day for due, _ in follow_ups):
        problems.append("records.follow_up_in_past")
    if any(not text.strip() for _, text in follow_ups):
        problems.append("records.follow_up_description_required")
    refuse_if(problems)
    plan = TreatmentPlan(
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        author_id=actor.user_id,
        title=heading,
        goals=aims or None,
        start_date=day,
        status="active",
        created_by_id=actor.user_id,
    )
    session.add(plan)
    session.flush()
    for due, text in follow_ups:
        session.add(
            FollowUp(
                plan_id=plan.id,
                patient_id=encounter.patient_id,
                due_date=due,
                description=" ".join(text.split()),
                status="due",
                created_by_id=actor.user_id,
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "records.create_plan",
        patient_id=encounter.patient_id,
        object_type="treatment_plan",
        object_id=plan.id,
        detail={"follow_ups": len(follow_ups)},
    )
    return plan
