"""Scheduling: doctor schedules, bookable slots and appointments with queue numbers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, SmallInteger, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cims.base import Base, Tracked, fk, one_of, pk

APPOINTMENT_STATUSES = ("booked", "checked_in", "seen", "cancelled", "no_show")
BOOKING_CHANNELS = ("front_desk", "portal", "phone", "consultation")


class DoctorSchedule(Tracked, Base):
    """A recurring clinic session of a doctor (weekday, half-day, capacity)."""

    __tablename__ = "doctor_schedules"
    __table_args__ = (
        one_of("session", ("am", "pm", "evening")),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("capacity > 0 AND slot_minutes > 0", name="positive_capacity"),
    )

    id: Mapped[int] = pk()
    doctor_id: Mapped[int] = fk("users.id", nullable=False, index=True)
    department_id: Mapped[int] = fk("departments.id", nullable=False, index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    session: Mapped[str]
    start_time: Mapped[dt.time]
    end_time: Mapped[dt.time]
    slot_minutes: Mapped[int] = mapped_column(default=15)
    capacity: Mapped[int] = mapped_column(default=1)  # patients per slot
    valid_from: Mapped[dt.date]
    valid_to: Mapped[dt.date | None]
    active: Mapped[bool] = mapped_column(default=True, server_default="true")


class Slot(Base):
    """A bookable time generated from a schedule; booked_count never exceeds capacity."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("doctor_id", "starts_at"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="not_overbooked"),
        one_of("status", ("open", "closed", "cancelled")),
        Index("ix_slots_department_time", "department_id", "starts_at"),
    )

    id: Mapped[int] = pk()
    schedule_id: Mapped[int | None] = fk("doctor_schedules.id", index=True)
    doctor_id: Mapped[int] = fk("users.id", nullable=False)
    department_id: Mapped[int] = fk("departments.id", nullable=False)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    capacity: Mapped[int] = mapped_column(default=1)
    booked_count: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[str] = mapped_column(default="open")


class Appointment(Tracked, Base):
    """A booking of a patient into a slot, through check-in (queue number) to seen/no-show."""

    __tablename__ = "appointments"
    __table_args__ = (
        one_of("status", APPOINTMENT_STATUSES),
        one_of("channel", BOOKING_CHANNELS),
        Index("ix_appointments_patient_time", "patient_id", "scheduled_at"),
        Index("ix_appointments_doctor_time", "doctor_id", "scheduled_at"),
        Index("ix_appointments_department_time", "department_id", "scheduled_at"),
        # One live booking per patient per slot.
        Index(
            "uq_appointments_patient_slot_live",
            "patient_id",
            "slot_id",
            unique=True,
            postgresql_where="status IN ('booked','checked_in','seen')",
        ),
        # Queue numbers are unique per department and day.
        Index(
            "uq_appointments_queue",
            "department_id",
            "queue_date",
            "queue_number",
            unique=True,
            postgresql_where="queue_number IS NOT NULL",
        ),
    )

    id: Mapped[int] = pk()
    patient_id: Mapped[int] = fk("patients.id", nullable=False)
    slot_id: Mapped[int | None] = fk("slots.id", index=True)
    department_id: Mapped[int] = fk("departments.id", nullable=False)
    doctor_id: Mapped[int | None] = fk("users.id")
    status: Mapped[str] = mapped_column(default="booked")
    channel: Mapped[str] = mapped_column(default="front_desk")
    booked_at: Mapped[dt.datetime]
    scheduled_at: Mapped[dt.datetime]
    checked_in_at: Mapped[dt.datetime | None]
    seen_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    cancel_reason: Mapped[str | None]
    queue_date: Mapped[dt.date | None]
    queue_number: Mapped[int | None]
    rescheduled_from_id: Mapped[int | None] = fk("appointments.id")
    reason: Mapped[str | None]
