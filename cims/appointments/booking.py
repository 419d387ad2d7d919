"""Booking, cancelling and rescheduling appointments without ever overbooking a slot.

A booking takes a place with one conditional UPDATE (``booked_count < capacity``), so the
slot row itself is the lock: however many people book the last place at once, exactly one
gets it and the CHECK constraint ``not_overbooked`` backs that up. A patient cannot hold two
live bookings with the same doctor on the same day: bookings of one patient are serialised
on the patient row. Slots are generated from the doctors' weekly schedules, idempotently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cims.appointments.models import Appointment, DoctorSchedule, Slot
from cims.base import utcnow
from cims.clock import day_bounds, local_zone, to_local
from cims.config import get_settings
from cims.patients.models import Patient
from cims.security import audit
from cims.security.models import User
from cims.security.rbac import Actor, Privilege, requires
from cims.text_limits import MAX_REASON, TOO_LONG_KEY, too_long

LIVE: Final = ("booked", "checked_in", "seen")


class BookingRefused(ValueError):
    """A booking, cancellation or reschedule that the rules do not allow (message key)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


@dataclass(frozen=True)
class OpenSlot:
    """A bookable time with places left."""

    slot_id: int
    starts_at: dt.datetime  # hospital-local
    doctor_id: int
    doctor_name: str
    places_left: int


def _schedule_days(schedule: DoctorSchedule, start: dt.date, days: int) -> list[dt.date]:
    last = start + dt.timedelta(days=days - 1)
    if schedule.valid_to is not None:
        last = min(last, schedule.valid_to)
    first = max(start, schedule.valid_from)
    span = (last - first).days + 1
    return [
        first + dt.timedelta(days=i)
        for i in range(max(span, 0))
        if (first + dt.timedelta(days=i)).weekday() == schedule.weekday
    ]


def generate_slots(session: Session, *, start: dt.date, days: int = 28) -> int:
    """Create the slots of every active schedule for ``days`` from ``start``; returns new ones.

    Idempotent: a slot that exists (same doctor, same start) is left as it is.
    """
    zone = local_zone()
    rows = []
    for schedule in session.scalars(select(DoctorSchedule).where(DoctorSchedule.active)):
        for day in _schedule_days(schedule, start, days):
            moment = dt.datetime.combine(day, schedule.start_time, tzinfo=zone)
            end = dt.datetime.combine(day, schedule.end_time, tzinfo=zone)
            step = dt.timedelta(minutes=schedule.slot_minutes)
            while moment + step <= end:
                rows.append(
                    {
                        "schedule_id": schedule.id,
                        "doctor_id": schedule.doctor_id,
                        "department_id": schedule.department_id,
                        "starts_at": moment.astimezone(dt.UTC),
                        "ends_at": (moment + step).astimezone(dt.UTC),
                        "capacity": schedule.capacity,
                    }
                )
                moment += step
    created = 0
    for start_at in range(0, len(rows), 2000):  # a statement holds at most 65,535 parameters
        created += len(
            session.execute(
                insert(Slot)
                .values(rows[start_at : start_at + 2000])
                .on_conflict_do_nothing()
                .returning(Slot.id)
            ).all()
        )
    return created


def _open_slots(
    session: Session, department_id: int, day: dt.date, now: dt.datetime
) -> list[OpenSlot]:
    start, end = day_bounds(day)
    query = (
        select(Slot, User.display_name)
        .join(User, User.id == Slot.doctor_id)
        .where(
            Slot.department_id == department_id,
            Slot.starts_at >= max(start, now),
            Slot.starts_at < end,
            Slot.status == "open",
            Slot.booked_count < Slot.capacity,
        )
        .order_by(Slot.starts_at, User.display_name)
    )
    return [
        OpenSlot(
            slot_id=slot.id,
            starts_at=to_local(slot.starts_at) or slot.starts_at,
            doctor_id=slot.doctor_id,
            doctor_name=name,
            places_left=slot.capacity - slot.booked_count,
        )
        for slot, name in session.execute(query)
    ]


@requires(Privilege.MANAGE_APPOINTMENTS)
def list_open_slots(
    *, session: Session, actor: Actor, department_id: int, day: dt.date
) -> list[OpenSlot]:
    """Times with places left in a department on a day (front desk)."""
    return _open_slots(session, department_id, day, utcnow())


@requires(Privilege.PORTAL_SELF)
def list_open_slots_for_me(
    *, session: Session, actor: Actor, department_id: int, day: dt.date
) -> list[OpenSlot]:
    """Times with places left, for a patient booking in the portal."""
    return _open_slots(session, department_id, day, utcnow())


