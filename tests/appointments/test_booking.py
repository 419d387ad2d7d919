"""Booking never oversells a slot or doubles a patient, under concurrency too."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.appointments import booking
from cims.appointments.booking import BookingRefused
from cims.appointments.models import Appointment, DoctorSchedule, Slot
from cims.base import utcnow
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent
from cims.security.rbac import AccessDenied, Actor
from factories import future_slot


def test_booking_takes_a_place_and_cancelling_returns_it(session: Session) -> None:
    desk = factories.actor(session, "registrar")
    slot = future_slot(session, capacity=2)
    patient = factories.patient(session)
    appointment = booking.book_appointment(
        session=session, actor=desk, patient_id=patient.id, slot_id=slot.id
    )
    session.refresh(slot)
    assert appointment.status == "booked" and slot.booked_count == 1
    assert appointment.scheduled_at == slot.starts_at and appointment.doctor_id == slot.doctor_id
    booking.cancel_appointment(
        session=session, actor=desk, appointment_id=appointment.id, reason="feeling better"
    )
    session.refresh(slot)
    assert appointment.status == "cancelled" and slot.booked_count == 0
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == patient.id)
    ).all()
    assert actions == ["appointments.book", "appointments.cancel"]


def test_full_past_and_doubled_bookings_are_refused_and_write_nothing(session: Session) -> None:
    desk = factories.actor(session, "registrar")
    slot = future_slot(session, capacity=1)
    first, second = factories.patient(session), factories.patient(session)
    booking.book_appointment(session=session, actor=desk, patient_id=first.id, slot_id=slot.id)
    before = session.scalar(select(func.count(Appointment.id)))
    with pytest.raises(BookingRefused) as full:
        booking.book_appointment(session=session, actor=desk, patient_id=second.id, slot_id=slot.id)
    assert full.value.key == "booking.slot_full"
    # Same patient, same doctor, same day, another slot: a double booking.
    later = future_slot(session, hours=48.5, doctor_id=slot.doctor_id)
    with pytest.raises(BookingRefused) as doubled:
        booking.book_appointment(session=session, actor=desk, patient_id=first.id, slot_id=later.id)
    assert doubled.value.key == "booking.already_booked"
    past = future_slot(session, hours=-3)
    with pytest.raises(BookingRefused) as gone:
        booking.book_appointment(session=session, actor=desk, patient_id=second.id, slot_id=past.id)
    assert gone.value.key == "booking.slot_past"
    assert session.scalar(select(func.count(Appointment.id))) == before


def test_reschedule_moves_the_booking_in_one_step(session: Session) -> None:
    desk = factories.actor(session, "registrar")
    old_slot = future_slot(session)
    new_slot = future_slot(session, hours=72, doctor_id=old_slot.doctor_id)
    patient = factories.patient(session)
    old = booking.book_appointment(
        session=session, actor=desk, patient_id=patient.id, slot_id=old_slot.id
    )
    new = booking.reschedule_appointment(
        session=session, actor=desk, appointment_id=old.id, slot_id=new_slot.id
    )
    session.refresh(old_slot)
    session.refresh(new_slot)
    assert old.status == "cancelled" and new.rescheduled_from_id == old.id
    assert (old_slot.booked_count, new_slot.booked_count) == (0, 1)


def test_patients_book_only_themselves_and_cancel_only_before_the_cutoff(
    session: Session,
) -> None:
    me = factories.patient(session)
    portal = factories.actor(session, "patient", patient_id=me.id)
    soon = future_slot(session, hours=1)
    appointment = booking.book_my_appointment(session=session, actor=portal, slot_id=soon.id)
    assert appointment.patient_id == me.id and appointment.channel == "portal"
    with pytest.raises(BookingRefused) as late:
        booking.cancel_my_appointment(
            session=session, actor=portal, appointment_id=appointment.id, reason=""
        )
    assert late.value.key == "booking.past_cutoff"
    someone_else = booking.book_appointment(
        session=session,
        actor=factories.actor(session, "registrar"),
        patient_id=factories.patient(session).id,
        slot_id=future_slot(session).id,
    )
    with pytest.raises(BookingRefused):
        booking.cancel_my_appointment(
            session=session, actor=portal, appointment_id=someone_else.id, reason=""
        )
    with pytest.raises(AccessDenied):
        booking.book_appointment(session=session, actor=portal, patient_id=me.id, slot_id=soon.id)


def test_no_shows_are_marked_after_the_grace_period(session: Session) -> None:
    desk = factories.actor(session, "registrar")
    slot = future_slot(session, hours=2)
    appointment = booking.book_appointment(
        session=session, actor=desk, patient_id=factories.patient(session).id, slot_id=slot.id
    )
    assert booking.mark_no_shows(session, now=utcnow()) == 0
    later = slot.ends_at + dt.timedelta(minutes=31)
    assert booking.mark_no_shows(session, now=later) >= 1
    session.refresh(appointment)
    assert appointment.status == "no_show"


def test_slots_are_generated_from_schedules_once(session: Session) -> None:
    department = factories.department(session, "ENDO")
    doctor = factories.user(session, "doctor", departments=(department.id,))
    monday = dt.date(2031, 3, 3)
    session.add(
        DoctorSchedule(
            doctor_id=doctor.id,
            department_id=department.id,
            weekday=0,
            session="am",
            start_time=dt.time(8, 0),
            end_time=dt.time(9, 0),
            slot_minutes=15,
            capacity=3,
            valid_from=monday,
        )
    )
    session.flush()
    assert booking.generate_slots(session, start=monday, days=14) == 8  # 2 Mondays x 4
    assert booking.generate_slots(session, start=monday, days=14) == 0
    slots = session.scalars(
        select(Slot).where(Slot.doctor_id == doctor.id).order_by(Slot.starts_at)
    ).all()
    assert [s.capacity for s in slots] == [3] * 8
    assert slots[0].starts_at == dt.datetime(2031, 3, 3, 0, 0, tzinfo=dt.UTC)  # 08:00 Shanghai


@pytest.fixture
def booking_engine(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """Committed data on a database of its own: each booker has its own connection."""
    engine = create_engine(fresh_database("booking"), pool_size=25)
    with Session(engine) as db, db.begin():
        ensure_roles_and_privileges(db)
    yield engine
    engine.dispose()


def test_twenty_people_booking_the_last_places_at_once_never_oversell(
    booking_engine: Engine,
) -> None:
    with Session(booking_engine, expire_on_commit=False) as db, db.begin():
        slot = future_slot(db, capacity=3)
        desks: list[Actor] = [factories.actor(db, "registrar") for _ in range(20)]
        patients = [factories.patient(db).id for _ in range(20)]
    start = threading.Barrier(20)
    outcomes: list[str] = []

    def book(desk: Actor, patient_id: int) -> None:
        with Session(booking_engine) as db:
            start.wait()
            try:
                with db.begin():
                    booking.book_appointment(
                        session=db, actor=desk, patient_id=patient_id, slot_id=slot.id
                    )
                outcomes.append("booked")
            except BookingRefused as refusal:
                outcomes.append(refusal.key)

    pairs = zip(desks, patients, strict=True)
    threads = [threading.Thread(target=book, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["booked"] * 3 + ["booking.slot_full"] * 17
    with Session(booking_engine) as db:
        live = db.scalar(
            select(func.count(Appointment.id)).where(
                Appointment.slot_id == slot.id, Appointment.status == "booked"
            )
        )
        assert live == 3 and db.get(Slot, slot.id).booked_count == 3  # type: ignore[union-attr]


def test_generating_a_month_of_busy_schedules_fits_in_statements(session: Session) -> None:
    department = factories.department(session, "ENDO")
    doctor = factories.user(session, "doctor", departments=(department.id,))
    for weekday in range(7):  # 12 hours of one-minute slots every day: 20,160 slots
        session.add(
            DoctorSchedule(
                doctor_id=doctor.id,
                department_id=department.id,
                weekday=weekday,
                session="am",
                start_time=dt.time(8, 0),
                end_time=dt.time(20, 0),
                slot_minutes=1,
                capacity=1,
                valid_from=dt.date(2031, 3, 3),
            )
        )
    session.flush()
    assert booking.generate_slots(session, start=dt.date(2031, 3, 3), days=28) == 20160
