"""Clinic scheduling: which doctor, which day and slot, and what became of each appointment.

Patients mostly return to "their" doctor; days move to the doctor's clinic sessions; within
a session bookings spread evenly over the 15-minute slots, so a slot's capacity is what its
busiest day needed. No-shows grow with booking lead time and with the patient's habit;
waiting times shrink over the years (the hospital's efficiency story).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from cims.demo.patients import People
from cims.demo.reasons import FORCE_BOOKED, FORCE_CHECKED_IN, FORCE_NONE, FORCE_SEEN, Intents
from cims.demo.staff import SESSION_SLOTS, SESSION_START_MIN, SLOT_MINUTES, Staff
from cims.demo.vec import (
    DAY,
    MINUTE,
    BoolArray,
    Clock,
    IntArray,
    TimeArray,
    group_rank,
    group_size,
    minutes,
    weekday,
)
from cims.demo.vocab import DEPT_INDEX

BOOKED, CHECKED_IN, SEEN, CANCELLED, NO_SHOW = range(5)  # order of APPOINTMENT_STATUSES
FRONT_DESK, PORTAL, PHONE = range(3)  # order of BOOKING_CHANNELS
LIVE: Final = (BOOKED, CHECKED_IN, SEEN)
SLOT_WINDOW_DAYS: Final = 56  # slots are kept for the last eight weeks and the booked future
CANCEL_REASONS: Final = (
    "患者个人原因 / Personal reasons",
    "症状好转 / Feeling better",
    "时间冲突 / Schedule conflict",
    "医生停诊 / Doctor unavailable",
    "改约 / Rescheduled",
)
RESCHEDULED: Final = len(CANCEL_REASONS) - 1


@dataclass
class Appointments:
    """Appointment rows (index = row; ``ids`` are the database ids)."""

    ids: IntArray
    patient: IntArray
    dept: IntArray
    doctor: IntArray  # position in Staff arrays
    reason: IntArray
    day: NDArray[np.datetime64]
    session: IntArray
    slot_index: IntArray
    status: IntArray
    channel: IntArray
    booked: TimeArray
    scheduled: TimeArray
    arrived: TimeArray
    seen: TimeArray
    cancelled: TimeArray
    cancel_reason: IntArray
    queue: IntArray
    rescheduled_from: IntArray  # row, -1 when none
    forced: IntArray


@dataclass
class Slots:
    """Materialised slots (the eight-week window plus the booked future) and schedules."""

    ids: IntArray
    schedule: IntArray  # row in the schedule arrays
    doctor: IntArray
    starts: TimeArray
    capacity: IntArray
    booked_count: IntArray
    sched_ids: IntArray
    sched_doctor: IntArray
    sched_weekday: IntArray
    sched_session: IntArray
    sched_capacity: IntArray


def _offsets(works_day: BoolArray, step: int) -> IntArray:
    """Days to the next (step=1) or previous (step=-1) working weekday, per doctor x weekday."""
    out = np.full(works_day.shape, 0, np.int64)
    found = np.zeros(works_day.shape, bool)
    for k in range(7):
        shifted = np.roll(works_day, -step * k, axis=1)
        out = np.where(~found & shifted, k, out)
        found |= shifted
    return out


def _choose_doctors(
    intents: Intents, staff: Staff, clinic: IntArray, rng: np.random.Generator
) -> IntArray:
    """Mostly the patient's own doctor in that department; demo patients see the demo doctor."""
    order = np.argsort(staff.doctor_dept, kind="stable")
    sorted_dept = staff.doctor_dept[order]
    start = np.searchsorted(sorted_dept, intents.dept, "left")
    count = np.maximum(np.searchsorted(sorted_dept, intents.dept, "right") - start, 1)
    own = (intents.patient * 2654435761 + intents.dept * 40503) % (1 << 32) % count
    other = rng.integers(0, 1 << 30, len(count)) % count
    doctor = order[start + np.where(rng.random(len(count)) < 0.8, own, other)]
    demo = np.isin(intents.patient, clinic) & (intents.dept == DEPT_INDEX["ENDO"])
    return np.where(demo, staff.demo_doctor, doctor).astype(np.int64)