def _book(
    session: Session,
    actor: Actor,
    *,
    patient_id: int,
    slot_id: int,
    channel: str,
    reason: str | None,
    rescheduled_from_id: int | None = None,
) -> Appointment:
    now = utcnow()
    patient = session.get(Patient, patient_id, with_for_update=True)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise BookingRefused("booking.patient_not_live")
    slot = session.get(Slot, slot_id)
    if slot is None or slot.status != "open":
        raise BookingRefused("booking.slot_closed")
    if slot.starts_at <= now:
        raise BookingRefused("booking.slot_past")
    day_start, day_end = day_bounds((to_local(slot.starts_at) or slot.starts_at).date())
    same_day = session.scalar(
        select(Appointment.id).where(
            Appointment.patient_id == patient_id,
            Appointment.doctor_id == slot.doctor_id,
            Appointment.scheduled_at >= day_start,
            Appointment.scheduled_at < day_end,
            Appointment.status.in_(LIVE),
            Appointment.id != (rescheduled_from_id or 0),
        )
    )
    if same_day is not None:
        raise BookingRefused("booking.already_booked")
    # The one statement that takes a place: the slot row is locked for the rest of the
    # transaction, and a full slot updates nothing.
    taken = session.execute(
        update(Slot)
        .where(and_(Slot.id == slot_id, Slot.status == "open", Slot.booked_count < Slot.capacity))
        .values(booked_count=Slot.booked_count + 1)
        .returning(Slot.id)
    ).first()
    if taken is None:
        raise BookingRefused("booking.slot_full")
    appointment = Appointment(
        patient_id=patient_id,
        slot_id=slot_id,
        department_id=slot.department_id,
        doctor_id=slot.doctor_id,
        status="booked",
        channel=channel,
        booked_at=now,
        scheduled_at=slot.starts_at,
        reason=(reason or "").strip() or None,
        rescheduled_from_id=rescheduled_from_id,
        created_by_id=actor.user_id,
    )
    session.add(appointment)
    session.flush()
    return appointment


@requires(Privilege.MANAGE_APPOINTMENTS)
def book_appointment(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    slot_id: int,
    channel: str = "front_desk",
    reason: str | None = None,
) -> Appointment:
    """Book a patient into a slot (front desk, phone); refused when full, past or doubled."""
    if too_long(reason, MAX_REASON):
        raise BookingRefused(TOO_LONG_KEY)
    appointment = _book(
        session, actor, patient_id=patient_id, slot_id=slot_id, channel=channel, reason=reason
    )
    audit.record(
        session,
        actor,
        "appointments.book",
        patient_id=patient_id,
        object_type="appointment",
        object_id=appointment.id,
        detail={"channel": channel, "slot_id": slot_id},
    )
    return appointment


@requires(Privilege.PORTAL_SELF)
def book_my_appointment(
    *, session: Session, actor: Actor, slot_id: int, reason: str | None = None
) -> Appointment:
    """A patient books themself into a slot from the portal."""
    if actor.patient_id is None:
        raise BookingRefused("booking.patient_not_live")
    if too_long(reason, MAX_REASON):
        raise BookingRefused(TOO_LONG_KEY)
    appointment = _book(
        session,
        actor,
        patient_id=actor.patient_id,
        slot_id=slot_id,
        channel="portal",
        reason=reason,
    )
    audit.record(
        session,
        actor,
        "appointments.book",
        patient_id=actor.patient_id,
        object_type="appointment",
        object_id=appointment.id,
        detail={"channel": "portal", "slot_id": slot_id},
    )
    return appointment


def _release(session: Session, appointment: Appointment, reason: str, now: dt.datetime) -> None:
    appointment.status = "cancelled"
    appointment.cancelled_at = now
    appointment.cancel_reason = reason
    if appointment.slot_id is not None:
        session.execute(
            update(Slot)
            .where(Slot.id == appointment.slot_id, Slot.booked_count > 0)
            .values(booked_count=Slot.booked_count - 1)
        )


def _cancellable(
    session: Session, appointment_id: int, *, patient_id: int | None, now: dt.datetime
) -> Appointment:
    appointment = session.get(Appointment, appointment_id, with_for_update=True)
    if appointment is None or (patient_id is not None and appointment.patient_id != patient_id):
        raise BookingRefused("booking.not_found")
    if appointment.status != "booked":
        raise BookingRefused("booking.not_cancellable")
    if appointment.scheduled_at <= now:
        raise BookingRefused("booking.slot_past")
    cutoff = dt.timedelta(hours=get_settings().booking_cutoff_hours)
    if patient_id is not None and appointment.scheduled_at - now < cutoff:
        raise BookingRefused("booking.past_cutoff")
    return appointment


@requires(Privilege.MANAGE_APPOINTMENTS)
def cancel_appointment(
    *, session: Session, actor: Actor, appointment_id: int, reason: str
) -> Appointment:
    """Cancel a booked appointment before it starts; its place returns to the slot."""
    if len(reason.strip()) < 2:
        raise BookingRefused("booking.reason_required")
    if too_long(reason, MAX_REASON):
        raise BookingRefused(TOO_LONG_KEY)
    now = utcnow()
    appointment = _cancellable(session, appointment_id, patient_id=None, now=now)
    _release(session, appointment, reason.strip(), now)
    session.flush()
    audit.record(
        session,
        actor,
        "appointments.cancel",
        patient_id=appointment.patient_id,
        object_type="appointment",
        object_id=appointment.id,
    )
    return appointment


