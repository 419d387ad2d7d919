"""Encounters, wards and beds, bed assignments, diagnoses, problems and allergies."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from cims.demo import copyload as cl
from cims.demo.activity import Activity
from cims.demo.patients import People
from cims.demo.reasons import ER, INP, OUT, R_ACUTE, R_NEWBORN, REASON_INDEX, REASONS, reason_dept
from cims.demo.scheduling import SEEN, Appointments
from cims.demo.staff import Staff
from cims.demo.vec import HOUR, BoolArray, Clock, IntArray, TimeArray, minutes, repeat_index
from cims.demo.vocab import ALLERGENS, CHRONIC, DEPARTMENTS, DEPT_INDEX, REACTIONS, WARD_DEPTS
from cims.records.models import DISPOSITIONS

HOME, ADMITTED, TRANSFERRED, REFERRED, DECEASED, LEFT = range(6)  # order of DISPOSITIONS
BEDS_PER_WARD: Final = 40
_CN_NUMBERS: Final = "一二三四五六七八九十"
_RESOLVING: Final = ("PNEU", "APPY", "CHOLE", "HERNIA", "HIPFX", "DELIV", "CSEC")


@dataclass
class Encounters:
    """All encounters in time order (row = id - offset - 1)."""

    ids: IntArray
    kind: IntArray
    patient: IntArray
    dept: IntArray
    doctor: IntArray  # user id
    reason: IntArray
    start: TimeArray
    end: TimeArray  # NaT while open
    disposition: IntArray
    appointment: IntArray  # appointment row, -1 when none
    stay: IntArray  # row in activity.stays, -1 when not inpatient

    @property
    def open(self) -> BoolArray:
        """Encounters still under way (current admissions)."""
        return np.isnat(self.end)


def _pick_doctor(dept: IntArray, staff: Staff, rng: np.random.Generator) -> IntArray:
    """A random doctor (user id) of each row's department."""
    order = np.argsort(staff.doctor_dept, kind="stable")
    sorted_dept = staff.doctor_dept[order]
    start = np.searchsorted(sorted_dept, dept, "left")
    count = np.maximum(np.searchsorted(sorted_dept, dept, "right") - start, 1)
    pos = order[np.minimum(start + rng.integers(0, 1 << 30, len(dept)) % count, len(order) - 1)]
    ids: IntArray = staff.doctor_id[pos]
    return ids


def build_encounters(
    act: Activity,
    appts: Appointments,
    people: People,
    staff: Staff,
    clock: Clock,
    rng: np.random.Generator,
    offset: int,
) -> Encounters:
    """Outpatient visits (seen appointments), emergency visits and admissions, in time order."""
    seen = np.flatnonzero(appts.status == SEEN)
    o_end = np.minimum(appts.seen[seen] + minutes(rng.uniform(6, 18, len(seen))), clock.now)
    o_disp = np.where(rng.random(len(seen)) < 0.02, REFERRED, HOME)
    er = act.er
    er_disp = np.array([HOME, ADMITTED, TRANSFERRED, LEFT])[er.outcome]
    st = act.stays
    s_dept = reason_dept(st.reason, people.age_at(st.start, st.patient) < 14)
    s_disp = np.where(
        st.deceased, DECEASED, np.where(rng.random(len(st.patient)) < 0.02, TRANSFERRED, HOME)
    )
    s_disp = np.where(np.isnat(st.end), -1, s_disp)
    n_o, n_e, n_s = len(seen), len(er.patient), len(st.patient)
    kind = np.concatenate([np.full(n_o, OUT), np.full(n_e, ER), np.full(n_s, INP)])
    dept = np.concatenate([appts.dept[seen], np.full(n_e, DEPT_INDEX["ER"]), s_dept])
    doctor = np.concatenate(
        [
            staff.doctor_id[appts.doctor[seen]],
            _pick_doctor(np.full(n_e, DEPT_INDEX["ER"]), staff, rng),
            _pick_doctor(s_dept, staff, rng),
        ]
    )
    start = np.concatenate([appts.seen[seen], er.start, st.start])
    order = np.argsort(start, kind="stable")

    def o(x: NDArray[Any]) -> NDArray[Any]:
        return x[order]

    return Encounters(
        ids=offset + 1 + np.arange(len(order)),
        kind=o(kind),
        patient=o(np.concatenate([appts.patient[seen], er.patient, st.patient])),
        dept=o(dept),
        doctor=o(doctor),
        reason=o(np.concatenate([appts.reason[seen], er.reason, st.reason])),
        start=o(start),
        end=o(np.concatenate([o_end, er.end, st.end])),
        disposition=o(np.concatenate([o_disp, er_disp, s_disp])),
        appointment=o(np.concatenate([seen, np.full(n_e + n_s, -1)])),
        stay=o(np.concatenate([np.full(n_o + n_e, -1), np.arange(n_s)])),
    )


