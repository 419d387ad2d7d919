"""COPY tables for doctor schedules, slots and appointments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from cims.appointments.models import APPOINTMENT_STATUSES, BOOKING_CHANNELS
from cims.demo import copyload as cl
from cims.demo.reasons import REASONS
from cims.demo.scheduling import CANCEL_REASONS, FRONT_DESK, PHONE, Appointments, Slots
from cims.demo.staff import SESSION_SLOTS, SESSION_START_MIN, SLOT_MINUTES, Staff
from cims.demo.vec import MINUTE, Clock, IntArray, TimeArray


def _clock_times(minutes_after_midnight: IntArray) -> Any:
    """time column from minutes after midnight."""
    seconds = (np.asarray(minutes_after_midnight, np.int64) * 60).astype(np.int32)
    return pa.array(seconds, pa.int32()).cast(pa.time32("s"))


def schedules_table(s: Slots, staff: Staff, dept_ids: IntArray, clock: Clock) -> Any:
    """One row per weekly clinic session of each doctor."""
    m = len(s.sched_ids)
    start = np.array(SESSION_START_MIN)[s.sched_session]
    length = np.array(SESSION_SLOTS)[s.sched_session] * SLOT_MINUTES
    since = np.full(m, clock.history_start)
    return cl.table(
        {
            "id": cl.ints(s.sched_ids),
            "doctor_id": cl.ints(staff.doctor_id[s.sched_doctor]),
            "department_id": cl.ints(dept_ids[staff.doctor_dept[s.sched_doctor]]),
            "weekday": cl.ints(s.sched_weekday),
            "session": cl.labels(s.sched_session, ("am", "pm")),
            "start_time": _clock_times(start),
            "end_time": _clock_times(start + length),
            "slot_minutes": cl.ints(np.full(m, SLOT_MINUTES)),
            "capacity": cl.ints(s.sched_capacity),
            "valid_from": cl.dates(since),
            "active": cl.bools(np.ones(m, bool)),
            "created_at": cl.times(clock, since.astype("datetime64[s]")),
        }
    )


def slots_table(s: Slots, staff: Staff, dept_ids: IntArray, clock: Clock) -> Any:
    """Materialised 15-minute slots; past ones are closed to booking."""
    return cl.table(
        {
            "id": cl.ints(s.ids),
            "schedule_id": cl.ints(s.sched_ids[s.schedule]),
            "doctor_id": cl.ints(staff.doctor_id[s.doctor]),
            "department_id": cl.ints(dept_ids[staff.doctor_dept[s.doctor]]),
            "starts_at": cl.times(clock, s.starts),
            "ends_at": cl.times(clock, s.starts + SLOT_MINUTES * MINUTE),
            "capacity": cl.ints(s.capacity),
            "booked_count": cl.ints(s.booked_count),
            "status": cl.labels((s.starts >= clock.now).astype(np.int64), ("closed", "open")),
        }
    )


def appointments_table(
    a: Appointments,
    slot_id: IntArray,
    staff: Staff,
    dept_ids: IntArray,
    clock: Clock,
    rng: np.random.Generator,
) -> Any:
    """Appointments with their outcome times, queue numbers and reschedule links."""
    n = len(a.ids)
    queued = a.queue > 0
    moved = a.rescheduled_from >= 0
    clerk = np.isin(a.channel, [FRONT_DESK, PHONE]) & (len(staff.registrar_id) > 0)
    registrar = (
        staff.registrar_id[rng.integers(0, max(len(staff.registrar_id), 1), n)]
        if len(staff.registrar_id)
        else np.zeros(n, np.int64)
    )
    reason_code = np.where(a.cancel_reason >= 0, a.cancel_reason, len(CANCEL_REASONS))
    return cl.table(
        {
            "id": cl.ints(a.ids),
            "patient_id": cl.ints(a.patient + 1),
            "slot_id": cl.ints(slot_id, mask=slot_id == 0),
            "department_id": cl.ints(dept_ids[a.dept]),
            "doctor_id": cl.ints(staff.doctor_id[a.doctor]),
            "status": cl.labels(a.status, APPOINTMENT_STATUSES),
            "channel": cl.labels(a.channel, BOOKING_CHANNELS),
            "booked_at": cl.times(clock, a.booked),
            "scheduled_at": cl.times(clock, a.scheduled),
            "checked_in_at": cl.times(clock, a.arrived),
            "seen_at": cl.times(clock, a.seen),
            "cancelled_at": cl.times(clock, a.cancelled),
            "cancel_reason": cl.labels(reason_code, (*CANCEL_REASONS, None)),
            "queue_date": cl.dates(a.day, mask=~queued),
            "queue_number": cl.ints(a.queue, mask=~queued),
            "rescheduled_from_id": cl.ints(a.ids[np.maximum(a.rescheduled_from, 0)], mask=~moved),
            "reason": cl.labels(a.reason, [r.complaint for r in REASONS]),
            "created_at": cl.times(clock, a.booked),
            "created_by_id": cl.ints(registrar, mask=~clerk),
        }
    )


def first_contact(a: Appointments, times: TimeArray, patients: IntArray, n: int) -> TimeArray:
    """Earliest booking or encounter per patient (NaT when none)."""
    big = np.datetime64("2300-01-01T00:00:00")
    first = np.full(n, big, "datetime64[s]")
    np.minimum.at(first, a.patient, a.booked.astype("datetime64[s]"))
    np.minimum.at(first, patients, times.astype("datetime64[s]"))
    out: TimeArray = np.where(first == big, np.datetime64("NaT"), first)
    return out
