"""Prescriptions with the allergy check, orders, lab results and treatment plans."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.records.drugs import FORMULARY_BY_CODE, conflicts
from cims.records.encounters import InvalidRecord, add_allergy, create_encounter
from cims.records.models import Encounter, FollowUp, Observation, Prescription
from cims.records.orders import (
    AllergyConflict,
    abnormal_flag,
    cancel_order,
    create_treatment_plan,
    place_order,
    prescribe,
    record_result,
    stop_prescription,
)
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor

PENICILLIN = ("青霉素 / Penicillin", "N0000005828")
CEPHALOSPORINS = ("头孢菌素 / Cephalosporins", "N0000011161")
ASPIRIN = ("阿司匹林 / Aspirin", "1191")
SULFONAMIDES = ("磺胺类 / Sulfonamides", "N0000175503")


def _visit(session: Session) -> tuple[Actor, Encounter]:
    department = factories.department(session, "ENDO")
    doctor = factories.actor(session, "doctor", departments=(department.id,))
    patient = factories.patient(session)
    encounter = create_encounter(
        session=session, actor=doctor, patient_id=patient.id, encounter_type="outpatient",
        department_id=department.id, chief_complaint="咳嗽咳痰1周",
    )  # fmt: skip
    return doctor, encounter


def _rx(session: Session, doctor: Actor, encounter: Encounter, key: str, **changes: object):  # type: ignore[no-untyped-def]
    drug = FORMULARY_BY_CODE[key]
    values: dict[str, object] = {
        "drug_code": drug.code, "drug_name": drug.name, "dose": drug.dose,
        "dose_unit": drug.dose_unit, "route": drug.route, "frequency": drug.frequency,
        "duration_days": drug.duration_days, "quantity": drug.quantity,
    }  # fmt: skip
    values.update(changes)
    return prescribe(session=session, actor=doctor, encounter_id=encounter.id, **values)


def _audit(session: Session, action: str) -> list[dict[str, object] | None]:
    rows = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == action))
    return list(rows)


@pytest.mark.parametrize(
    ("allergen", "drug", "expected"),
    [
        (PENICILLIN, "AMOX", True),
        (PENICILLIN, "CEFU", False),  # penicillin allergy: no cephalosporin warning (docs)
        (CEPHALOSPORINS, "CEFU", True),
        (CEPHALOSPORINS, "CEFTR", True),
        (ASPIRIN, "ASA", True),
        (ASPIRIN, "IBU", True),
        (ASPIRIN, "DICLO", True),
        (ASPIRIN, "PARA", False),
        (SULFONAMIDES, "FURO", False),  # non-antibiotic sulfonamide: no warning (docs)
        (("呋塞米 / Furosemide", None), "FURO", True),  # the drug itself always warns
        (("amoxicillin", None), "AMOX", True),  # free text, by name
        (("头孢类", None), "CEFTR", True),  # free text, by class word
        (("花生 / Peanut", "256349002"), "AMOX", False),
    ],
)
def test_the_allergy_class_table(
    allergen: tuple[str, str | None], drug: str, expected: bool
) -> None:
    found = FORMULARY_BY_CODE[drug]
    assert conflicts(found.code, found.name, allergen[0], allergen[1]) is expected


def test_a_valid_prescription_is_saved_and_audited(session: Session) -> None:
    doctor, encounter = _visit(session)
    rx = _rx(session, doctor, encounter, "METF")
    assert rx.status == "active" and rx.dose == Decimal("500") and rx.prescriber_id
    assert rx.allergy_override_reason is None
    assert {"allergy_override": False, "conflicts": 0} in _audit(session, "records.prescribe")


def test_every_bad_field_is_named_and_nothing_is_written(session: Session) -> None:
    doctor, encounter = _visit(session)
    with pytest.raises(InvalidRecord) as refused:
        _rx(
            session, doctor, encounter, "METF", drug_code=" ", dose="abc", dose_unit="",
            route="rectal", frequency="sometimes", duration_days=0, quantity=-1,
        )  # fmt: skip
    assert refused.value.problems == [
        "records.drug_required",
        "records.bad_dose",
        "records.bad_dose_unit",
        "records.bad_route",
        "records.bad_frequency",
        "records.bad_duration",
        "records.bad_quantity",
    ]
    assert (
        session.scalar(select(func.count()).where(Prescription.encounter_id == encounter.id)) == 0
    )


def test_allergy_conflict_warns_and_an_override_keeps_the_reason(session: Session) -> None:
    doctor, encounter = _visit(session)
    add_allergy(
        session=session, actor=doctor, patient_id=encounter.patient_id, substance=PENICILLIN[0],
        substance_code=PENICILLIN[1], severity="severe",
    )  # fmt: skip
    with pytest.raises(AllergyConflict) as warned:
        _rx(session, doctor, encounter, "AMOX")
    assert [a.substance for a in warned.value.allergies] == [PENICILLIN[0]]
    with pytest.raises(InvalidRecord) as short:
        _rx(session, doctor, encounter, "AMOX", override_reason=" ok ")
    assert short.value.problems == ["records.override_too_short"]
    assert (
        session.scalar(select(func.count()).where(Prescription.encounter_id == encounter.id)) == 0
    )
    rx = _rx(session, doctor, encounter, "AMOX", override_reason="skin test negative 2025")
    assert rx.allergy_override_reason == "skin test negative 2025"
    assert {"allergy_override": True, "conflicts": 1} in _audit(session, "records.prescribe")
    # An unrelated drug needs no override.
    assert _rx(session, doctor, encounter, "METF").allergy_override_reason is None


def test_stopping_a_prescription(session: Session) -> None:
    doctor, encounter = _visit(session)
    rx = _rx(session, doctor, encounter, "METF")
    with pytest.raises(InvalidRecord):
        stop_prescription(session=session, actor=doctor, prescription_id=rx.id, reason="")
    stop_prescription(session=session, actor=doctor, prescription_id=rx.id, reason="GI upset")
    assert rx.status == "stopped" and rx.stop_reason == "GI upset"
    with pytest.raises(InvalidRecord) as again:
        stop_prescription(session=session, actor=doctor, prescription_id=rx.id, reason="again")
    assert again.value.problems == ["records.not_active"]
    with pytest.raises(AccessDenied):  # nurses do not prescribe
        _rx(session, factories.actor(session, "nurse"), encounter, "METF")


def test_orders_and_results_with_flags(session: Session) -> None:
    doctor, encounter = _visit(session)
    with pytest.raises(InvalidRecord) as refused:
        place_order(
            session=session, actor=doctor, encounter_id=encounter.id, order_type="x", code="",
            description=" ",
        )  # fmt: skip
    assert refused.value.problems == [
        "records.bad_order_type",
        "records.order_code_required",
        "records.order_description_required",
    ]
    order = place_order(
        session=session, actor=doctor, encounter_id=encounter.id, order_type="lab",
        code="LAB-GLU", description="空腹血糖 / Fasting glucose",
    )  # fmt: skip
    result = record_result(
        session=session, actor=doctor, order_id=order.id, code="14771-0",
        name="空腹血糖 / Fasting glucose", value="9.8", unit="mmol/L", ref_low="3.9",
        ref_high="6.1",
    )  # fmt: skip
    assert result.abnormal_flag == "H" and result.encounter_id == encounter.id
    assert order.status == "completed" and order.completed_at is not None
    with pytest.raises(InvalidRecord) as bad:
        record_result(
            session=session, actor=doctor, encounter_id=encounter.id, code="K", name="K",
            value="high", unit="", ref_low="6", ref_high="3",
        )  # fmt: skip
    assert bad.value.problems == ["records.bad_value", "records.bad_range"]
    assert session.scalar(select(func.count()).where(Observation.encounter_id == encounter.id)) == 1
    other = place_order(
        session=session, actor=doctor, encounter_id=encounter.id, order_type="imaging",
        code="IMG-CXR", description="胸部X线 / Chest X-ray",
    )  # fmt: skip
    cancel_order(session=session, actor=doctor, order_id=other.id, reason="not needed")
    assert other.status == "cancelled"
    with pytest.raises(InvalidRecord):
        cancel_order(session=session, actor=doctor, order_id=order.id, reason="too late")


def test_abnormal_flags() -> None:
    d = Decimal
    assert abnormal_flag(d("5"), d("3.9"), d("6.1")) == "N"
    assert abnormal_flag(d("3.0"), d("3.9"), d("6.1")) == "L"
    assert abnormal_flag(d("9.0"), d("3.9"), d("6.1")) == "H"
    assert abnormal_flag(d("6.1"), d("3.9"), d("6.1")) == "N"  # the bounds are normal
    assert abnormal_flag(d("4.0"), None, d("3.4")) == "H"
    assert abnormal_flag(d("4.0"), None, None) == "N"


def test_treatment_plan_with_follow_ups(session: Session) -> None:
    doctor, encounter = _visit(session)
    today = dt.date(2026, 11, 26)
    with pytest.raises(InvalidRecord) as refused:
        create_treatment_plan(
            session=session, actor=doctor, encounter_id=encounter.id, title=" ", goals="",
            follow_ups=[(today - dt.timedelta(days=1), "复查")], today=today,
        )  # fmt: skip
    assert refused.value.problems == ["records.plan_title_required", "records.follow_up_in_past"]
    plan = create_treatment_plan(
        session=session, actor=doctor, encounter_id=encounter.id, title="糖尿病管理",
        goals="HbA1c < 7%", follow_ups=[(today, "复查血糖"), (today + dt.timedelta(90), "HbA1c")],
        today=today,
    )  # fmt: skip
    due = session.scalars(select(FollowUp.due_date).where(FollowUp.plan_id == plan.id)).all()
    assert sorted(due) == [today, today + dt.timedelta(90)]
    assert plan.start_date == today and plan.status == "active"
    assert {"follow_ups": 2} in _audit(session, "records.create_plan")
