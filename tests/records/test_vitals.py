"""Vital signs: plausibility checks that write nothing, one flagged observation per value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.demo.vocab import OBSERVATIONS
from cims.patients.models import Patient
from cims.records.models import Encounter, Observation
from cims.records.vitals import (
    VITAL_INDEX,
    VITALS,
    InvalidVitals,
    VitalSpec,
    abnormal_flag,
    record_vitals,
)
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor


@pytest.fixture
def nurse(session: Session) -> Actor:
    department = factories.department(session, "ENDO")
    return factories.actor(session, "nurse", departments=(department.id,))


@pytest.fixture
def patient(session: Session, nurse: Actor) -> Patient:
    """A patient in an open visit of the nurse's department."""
    row = factories.patient(session)
    session.add(
        Encounter(
            patient_id=row.id,
            encounter_type="outpatient",
            department_id=nurse.department_ids[0],
            started_at=utcnow() - dt.timedelta(minutes=30),
            status="open",
        )
    )
    session.flush()
    return row


def _observations(session: Session, patient: Patient) -> list[Observation]:
    return list(
        session.scalars(
            select(Observation).where(Observation.patient_id == patient.id).order_by(Observation.id)
        )
    )


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_each_value_becomes_a_flagged_observation(
    session: Session, nurse: Actor, patient: Patient
) -> None:
    saved = record_vitals(
        session=session,
        actor=nurse,
        patient_id=patient.id,
        temperature_c=38.46,
        pulse_bpm="72",
        systolic=185,
        diastolic=95,
        spo2=Decimal("87"),
        weight_kg=70.25,
        pain_score=2,
    )
    flags = {r.field: r.flag for r in saved}
    assert flags == {
        "temperature_c": "H",
        "pulse_bpm": "N",
        "systolic": "HH",
        "diastolic": "H",
        "spo2": "LL",
        "weight_kg": None,
        "pain_score": "N",
    }
    assert [r.field for r in saved if r.abnormal] == [
        "temperature_c",
        "systolic",
        "diastolic",
        "spo2",
    ]
    rows = _observations(session, patient)
    assert len(rows) == 7
    temperature = rows[0]
    assert (temperature.code, temperature.unit, temperature.value_num) == (
        "8310-5",
        "°C",
        Decimal("38.5"),
    )
    assert (temperature.ref_low, temperature.ref_high) == (Decimal("36.0"), Decimal("37.3"))
    assert {r.category for r in rows} == {"vital"}
    assert {r.recorded_by_id for r in rows} == {nurse.user_id}
    # Attached to the patient's open visit.
    assert len({r.encounter_id for r in rows}) == 1 and rows[0].encounter_id is not None
    [audit] = session.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id))
    assert audit.action == "records.record_vitals"
    assert audit.detail == {"count": 7, "abnormal": 4}


def test_codes_and_ranges_match_the_demo_history() -> None:
    shared = {"SBP": "systolic", "DBP": "diastolic", "HR": "pulse_bpm", "TEMP": "temperature_c",
              "SPO2": "spo2"}  # fmt: skip
    for obs in OBSERVATIONS:
        if obs.key in shared:
            spec = VITAL_INDEX[shared[obs.key]]
            assert (spec.loinc, spec.unit, spec.name) == (obs.loinc, obs.unit, obs.name)
            assert (spec.low, spec.high) == (Decimal(str(obs.low)), Decimal(str(obs.high)))


@pytest.mark.parametrize("spec", VITALS, ids=lambda s: s.field)
def test_each_implausible_value_has_its_own_message(
    session: Session, nurse: Actor, patient: Patient, spec: VitalSpec
) -> None:
    field = spec.field
    before = _audit_count(session)
    for bad in (spec.plausible[1] + 1, spec.plausible[0] - 1, "abc", "NaN"):
        with pytest.raises(InvalidVitals) as refused:
            record_vitals(session=session, actor=nurse, patient_id=patient.id, **{field: bad})
        assert refused.value.problems == [f"vitals.bad_{field}"]
    assert _observations(session, patient) == []
    assert _audit_count(session) == before


def test_all_problems_at_once_and_nothing_written(
    session: Session, nurse: Actor, patient: Patient
) -> None:
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=patient.id, temperature_c=50,
                      pulse_bpm=80, systolic=80, diastolic=90, pain_score=11)  # fmt: skip
    assert refused.value.problems == ["vitals.bad_temperature_c", "vitals.bad_pain_score",
                                      "vitals.bp_order"]  # fmt: skip
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=patient.id)
    assert refused.value.problems == ["vitals.nothing_entered"]
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=patient.id, pulse_bpm=70,
                      observed_at=utcnow() + dt.timedelta(hours=1))  # fmt: skip
    assert refused.value.problems == ["vitals.time_future"]
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=patient.id, pulse_bpm=70,
                      observed_at=utcnow() - dt.timedelta(days=8))  # fmt: skip
    assert refused.value.problems == ["vitals.time_too_old"]
    other = factories.patient(session)
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=patient.id, pulse_bpm=70,
                      encounter_id=_any_encounter(session, other))  # fmt: skip
    assert refused.value.problems == ["vitals.encounter_invalid"]
    assert _observations(session, patient) == []


def _any_encounter(session: Session, patient: Patient) -> int:
    department = factories.department(session)
    encounter = Encounter(patient_id=patient.id, encounter_type="outpatient",
                          department_id=department.id, started_at=utcnow())  # fmt: skip
    session.add(encounter)
    session.flush()
    return encounter.id


def test_a_voided_patient_is_refused(session: Session, nurse: Actor) -> None:
    gone = factories.patient(session, voided=True, voided_at=utcnow(), void_reason="error")
    with pytest.raises(InvalidVitals) as refused:
        record_vitals(session=session, actor=nurse, patient_id=gone.id, pulse_bpm=70)
    assert refused.value.problems == ["vitals.patient_invalid"]


def test_outside_care_or_without_the_privilege_is_refused(
    session: Session, patient: Patient
) -> None:
    elsewhere = factories.department(session, "ORTH")
    stranger = factories.actor(session, "nurse", departments=(elsewhere.id,))
    with pytest.raises(AccessDenied):
        record_vitals(session=session, actor=stranger, patient_id=patient.id, pulse_bpm=70)
    registrar = factories.actor(session, "registrar")
    with pytest.raises(AccessDenied):
        record_vitals(session=session, actor=registrar, patient_id=patient.id, pulse_bpm=70)
    assert _observations(session, patient) == []


def test_flags_at_the_limits() -> None:
    temp = VITAL_INDEX["temperature_c"]
    assert [abnormal_flag(temp, Decimal(v)) for v in ("34.9", "35.0", "35.9", "36.0", "37.3",
            "37.4", "40.0")] == ["LL", "LL", "L", "N", "N", "H", "HH"]  # fmt: skip
    assert abnormal_flag(VITAL_INDEX["height_cm"], Decimal("170")) is None
