"""The nurse's worklist and the bed board through AppTest, signed in as the demo nurse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

import factories
from cims.appointments.models import Appointment
from cims.base import utcnow
from cims.clock import local_today, local_zone
from cims.org.models import Bed, Department, Ward
from cims.records.models import BedAssignment, Observation

WORKLIST = "pages/nurse_worklist.py"
BED_BOARD = "pages/bed_board.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital (the demo nurse works in Endocrinology)."""
    with seeded_app_database("nurse_pages", patients=200, seed=5) as url:
        yield url


def _endo(db: Session) -> Department:
    department = db.scalar(select(Department).where(Department.code == "ENDO"))
    assert department is not None
    return department


def _arriving_patient(url: str) -> tuple[int, int, str]:
    """A new patient booked into Endocrinology today: (appointment id, patient id, name)."""
    engine = create_engine(url)
    with Session(engine) as db:
        patient = factories.patient(db, family_name="宓", given_name="晓岚", full_name="宓晓岚")
        at = dt.datetime.combine(local_today(), dt.time(23, 30), tzinfo=local_zone())
        appointment = Appointment(
            patient_id=patient.id,
            department_id=_endo(db).id,
            booked_at=utcnow(),
            scheduled_at=at.astimezone(dt.UTC),
        )
        db.add(appointment)
        db.commit()
        ids = (appointment.id, patient.id, patient.full_name)
    engine.dispose()
    return ids


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def test_nurse_checks_in_then_records_vitals(seeded_url: str) -> None:
    appointment_id, patient_id, name = _arriving_patient(seeded_url)
    at = _signed_in_page(seeded_url, "nurse", WORKLIST)
    assert not at.exception, at.exception
    assert at.title[0].value == "Nurse worklist"

    at = at.button(key=f"check_in_{appointment_id}").click().run()
    assert not at.exception, at.exception
    [done] = at.success
    assert done.value.startswith(f"{name} checked in, queue number ")
    awaiting = at.dataframe[0].value
    assert name in list(awaiting["Name"])

    at.selectbox(key="vitals_patient").set_value(patient_id)
    at.number_input(key="vitals_temperature_c").set_value(39.2)
    at.number_input(key="vitals_pulse_bpm").set_value(88)
    at.number_input(key="vitals_systolic").set_value(80)
    at.number_input(key="vitals_diastolic").set_value(95)
    at = _click(at, "Save vitals")
    # Systolic below diastolic: refused with its message, nothing saved.
    assert [e.value for e in at.error] == ["Systolic pressure must be higher than diastolic."]

    at.number_input(key="vitals_systolic").set_value(128)
    at.number_input(key="vitals_diastolic").set_value(82)
    at = _click(at, "Save vitals")
    assert not at.exception, at.exception
    mrn = _mrn(seeded_url, patient_id)
    assert at.success[0].value == f"Saved 4 vital signs for {name} · {mrn}."
    assert [w.value for w in at.warning] == ["Temperature (°C): 39.2 · High"]
    engine = create_engine(seeded_url)
    with Session(engine) as db:
        codes = db.scalars(select(Observation.code).where(Observation.patient_id == patient_id))
        assert sorted(codes) == ["8310-5", "8462-4", "8480-6", "8867-4"]
    engine.dispose()


def _mrn(url: str, patient_id: int) -> str:
    from cims.patients.models import Patient

    engine = create_engine(url)
    with Session(engine) as db:
        patient = db.get(Patient, patient_id)
        assert patient is not None
        mrn = patient.mrn
    engine.dispose()
    return mrn


def _spare_beds(url: str) -> tuple[int, int, int, str]:
    """Two new free beds in the first Endocrinology ward and a new patient: ids and MRN."""
    engine = create_engine(url)
    with Session(engine) as db:
        ward = db.scalars(
            select(Ward).where(Ward.department_id == _endo(db).id).order_by(Ward.code)
        ).first()
        assert ward is not None
        bed, spare = Bed(ward_id=ward.id, code="99"), Bed(ward_id=ward.id, code="98")
        patient = factories.patient(db, family_name="宓", given_name="远", full_name="宓远")
        db.add_all([bed, spare])
        db.commit()
        ids = (ward.id, bed.id, spare.id, patient.mrn)
    engine.dispose()
    return ids


def test_nurse_admits_on_the_bed_board_then_discharges(seeded_url: str) -> None:
    ward_id, bed_id, spare_id, mrn = _spare_beds(seeded_url)
    at = _signed_in_page(seeded_url, "nurse", BED_BOARD)
    assert not at.exception, at.exception
    at.selectbox(key="beds_ward").set_value(ward_id).run()
    assert "Bed 99" in [m.value.strip("*") for m in at.markdown]

    at.selectbox(key="beds_free").set_value(bed_id)
    at.text_input(key="beds_mrn").input(mrn)
    at.text_input(key="beds_complaint").input("血糖控制不佳")
    at = _click(at, "Admit")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.success[0].value == "Admitted."
    assert any(f"宓远  \n{mrn}" in m.value for m in at.markdown)

    # The same patient again: one translated refusal.
    at.selectbox(key="beds_free").set_value(spare_id)
    at.text_input(key="beds_mrn").input(mrn)
    at = _click(at, "Admit")
    assert [e.value for e in at.error] == [
        "This patient is already admitted; transfer instead of admitting again."
    ]

    # Transfer and discharge each ask first.
    [encounter_id] = _encounters(seeded_url, bed_id)
    at.selectbox(key="beds_occ").set_value(encounter_id)
    at.selectbox(key="beds_target").set_value(spare_id)
    at = at.button(key="beds_transfer").click().run()
    assert at.warning[0].value == "Move Bed 99 · 宓远 to Bed 98?"
    at = at.button(key="beds_confirm").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Transferred."
    assert _encounters(seeded_url, spare_id) == [encounter_id]

    at.selectbox(key="beds_occ").set_value(encounter_id)
    at = at.button(key="beds_discharge").click().run()
    assert at.warning[0].value == "Discharge Bed 98 · 宓远 (Home)?"
    at = at.button(key="beds_confirm").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Discharged."
    assert not any(mrn in m.value for m in at.markdown)


def _encounters(url: str, bed_id: int) -> list[int]:
    engine = create_engine(url)
    with Session(engine) as db:
        found = list(
            db.scalars(
                select(BedAssignment.encounter_id).where(
                    BedAssignment.bed_id == bed_id, BedAssignment.end_at.is_(None)
                )
            )
        )
    engine.dispose()
    return found