def encounters_table(e: Encounters, appts: Appointments, dept_ids: IntArray, clock: Clock) -> Any:
    """The encounters COPY table."""
    has_appt = e.appointment >= 0
    return cl.table(
        {
            "id": cl.ints(e.ids),
            "patient_id": cl.ints(e.patient + 1),
            "encounter_type": cl.labels(e.kind, ("outpatient", "inpatient", "emergency")),
            "department_id": cl.ints(dept_ids[e.dept]),
            "attending_id": cl.ints(e.doctor),
            "appointment_id": cl.ints(
                np.where(has_appt, appts.ids[np.maximum(e.appointment, 0)], 0), mask=~has_appt
            ),
            "started_at": cl.times(clock, e.start),
            "ended_at": cl.times(clock, e.end),
            "chief_complaint": cl.labels(e.reason, [r.complaint for r in REASONS]),
            "disposition": cl.labels(
                np.where(e.disposition < 0, len(DISPOSITIONS), e.disposition), (*DISPOSITIONS, None)
            ),
            "status": cl.labels(e.open.astype(np.int64), ("closed", "open")),
            "created_at": cl.times(clock, e.start),
            "created_by_id": cl.ints(e.doctor),
        }
    )


@dataclass
class Beds:
    """Wards and beds sized to the busiest day, and each stay's bed."""

    ward_dept: IntArray
    ward_no: IntArray
    bed_ward: IntArray
    bed_no: IntArray
    enc_rows: IntArray  # encounters holding a bed
    bed_of: IntArray  # bed row per enc_rows