def schedule(
    intents: Intents,
    people: People,
    staff: Staff,
    clock: Clock,
    rng: np.random.Generator,
    *,
    clinic: IntArray,
    death_day: NDArray[np.datetime64],
) -> Appointments:
    """Turn visit intents into appointments with slots, outcomes, times and queue numbers."""
    today, now = clock.today, clock.now
    last_day = clock.horizon.astype("datetime64[D]") - 1
    doctor = _choose_doctors(intents, staff, clinic, rng)
    works_day: BoolArray = np.asarray(staff.works.any(axis=2), bool)
    forced = intents.forced
    wd = weekday(intents.day)
    ahead = intents.day + _offsets(works_day, 1)[doctor, wd].astype("m8[D]")
    back = intents.day - _offsets(works_day, -1)[doctor, wd].astype("m8[D]")
    day = np.where(ahead > last_day, back, ahead)
    day = np.where((forced == FORCE_SEEN) & (intents.day < today), back, day)
    day = np.where(
        np.isin(forced, [FORCE_SEEN, FORCE_CHECKED_IN, FORCE_BOOKED]) & (intents.day == today),
        intents.day,
        day,
    )
    died = death_day[intents.patient]
    keep = (forced != FORCE_NONE) | (
        ~((doctor == staff.demo_doctor) & (day == today)) & (np.isnat(died) | (day < died))
    )
    wd = weekday(day)
    am, pm = staff.works[doctor, wd, 0], staff.works[doctor, wd, 1]
    session = np.where(am & pm, (rng.random(len(day)) < 0.4).astype(np.int64), np.where(am, 0, 1))
    session = np.where(forced != FORCE_NONE, np.where(am, 0, session), session)

    # Booking lead time: chronic follow-ups are booked ahead, acute visits mostly same day.
    n = len(day)
    u = rng.random(n)
    lead = np.where(
        intents.chronic,
        np.where(u < 0.25, 0, 1 + np.minimum(rng.exponential(8, n), 59)),
        np.where(u < 0.65, 0, 1 + np.minimum(rng.exponential(2, n), 13)),
    ).astype(np.int64)
    lead = np.where(
        forced != FORCE_NONE, np.maximum(lead, (day - today).astype(np.int64) + 1), lead
    )
    lead = np.where(np.isin(forced, [FORCE_SEEN, FORCE_CHECKED_IN]), np.maximum(lead, 1), lead)
    session_start = day.astype("datetime64[s]") + minutes(np.array(SESSION_START_MIN)[session])
    booked = np.where(
        lead == 0,
        session_start - minutes(rng.uniform(10, 120, n)),
        (day - lead.astype("m8[D]")).astype("datetime64[s]") + minutes(rng.uniform(480, 1320, n)),
    )
    keep &= booked <= now
    # One visit per patient, department and day (two wishes may land on the same clinic day).
    first_of_day = group_rank(
        [intents.patient, intents.dept, day.astype(np.int64)], np.where(forced != FORCE_NONE, 0, 1)
    )
    keep &= (first_of_day == 0) | (forced != FORCE_NONE)
    years = clock.years_since_start(day.astype("datetime64[s]"))
    portal_share = 0.35 + 0.06 * years
    u = rng.random(n)
    channel = np.where(
        lead == 0,
        np.where(u < 0.85, FRONT_DESK, np.where(u < 0.95, PORTAL, PHONE)),
        np.where(u < portal_share, PORTAL, np.where(u < portal_share + 0.2, PHONE, FRONT_DESK)),
    )
    sel = np.flatnonzero(keep)
    patient, dept, reason = intents.patient[sel], intents.dept[sel], intents.reason[sel]
    doctor, day, session, lead = doctor[sel], day[sel], session[sel], lead[sel]
    booked, channel, forced = booked[sel], channel[sel], forced[sel]
    chronic, session_start, years = intents.chronic[sel], session_start[sel], years[sel]
    n = len(sel)

    # Spread each session's bookings evenly over its slots (forced scenes in their order).
    keys = [doctor, day.astype(np.int64), session]
    order_key = np.where(forced != FORCE_NONE, forced, 3) + rng.random(n) * 0.5
    rank = group_rank(keys, order_key)
    size = group_size(keys)
    n_slots = np.array(SESSION_SLOTS)[session]
    slot_index = rank * n_slots // size
    scheduled = session_start + slot_index * SLOT_MINUTES * MINUTE

    # What happened: cancellations, no-shows, arrival, waiting and being seen.
    age = people.age_at(day, patient)
    propensity = rng.normal(0.0, 0.9, people.n)[patient]
    logit = -3.4 + 0.5 * np.log1p(lead) + propensity + 0.35 * (age < 30) - 0.25 * chronic
    p_no_show = np.where((lead == 0) & (channel == FRONT_DESK), 0.003, 1 / (1 + np.exp(-logit)))
    p_cancel = 0.02 + 0.03 * np.minimum(lead, 30) / 30
    cancel_at = booked + ((scheduled - booked).astype(np.float64) * rng.random(n)).astype("m8[s]")
    cancelled = (rng.random(n) < p_cancel) & (forced == FORCE_NONE) & (cancel_at <= now)
    late = rng.random(n) < 0.2
    arrived = scheduled + minutes(np.where(late, rng.uniform(0, 15, n), -rng.uniform(0, 25, n)))
    mean_wait = 36.0 - 2.4 * years  # about 30% shorter at the end of the five years
    wait = np.maximum(rng.gamma(2.0, mean_wait / 2.0), 3.0)
    seen = np.maximum(arrived, scheduled - 5 * MINUTE) + minutes(wait)
    past = scheduled + 60 * MINUTE < now
    no_show = past & ~cancelled & (rng.random(n) < p_no_show) & (forced == FORCE_NONE)
    status = np.full(n, BOOKED, np.int64)
    status = np.where(arrived <= now, np.where(seen <= now, SEEN, CHECKED_IN), status)
    status = np.where(no_show, NO_SHOW, status)
    status = np.where(cancelled, CANCELLED, status)
    # The demo doctor's clinic this morning: three seen, two waiting, the rest still to come.
    f_seen, f_wait = forced == FORCE_SEEN, forced == FORCE_CHECKED_IN
    arrived = np.where(
        f_seen | f_wait,
        np.minimum(scheduled - minutes(rng.uniform(5, 15, n)), now - 5 * MINUTE),
        arrived,
    )
    seen = np.where(
        f_seen, np.minimum(scheduled + minutes(rng.uniform(0, 8, n)), now - MINUTE), seen
    )
    status = np.where(
        f_seen, SEEN, np.where(f_wait, CHECKED_IN, np.where(forced == FORCE_BOOKED, BOOKED, status))
    )
    cancel_reason = np.where(status == CANCELLED, rng.integers(0, RESCHEDULED, n), -1)

    appts = Appointments(
        ids=np.zeros(n, np.int64), patient=patient, dept=dept, doctor=doctor, reason=reason,
        day=day, session=session, slot_index=slot_index, status=status, channel=channel,
        booked=booked, scheduled=scheduled,
        arrived=np.where(np.isin(status, [CHECKED_IN, SEEN]), arrived, np.datetime64("NaT")),
        seen=np.where(status == SEEN, seen, np.datetime64("NaT")),
        cancelled=np.where(status == CANCELLED, cancel_at, np.datetime64("NaT")),
        cancel_reason=cancel_reason, queue=np.full(n, -1), rescheduled_from=np.full(n, -1),
        forced=forced,
    )  # fmt: skip
    appts = _add_reschedules(appts, lead, rng)
    _assign_queue(appts)
    return appts


