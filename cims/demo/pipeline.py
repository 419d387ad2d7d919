"""Generate the per-patient tables in foreign-key order and hand each to the COPY loader.

Tables are built one after another on the main thread while the loader's writer thread
streams the previous one into PostgreSQL, so generation and loading overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cims.demo import billing, bookings, encounters, engagement, notes, observations, orders
from cims.demo.activity import Activity
from cims.demo.audit_history import AuditHistory
from cims.demo.copyload import BulkLoader
from cims.demo.encounters import Encounters
from cims.demo.patients import People, patients_table, with_planted_duplicates
from cims.demo.reference import Reference
from cims.demo.scheduling import Appointments, build_slots, number
from cims.demo.staff import Staff
from cims.demo.vec import HOUR, Clock, TimeArray, minutes, stream
from cims.security.crypto import FieldCipher


def registration_times(
    people: People,
    act: Activity,
    appts: Appointments,
    e: Encounters,
    clock: Clock,
    rng: np.random.Generator,
) -> TimeArray:
    """When each patient was registered: just before first contact, earlier for old patients."""
    n = people.n
    first = bookings.first_contact(appts, e.start, e.patient, n)
    start = clock.history_start.astype("datetime64[s]")
    span = (clock.now - start).astype(np.int64)
    anytime = start + (rng.random(n) * span).astype(np.int64).astype("m8[s]")
    reg = np.where(np.isnat(first), anytime, first - minutes(rng.uniform(5, 60, n)))
    # Patients whose chronic disease predates the history were registered years ago.
    prevalent = (act.onset < clock.history_start).any(axis=1)
    early = start - minutes(rng.uniform(0, 3 * 365 * 24 * 60, n))
    reg = np.where(prevalent, np.minimum(reg, early), reg)
    born = people.birth.astype("datetime64[s]")
    known = ~np.isnat(born)
    reg = np.where(known & (reg < born + HOUR), born + HOUR, reg)
    out: TimeArray = np.minimum(reg, np.where(np.isnat(first), reg, first))
    return out


def generate_and_load(
    loader: BulkLoader,
    ids: dict[str, int],
    *,
    seed: int,
    clock: Clock,
    ref: Reference,
    staff: Staff,
    people: People,
    act: Activity,
    appts: Appointments,
    cipher: FieldCipher,
    lap: Callable[[str], None],
    history: AuditHistory,
) -> tuple[dict[str, int], Encounters]:
    """Build every per-patient table and queue it for COPY; return row counts and encounters."""
    dept_ids = ref.dept_array

    def put(name: str, rows: Any) -> None:
        history.take(name, rows)  # the audit trail is derived from the rows as they load
        loader.put(name, rows)

    number(appts, ids["appointments"])
    slots, slot_id = build_slots(
        appts, staff, clock, slot_offset=ids["slots"], schedule_offset=ids["doctor_schedules"]
    )
    e = encounters.build_encounters(
        act, appts, people, staff, clock, stream(seed, "encounters"), ids["encounters"]
    )
    history.plan(e.start)

    def bookings_and_visits() -> None:
        put("doctor_schedules", bookings.schedules_table(slots, staff, dept_ids, clock))
        put("slots", bookings.slots_table(slots, staff, dept_ids, clock))
        rng = stream(seed, "appointments")
        table = bookings.appointments_table(appts, slot_id, staff, dept_ids, clock, rng)
        put("appointments", table)
        put("encounters", encounters.encounters_table(e, appts, dept_ids, clock))

    # Keys are checked per row only in the small (non-fast) load, which needs FK order; a fast
    # load sends these first so PostgreSQL is busy while the patients are being encrypted.
    if loader.fast:
        bookings_and_visits()
    registered = registration_times(people, act, appts, e, clock, stream(seed, "registered"))
    ids_ = np.arange(1, people.n + 1, dtype=np.int64)
    put(
        "patients",
        patients_table(
            with_planted_duplicates(
                people, stream(seed, "duplicates"), keep={act.portal, *act.demo_clinic.tolist()}
            ),
            ids=ids_, cipher=cipher, clock=clock, registered=registered, death_day=act.death_day,
        ),
    )  # fmt: skip
    lap("patients generated and encrypted")
    beds = encounters.assign_beds(e)
    wards, bed_rows, assignments = encounters.bed_tables(
        beds, e, dept_ids, clock, ward_offset=ids["wards"], bed_offset=ids["beds"],
        assignment_offset=ids["bed_assignments"],
    )  # fmt: skip
    put("wards", wards)
    put("beds", bed_rows)
    if not loader.fast:
        bookings_and_visits()
    put("bed_assignments", assignments)
    rng = stream(seed, "diagnoses")
    put("diagnoses", encounters.diagnoses_table(e, act, clock, rng, ids["diagnoses"]))
    put("problems", encounters.problems_table(e, act, clock, ids["problems"]))
    rng = stream(seed, "allergies")
    put("allergies", encounters.allergies_table(people, registered, clock, rng, ids["allergies"]))
    lap("encounters, beds and diagnoses")
    obs, labs = observations.observations(
        e, people, act, staff, clock, stream(seed, "observations"), ids["observations"]
    )
    put("observations", obs)
    del obs
    rng = stream(seed, "notes")
    put("clinical_notes", notes.notes_table(e, cipher, clock, rng, ids["clinical_notes"]))
    lap("observations and notes")
    order_rows, procedure_rows, ordered = orders.orders(
        e, labs, people, ref.prices, clock, stream(seed, "orders"), ids["orders"],
        ids["procedures"],
    )  # fmt: skip
    put("orders", order_rows)
    put("procedures", procedure_rows)
    rx_rows, prescribed = orders.prescriptions(
        e, ref.prices, clock, stream(seed, "prescriptions"), ids["prescriptions"]
    )
    put("prescriptions", rx_rows)
    plans, follow_ups = notes.plans_tables(
        e, act, clock, stream(seed, "plans"), plan_offset=ids["treatment_plans"],
        follow_offset=ids["follow_ups"],
    )  # fmt: skip
    put("treatment_plans", plans)
    put("follow_ups", follow_ups)
    lap("orders, prescriptions and plans")
    assignment_ids = ids["bed_assignments"] + 1 + np.arange(len(beds.enc_rows))
    bills = billing.build_bills(
        e, appts, people, staff, ref, clock, stream(seed, "billing"), bed_ids=assignment_ids,
        bed_rows=beds.enc_rows, billables=[ordered, prescribed], offsets=ids,
        portal=act.portal,
    )  # fmt: skip
    for name, rows in bills:  # one table at a time keeps peak memory down
        put(name, rows)
        del rows
    rng = stream(seed, "surveys")
    put("surveys", engagement.surveys_table(e, appts, dept_ids, clock, rng, ids["surveys"]))
    lap("billing and surveys")
    for name, rows in history.tables(grant_offset=ids["break_glass_grants"]):
        loader.put(name, rows)
    lap("audit history")
    counts = loader.finish()
    return counts, e