def assign_beds(e: Encounters) -> Beds:
    """Interval partitioning per department: a bed is reused once its last patient has left."""
    rows = np.flatnonzero((e.kind == INP) & (e.reason != R_NEWBORN))
    bed_of = np.zeros(len(rows), np.int64)
    ward_dept: list[int] = []
    ward_no: list[int] = []
    bed_ward: list[int] = []
    bed_no: list[int] = []
    start = e.start[rows].astype(np.int64)
    end = np.where(
        np.isnat(e.end[rows]), np.iinfo(np.int64).max, e.end[rows].astype(np.int64) + 7200
    )
    for code in WARD_DEPTS:
        d = DEPT_INDEX[code]
        mine = np.flatnonzero(e.dept[rows] == d)
        free: list[tuple[int, int]] = []
        used = 0
        local = np.zeros(len(mine), np.int64)
        for k, (s, f) in enumerate(zip(start[mine].tolist(), end[mine].tolist(), strict=True)):
            if free and free[0][0] <= s:
                _, bed = heapq.heapreplace(free, (f, free[0][1]))
            else:
                bed = used
                used += 1
                heapq.heappush(free, (f, bed))
            local[k] = bed
        total = max(8, used + -(-used * 15 // 100))  # spare beds on top of the busiest day
        first_bed = len(bed_no)
        for b in range(total):
            if b % BEDS_PER_WARD == 0:
                ward_dept.append(d)
                ward_no.append(b // BEDS_PER_WARD)
            bed_ward.append(len(ward_dept) - 1)
            bed_no.append(b % BEDS_PER_WARD + 1)
        bed_of[mine] = first_bed + local
    return Beds(
        np.array(ward_dept), np.array(ward_no), np.array(bed_ward), np.array(bed_no), rows, bed_of
    )


def bed_tables(
    beds: Beds,
    e: Encounters,
    dept_ids: IntArray,
    clock: Clock,
    *,
    ward_offset: int,
    bed_offset: int,
    assignment_offset: int,
) -> tuple[Any, Any, Any]:
    """COPY tables for wards, beds and bed assignments."""
    n_w, n_b, n_a = len(beds.ward_dept), len(beds.bed_ward), len(beds.enc_rows)
    zh = [
        f"{DEPARTMENTS[d].zh}{_CN_NUMBERS[k % 10]}病区"
        for d, k in zip(beds.ward_dept.tolist(), beds.ward_no.tolist(), strict=True)
    ]
    en = [
        f"{DEPARTMENTS[d].en} Ward {k + 1}"
        for d, k in zip(beds.ward_dept.tolist(), beds.ward_no.tolist(), strict=True)
    ]
    codes = [
        f"{DEPARTMENTS[d].code}-{k + 1}"
        for d, k in zip(beds.ward_dept.tolist(), beds.ward_no.tolist(), strict=True)
    ]
    wards = cl.table(
        {
            "id": cl.ints(ward_offset + 1 + np.arange(n_w)),
            "code": cl.texts(codes),
            "name_zh": cl.texts(zh),
            "name_en": cl.texts(en),
            "department_id": cl.ints(dept_ids[beds.ward_dept]),
        }
    )
    bed_tbl = cl.table(
        {
            "id": cl.ints(bed_offset + 1 + np.arange(n_b)),
            "ward_id": cl.ints(ward_offset + 1 + beds.bed_ward),
            "code": cl.texts([f"{n:02d}" for n in beds.bed_no.tolist()]),
        }
    )
    rows = beds.enc_rows
    assignments = cl.table(
        {
            "id": cl.ints(assignment_offset + 1 + np.arange(n_a)),
            "encounter_id": cl.ints(e.ids[rows]),
            "patient_id": cl.ints(e.patient[rows] + 1),
            "bed_id": cl.ints(bed_offset + 1 + beds.bed_of),
            "start_at": cl.times(clock, e.start[rows]),
            "end_at": cl.times(clock, e.end[rows]),
            "reason": cl.const("admit", n_a),
            "created_at": cl.times(clock, e.start[rows]),
        }
    )
    return wards, bed_tbl, assignments


def diagnoses_table(
    e: Encounters, act: Activity, clock: Clock, rng: np.random.Generator, offset: int
) -> Any:
    """Primary diagnosis per encounter plus the patient's active chronic conditions."""
    n = len(e.ids)
    day = e.start.astype("datetime64[D]")
    active = act.has[e.patient] & (act.onset[e.patient] <= day[:, None])
    own = np.where(e.reason < R_ACUTE, e.reason, -1)
    active[np.flatnonzero(own >= 0), own[own >= 0]] = False
    take = np.zeros_like(active)
    inpatient = e.kind == INP
    take[inpatient] = active[inpatient] & (np.cumsum(active[inpatient], axis=1) <= 3)
    chronic_visit = (e.kind == OUT) & (own >= 0) & (rng.random(n) < 0.25)
    first_other = np.argmax(active, axis=1)
    rows = np.flatnonzero(chronic_visit & active.any(axis=1))
    take[rows, first_other[rows]] = True
    s_enc, s_cond = np.nonzero(take)
    enc = np.concatenate([np.arange(n), s_enc])
    vocab = [*REASONS, *(c.reason for c in CHRONIC)]
    code = np.concatenate([e.reason, len(REASONS) + s_cond])
    m = len(enc)
    when = e.start[enc] + minutes(rng.uniform(5, 40, m))
    return cl.table(
        {
            "id": cl.ints(offset + 1 + np.arange(m)),
            "patient_id": cl.ints(e.patient[enc] + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "code_system": cl.const("ICD-10", m),
            "code": cl.labels(code, [r.icd for r in vocab]),
            "description": cl.labels(code, [r.name for r in vocab]),
            "rank": cl.labels((np.arange(m) >= n).astype(np.int64), ("primary", "secondary")),
            "diagnosed_at": cl.times(clock, when),
            "diagnosed_by_id": cl.ints(e.doctor[enc]),
            "created_at": cl.times(clock, when),
            "created_by_id": cl.ints(e.doctor[enc]),
        }
    )


def problems_table(e: Encounters, act: Activity, clock: Clock, offset: int) -> Any:
    """Problem list: every chronic condition, plus acute admissions that have resolved."""
    p, c = np.nonzero(act.has)
    resolving = np.isin(e.reason, [REASON_INDEX[k] for k in _RESOLVING]) & ~e.open
    rows = np.flatnonzero(resolving)
    vocab = [*(ch.reason for ch in CHRONIC), *REASONS]
    code = np.concatenate([c, len(CHRONIC) + e.reason[rows]])
    patient = np.concatenate([p, e.patient[rows]])
    onset = np.concatenate([act.onset[p, c], e.start[rows].astype("datetime64[D]")])
    resolved = np.concatenate(
        [
            np.full(len(p), np.datetime64("NaT"), "datetime64[D]"),
            e.end[rows].astype("datetime64[D]"),
        ]
    )
    m = len(code)
    noted = np.maximum(onset, clock.history_start).astype("datetime64[s]") + 10 * HOUR
    return cl.table(
        {
            "id": cl.ints(offset + 1 + np.arange(m)),
            "patient_id": cl.ints(patient + 1),
            "code_system": cl.const("ICD-10", m),
            "code": cl.labels(code, [r.icd for r in vocab]),
            "description": cl.labels(code, [r.name for r in vocab]),
            "onset_date": cl.dates(onset),
            "resolved_date": cl.dates(resolved),
            "status": cl.labels(np.isnat(resolved).astype(np.int64), ("resolved", "active")),
            "created_at": cl.times(clock, noted),
        }
    )


def allergies_table(
    people: People, registered: TimeArray, clock: Clock, rng: np.random.Generator, offset: int
) -> Any:
    """About one patient in ten has a recorded allergy, a few have two."""
    n = people.n
    ordinary = ~people.newborn & ~people.unidentified
    k = np.where(ordinary & (rng.random(n) < 0.10), 1 + (rng.random(n) < 0.15), 0)
    patient = repeat_index(k)
    m = len(patient)
    weights = np.array([a[2] for a in ALLERGENS], np.float64)
    substance = rng.choice(len(ALLERGENS), size=m, p=weights / weights.sum())
    reaction = rng.choice(len(REACTIONS), size=m, p=[0.45, 0.3, 0.1, 0.05, 0.1])
    severity = np.array([1, 1, 2, 2, 0])[reaction]  # mild / moderate / severe by reaction
    status = rng.choice(3, size=m, p=[0.9, 0.07, 0.03])
    noted = np.minimum(registered[patient] + minutes(rng.uniform(5, 60 * 24 * 30, m)), clock.now)
    return cl.table(
        {
            "id": cl.ints(offset + 1 + np.arange(m)),
            "patient_id": cl.ints(patient + 1),
            "substance": cl.labels(substance, [a[0] for a in ALLERGENS]),
            "substance_code": cl.labels(substance, [a[1] for a in ALLERGENS]),
            "reaction": cl.labels(reaction, REACTIONS),
            "severity": cl.labels(severity, ("mild", "moderate", "severe")),
            "status": cl.labels(status, ("active", "inactive", "refuted")),
            "noted_at": cl.times(clock, noted),
            "created_at": cl.times(clock, noted),
        }
    )