def _add_reschedules(a: Appointments, lead: IntArray, rng: np.random.Generator) -> Appointments:
    """Some appointments replace an earlier booking a week before that the patient cancelled."""
    pick = (a.forced == FORCE_NONE) & np.isin(a.status, [SEEN, BOOKED]) & (lead >= 8)
    pick &= rng.random(len(lead)) < 0.05
    src = np.flatnonzero(pick)
    m = len(src)
    booked = a.booked[src] - minutes(rng.uniform(1440, 7200, m))
    cancelled = booked + ((a.booked[src] - booked).astype(np.float64) * rng.random(m)).astype(
        "m8[s]"
    )
    nat = np.full(m, np.datetime64("NaT"), "datetime64[s]")

    def cat(x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
        return np.concatenate([x, y])

    out = Appointments(
        ids=np.zeros(len(lead) + m, np.int64), patient=cat(a.patient, a.patient[src]),
        dept=cat(a.dept, a.dept[src]), doctor=cat(a.doctor, a.doctor[src]),
        reason=cat(a.reason, a.reason[src]), day=cat(a.day, a.day[src] - 7),
        session=cat(a.session, a.session[src]), slot_index=cat(a.slot_index, a.slot_index[src]),
        status=cat(a.status, np.full(m, CANCELLED)), channel=cat(a.channel, a.channel[src]),
        booked=cat(a.booked, booked), scheduled=cat(a.scheduled, a.scheduled[src] - 7 * DAY),
        arrived=cat(a.arrived, nat), seen=cat(a.seen, nat), cancelled=cat(a.cancelled, cancelled),
        cancel_reason=cat(a.cancel_reason, np.full(m, RESCHEDULED)),
        queue=cat(a.queue, np.full(m, -1)),
        rescheduled_from=cat(a.rescheduled_from, np.full(m, -1)),
        forced=cat(a.forced, np.full(m, FORCE_NONE)),
    )  # fmt: skip
    out.rescheduled_from[src] = len(lead) + np.arange(m)
    return out


def _assign_queue(a: Appointments) -> None:
    """Queue numbers by arrival, unique per department and day, for checked-in patients."""
    arrived = np.isin(a.status, [CHECKED_IN, SEEN])
    rows = np.flatnonzero(arrived)
    rank = group_rank(
        [a.dept[rows], a.day[rows].astype(np.int64)], a.arrived[rows].astype(np.int64)
    )
    a.queue[rows] = rank + 1


def number(a: Appointments, offset: int) -> None:
    """Give appointment rows database ids in booking order."""
    order = np.argsort(a.booked, kind="stable")
    a.ids[order] = offset + 1 + np.arange(len(order))


def build_slots(
    a: Appointments, staff: Staff, clock: Clock, *, slot_offset: int, schedule_offset: int
) -> tuple[Slots, IntArray]:
    """Schedules, the materialised slots and each appointment's slot id (0 = none)."""
    d = len(staff.doctor_id)
    sched = np.argwhere(staff.works)  # (doctor, weekday, session), lexicographic
    sched_pos = np.full(staff.works.shape, -1, np.int64)
    sched_pos[sched[:, 0], sched[:, 1], sched[:, 2]] = np.arange(len(sched))
    # Capacity: what the busiest session of each weekly session needed.
    need = np.zeros(staff.works.shape, np.int64)
    counts = group_size([a.doctor, a.day.astype(np.int64), a.session])
    per_slot = -(-counts // np.array(SESSION_SLOTS)[a.session])
    np.maximum.at(need, (a.doctor, weekday(a.day), a.session), per_slot)
    capacity = np.maximum(need[sched[:, 0], sched[:, 1], sched[:, 2]], 1)

    first = clock.today - SLOT_WINDOW_DAYS
    n_days = int((clock.horizon.astype("datetime64[D]") - first).astype(np.int64))
    days = first + np.arange(n_days).astype("m8[D]")
    grid = staff.works[:, weekday(days), :].transpose(1, 0, 2)  # day x doctor x session
    g_day, g_doc, g_ses = np.nonzero(grid)
    per = np.array(SESSION_SLOTS)[g_ses]
    rep = np.repeat(np.arange(len(g_day)), per)
    index = np.arange(len(rep)) - np.repeat(np.cumsum(per) - per, per)
    s_day, s_doc, s_ses = g_day[rep], g_doc[rep], g_ses[rep]
    slot_key = ((s_day * d + s_doc) * 2 + s_ses) * 16 + index
    starts = (
        days[s_day].astype("datetime64[s]")
        + minutes(np.array(SESSION_START_MIN)[s_ses])
        + index * SLOT_MINUTES * MINUTE
    )
    ids = slot_offset + 1 + np.arange(len(rep))

    a_day = (a.day - first).astype(np.int64)
    inside = (a_day >= 0) & (a_day < n_days)
    a_key = ((a_day * d + a.doctor) * 2 + a.session) * 16 + a.slot_index
    pos = np.searchsorted(slot_key, a_key)
    pos = np.minimum(pos, max(len(slot_key) - 1, 0))
    found = inside & (len(slot_key) > 0)
    found &= slot_key[pos] == a_key if len(slot_key) else found
    slot_id = np.where(found, ids[pos] if len(ids) else 0, 0)
    live = found & np.isin(a.status, LIVE)
    booked_count = np.bincount(pos[live], minlength=len(rep))
    sched_of_slot = sched_pos[s_doc, weekday(days[s_day]), s_ses]
    slots = Slots(
        ids=ids, schedule=sched_of_slot, doctor=s_doc, starts=starts,
        capacity=capacity[sched_of_slot], booked_count=booked_count,
        sched_ids=schedule_offset + 1 + np.arange(len(sched)), sched_doctor=sched[:, 0],
        sched_weekday=sched[:, 1], sched_session=sched[:, 2], sched_capacity=capacity,
    )  # fmt: skip
    return slots, slot_id
