"""The front-desk booking page through AppTest, signed in as the demo registrar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

from cims.appointments.models import Appointment, Slot
from cims.base import utcnow
from cims.clock import local_today, to_local
from cims.org.models import Department
from cims.patients.models import Patient

PAGE = "pages/appointments_desk.py"


@pytest.fixture(scope="module")
def seeded_url(seeded_app_database: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """A small seeded demo hospital that the app under test is pointed at."""
    with seeded_app_database("booking_pages", patients=200, seed=11) as url:
        yield url


def _open_place(url: str) -> tuple[str, str, dt.date, str]:
    """A patient MRN and a department/day that still has a free place."""
    engine = create_engine(url)
    with Session(engine) as db:
        slot, department = db.execute(
            select(Slot, Department)
            .join(Department, Department.id == Slot.department_id)
            .where(
                Slot.starts_at > utcnow() + dt.timedelta(days=1),
                Slot.booked_count < Slot.capacity,
                Slot.status == "open",
            )
            .order_by(Slot.starts_at)
            .limit(1)
        ).one()
        busy = select(Appointment.patient_id).where(Appointment.scheduled_at > utcnow())
        mrn = db.scalar(
            select(Patient.mrn)
            .where(~Patient.voided, Patient.id.not_in(busy))
            .order_by(Patient.id)
            .limit(1)
        )
    engine.dispose()
    local = to_local(slot.starts_at)
    assert mrn is not None and local is not None
    return mrn, department.name_en, local.date(), f"{local:%H:%M}"


def _click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def _booked(url: str, mrn: str) -> list[str]:
    engine = create_engine(url)
    with Session(engine) as db:
        statuses = db.scalars(
            select(Appointment.status)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(Patient.mrn == mrn, Appointment.scheduled_at > func.now())
        ).all()
    engine.dispose()
    return list(statuses)


def test_registrar_books_then_cancels_a_visit(seeded_url: str) -> None:
    mrn, department, day, time = _open_place(seeded_url)
    at = _signed_in_page(seeded_url, "registrar", PAGE)
    assert not at.exception and at.title[0].value == "Book an appointment"
    at.text_input(key="booking_patient_query").input(mrn)
    at = _click(at, "Find")
    assert not at.exception, at.exception
    at.selectbox(key="booking_department").select(department)
    at.date_input(key="booking_day").set_value(day)
    at.run()
    options = at.selectbox(key="booking_time").options
    assert any(option.startswith(time) for option in options), options
    chosen = next(o for o in options if o.startswith(time))
    doctor = chosen.split(" · ")[1]
    at.selectbox(key="booking_time").select(chosen)
    at = _click(at, "Book")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.success and at.success[0].value.startswith("Booked: ")
    assert _booked(seeded_url, mrn) == ["booked"]

    # The same patient again with the same doctor that day: one clear refusal, nothing new.
    same_doctor = [o for o in at.selectbox(key="booking_time").options if f" {doctor} " in o]
    if same_doctor:
        at.selectbox(key="booking_time").select(same_doctor[-1])
        at = _click(at, "Book")
        assert [e.value for e in at.error] == [
            "This patient already has a booking with this doctor that day."
        ]
        assert _booked(seeded_url, mrn) == ["booked"]

    [why] = [w for w in at.text_input if w.label == "Reason for cancelling"]
    why.input("feeling better")
    at = _click(at, "Confirm cancellation")
    assert not at.exception, at.exception
    assert at.success[0].value == "Booking cancelled; the place is free again."
    assert _booked(seeded_url, mrn) == ["cancelled"]
    assert local_today() <= day


def test_a_patient_books_and_cancels_in_the_portal(seeded_url: str) -> None:
    _, department, day, time = _open_place(seeded_url)
    at = _signed_in_page(seeded_url, "patient", "pages/portal_book.py")
    assert not at.exception and at.title[0].value == "Book a visit"
    at.selectbox(key="portal_department").select(department)
    at.date_input(key="portal_day").set_value(day)
    at.run()
    options = at.radio(key="portal_time").options
    at.radio(key="portal_time").set_value(next(o for o in options if o.startswith(time)))
    at = _click(at, "Confirm booking")
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []
    assert at.success[0].value.startswith(f"Booked: {day.isoformat()} {time}")
    cancel = [b for b in at.button if b.label == "Cancel"]
    assert cancel, "the new booking is listed with a cancel button"
    at = cancel[-1].click().run()
    assert not at.exception, at.exception
    assert at.success[0].value == "Booking cancelled; the place is free again."