@requires(Privilege.PORTAL_SELF)
def cancel_my_appointment(
    *, session: Session, actor: Actor, appointment_id: int, reason: str
) -> Appointment:
    """A patient cancels their own booking, up to the cut-off before it starts."""
    if too_long(reason, MAX_REASON):
        raise BookingRefused(TOO_LONG_KEY)
    now = utcnow()
    appointment = _cancellable(session, appointment_id, patient_id=actor.patient_id or -1, now=now)
    _release(session, appointment, (reason or "").strip() or "portal", now)
    session.flush()
    audit.record(
        session,
        actor,
        "appointments.cancel",
        patient_id=appointment.patient_id,
        object_type="appointment",
        object_id=appointment.id,
        detail={"channel": "portal"},
    )
    return appointment


@requires(Privilege.MANAGE_APPOINTMENTS)
def reschedule_appointment(
    *, session: Session, actor: Actor, appointment_id: int, slot_id: int
) -> Appointment:
    """Move a booking to another slot in one transaction: the new place, then the old freed."""
    now = utcnow()
    old = _cancellable(session, appointment_id, patient_id=None, now=now)
    new = _book(
        session,
        actor,
        patient_id=old.patient_id,
        slot_id=slot_id,
        channel=old.channel,
        reason=old.reason,
        rescheduled_from_id=old.id,
    )
    _release(session, old, "rescheduled", now)
    session.flush()
    audit.record(
        session,
        actor,
        "appointments.reschedule",
        patient_id=old.patient_id,
        object_type="appointment",
        object_id=new.id,
        detail={"from": old.id, "slot_id": slot_id},
    )
    return new


def mark_no_shows(session: Session, *, now: dt.datetime) -> int:
    """Booked appointments whose slot ended more than the grace period ago become no-shows."""
    grace = dt.timedelta(minutes=get_settings().no_show_grace_minutes)
    ended = select(Slot.id).where(Slot.ends_at < now - grace)
    result = session.execute(
        update(Appointment)
        .where(
            Appointment.status == "booked",
            Appointment.scheduled_at < now - grace,
            (Appointment.slot_id.is_(None)) | Appointment.slot_id.in_(ended),
        )
        .values(status="no_show")
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    if count:
        audit.record(
            session,
            None,
            "appointments.mark_no_shows",
            detail={"count": count},
            username="system",
        )
    return count


@dataclass(frozen=True)
class UpcomingAppointment:
    """A patient's live booking from now on."""

    appointment_id: int
    scheduled_at: dt.datetime  # hospital-local
    department_id: int
    department_zh: str
    department_en: str
    doctor_name: str | None
    status: str
    queue_number: int | None


def _upcoming(session: Session, patient_id: int, now: dt.datetime) -> list[UpcomingAppointment]:
    from cims.org.models import Department

    query = (
        select(Appointment, Department, User.display_name)
        .join(Department, Department.id == Appointment.department_id)
        .outerjoin(User, User.id == Appointment.doctor_id)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.status.in_(("booked", "checked_in")),
            Appointment.scheduled_at >= now - dt.timedelta(hours=12),
        )
        .order_by(Appointment.scheduled_at)
    )
    return [
        UpcomingAppointment(
            appointment_id=appt.id,
            scheduled_at=to_local(appt.scheduled_at) or appt.scheduled_at,
            department_id=dept.id,
            department_zh=dept.name_zh,
            department_en=dept.name_en,
            doctor_name=doctor,
            status=appt.status,
            queue_number=appt.queue_number,
        )
        for appt, dept, doctor in session.execute(query)
    ]


@requires(Privilege.MANAGE_APPOINTMENTS)
def list_patient_appointments(
    *, session: Session, actor: Actor, patient_id: int
) -> list[UpcomingAppointment]:
    """A patient's live bookings from today on (front desk)."""
    rows = _upcoming(session, patient_id, utcnow())
    audit.record(
        session,
        actor,
        "appointments.list_patient",
        patient_id=patient_id,
        object_type="patient",
        object_id=patient_id,
        detail={"rows": len(rows)},
    )
    return rows


@requires(Privilege.PORTAL_SELF)
def list_my_appointments(*, session: Session, actor: Actor) -> list[UpcomingAppointment]:
    """The signed-in patient's live bookings from today on."""
    if actor.patient_id is None:
        return []
    rows = _upcoming(session, actor.patient_id, utcnow())
    audit.record(
        session,
        actor,
        "appointments.list_patient",
        patient_id=actor.patient_id,
        object_type="patient",
        object_id=actor.patient_id,
        detail={"rows": len(rows), "channel": "portal"},
    )
    return rows


@requires(Privilege.PORTAL_SELF)
def list_bookable_departments(*, session: Session, actor: Actor) -> list[tuple[int, str, str]]:
    """Departments a patient can book (id, Chinese and English name)."""
    from cims.org.models import Department

    return [
        (d.id, d.name_zh, d.name_en)
        for d in session.scalars(
            select(Department)
            .where(Department.active, Department.kind == "clinical")
            .order_by(Department.code)
        )
    ]
