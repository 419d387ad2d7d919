"""Orders (lab, imaging, procedure, nursing, consultation), procedures and prescriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from cims.demo import copyload as cl
from cims.demo.encounters import Encounters
from cims.demo.observations import LabOrders
from cims.demo.patients import People
from cims.demo.reasons import ER, INP, R_ACUTE, R_NEWBORN, REASON_INDEX, REASONS
from cims.demo.reference import PriceTable, catalogue_items
from cims.demo.vec import HOUR, BoolArray, Clock, IntArray, TimeArray, minutes
from cims.demo.vocab import (
    DRUG_INDEX,
    DRUGS,
    IMAGING_CODES,
    PANEL_KEYS,
    PANELS,
    PROC_INDEX,
    PROCEDURES,
)
from cims.records.models import ORDER_TYPES

LAB, IMAGING, PROCEDURE, MEDICATION, NURSING, CONSULTATION = range(6)  # order of ORDER_TYPES
ORDERED, IN_PROGRESS, COMPLETED, CANCELLED = range(4)  # order of ORDER_STATUSES
_HEAVY_NURSING: Final = ("HF_IP", "STROKE", "HIPFX", "COPD_IP")


@dataclass
class Billable:
    """Rows that post charges: their encounter, catalogue item, quantity and service time."""

    ids: IntArray
    encounter: IntArray
    item: IntArray  # index into the price table
    quantity: IntArray  # hundredths
    when: TimeArray
    live: BoolArray  # False for cancelled rows (never charged)


def stay_days(e: Encounters, rows: IntArray, clock: Clock) -> IntArray:
    """Hospital days (nights) of encounters ``rows``, so far for current admissions."""
    first = e.start[rows].astype("datetime64[D]")
    last = np.where(e.open[rows], clock.today, e.end[rows].astype("datetime64[D]"))
    out: IntArray = np.maximum((last - first).astype(np.int64), 1)
    return out


def _descriptions(prices: PriceTable) -> list[str]:
    names = {code: f"{zh} / {en}" for code, zh, en, *_ in catalogue_items()}
    return [names[c] for c in prices.codes]


def orders(
    e: Encounters,
    labs: LabOrders,
    people: People,
    prices: PriceTable,
    clock: Clock,
    rng: np.random.Generator,
    offset: int,
    procedure_offset: int,
) -> tuple[Any, Any, Billable]:
    """Orders of every encounter and the procedures that fulfilled them."""
    n = len(e.ids)
    p_img = np.array([[dict(r.imaging).get(k, 0.0) for k in IMAGING_CODES] for r in REASONS])
    i_enc, i_img = np.nonzero(rng.random((n, len(IMAGING_CODES))) < p_img[e.reason])
    proc_of = np.array([PROC_INDEX[r.procedure] if r.procedure else -1 for r in REASONS])
    p_enc = np.flatnonzero(proc_of[e.reason] >= 0)
    inpatient = np.flatnonzero((e.kind == INP) & (e.reason != R_NEWBORN))
    age = people.age_at(e.start[inpatient], e.patient[inpatient])
    heavy = (age >= 75) | np.isin(e.reason[inpatient], [REASON_INDEX[k] for k in _HEAVY_NURSING])
    c_enc = inpatient[rng.random(len(inpatient)) < 0.15]

    idx = prices.index
    enc = np.concatenate([labs.encounter, i_enc, p_enc, inpatient, c_enc])
    kind = np.concatenate(
        [
            np.full(len(labs.encounter), LAB),
            np.full(len(i_enc), IMAGING),
            np.full(len(p_enc), PROCEDURE),
            np.full(len(inpatient), NURSING),
            np.full(len(c_enc), CONSULTATION),
        ]
    )
    item = np.concatenate([
        np.array([idx(PANELS[k][0]) for k in PANEL_KEYS])[labs.panel],
        np.array([idx(c) for c in IMAGING_CODES])[i_img],
        np.array([idx(p.price_code) for p in PROCEDURES])[proc_of[e.reason[p_enc]]],
        np.where(heavy, idx("NURS-L1"), idx("NURS-L2")),
        np.full(len(c_enc), idx("CONS-MDT")),
    ])  # fmt: skip
    quantity = np.full(len(enc), 100)
    quantity[kind == NURSING] = stay_days(e, enc[kind == NURSING], clock) * 100
    m = len(enc)
    ordered = e.start[enc] + minutes(rng.uniform(10, 40, m))
    # Surgery the day after admission; emergency procedures within the hour.
    performed = np.where(
        e.kind[enc] == ER,
        ordered + minutes(rng.uniform(10, 50, m)),
        ordered + minutes(rng.uniform(12 * 60, 30 * 60, m)),
    )
    end_cap = np.where(e.open[enc], clock.now, e.end[enc])
    performed = np.minimum(performed, end_cap - HOUR)
    performed = np.maximum(performed, ordered)
    done = np.where(kind == PROCEDURE, performed, ordered + minutes(rng.uniform(30, 240, m)))
    status = np.where(done <= clock.now, COMPLETED, IN_PROGRESS)
    status = np.where((kind == NURSING) & e.open[enc], IN_PROGRESS, status)
    status = np.where((kind == IMAGING) & (rng.random(m) < 0.02), CANCELLED, status)
    completed = np.where(status == COMPLETED, done, np.datetime64("NaT"))
    if kind.size:
        nursing_done = (kind == NURSING) & (status == COMPLETED)
        completed = np.where(nursing_done, e.end[enc], completed)
    ids = offset + 1 + np.arange(m)
    names = _descriptions(prices)
    doctor = e.doctor[enc]
    table = cl.table(
        {
            "id": cl.ints(ids),
            "patient_id": cl.ints(e.patient[enc] + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "order_type": cl.labels(kind, ORDER_TYPES),
            "code": cl.labels(item, prices.codes),
            "description": cl.labels(item, names),
            "status": cl.labels(status, ("ordered", "in_progress", "completed", "cancelled")),
            "ordered_by_id": cl.ints(doctor),
            "ordered_at": cl.times(clock, ordered),
            "completed_at": cl.times(clock, completed),
            "price_item_code": cl.labels(item, prices.codes),
            "created_at": cl.times(clock, ordered),
            "created_by_id": cl.ints(doctor),
        }
    )
    procs = np.flatnonzero(kind == PROCEDURE)
    proc_code = proc_of[e.reason[enc[procs]]]
    procedures = cl.table(
        {
            "id": cl.ints(procedure_offset + 1 + np.arange(len(procs))),
            "patient_id": cl.ints(e.patient[enc[procs]] + 1),
            "encounter_id": cl.ints(e.ids[enc[procs]]),
            "order_id": cl.ints(ids[procs]),
            "code_system": cl.const("ICD-9-CM-3", len(procs)),
            "code": cl.labels(proc_code, [p.code for p in PROCEDURES]),
            "description": cl.labels(proc_code, [p.name for p in PROCEDURES]),
            "performed_at": cl.times(clock, performed[procs]),
            "performer_id": cl.ints(doctor[procs]),
            "created_at": cl.times(clock, performed[procs]),
            "created_by_id": cl.ints(doctor[procs]),
        }
    )
    when = np.where(kind == PROCEDURE, performed, ordered)
    return table, procedures, Billable(ids, enc, item, quantity, when, status != CANCELLED)


def prescriptions(
    e: Encounters, prices: PriceTable, clock: Clock, rng: np.random.Generator, offset: int
) -> tuple[Any, Billable]:
    """Drugs per encounter: the reason's first drug, the others about half the time."""
    n = len(e.ids)
    width = max(len(r.drugs) for r in REASONS)
    drug = np.full((len(REASONS), width), -1)
    for i, r in enumerate(REASONS):
        drug[i, : len(r.drugs)] = [DRUG_INDEX[k] for k in r.drugs]
    p_first = np.where(e.kind == ER, 0.5, 1.0)
    p_more = np.where(e.kind == INP, 0.5, 0.3)
    u = rng.random((n, width))
    first = np.arange(width) == 0
    take = (drug[e.reason] >= 0) & np.where(first, u < p_first[:, None], u < p_more[:, None])
    enc, slot = np.nonzero(take)
    d = drug[e.reason[enc], slot]
    m = len(enc)
    base_days = np.array([x.days for x in DRUGS])[d]
    inpatient = e.kind[enc] == INP
    days = np.where(inpatient, np.minimum(base_days, stay_days(e, enc, clock)), base_days)
    per_day = np.array([x.units_per_day for x in DRUGS])[d]
    quantity = np.maximum(np.ceil(per_day * days), 1).astype(np.int64)
    prescribed = e.start[enc] + minutes(rng.uniform(15, 45, m))
    finished = prescribed + days * np.timedelta64(86_400, "s")
    chronic = e.reason[enc] < R_ACUTE
    status = np.where(finished < clock.now, 1, 0)  # completed / active
    status = np.where(rng.random(m) < 0.03, 2, status)  # stopped early (side effects, change)
    ids = offset + 1 + np.arange(m)
    dose = np.round(np.array([x.dose for x in DRUGS])[d] * 1000).astype(np.int64)
    doctor = e.doctor[enc]
    table = cl.table(
        {
            "id": cl.ints(ids),
            "patient_id": cl.ints(e.patient[enc] + 1),
            "encounter_id": cl.ints(e.ids[enc]),
            "prescriber_id": cl.ints(doctor),
            "drug_code": cl.labels(d, [f"DRUG-{x.key}" for x in DRUGS]),
            "drug_name": cl.labels(d, [x.name for x in DRUGS]),
            "dose": cl.decimals(dose, 10, 3),
            "dose_unit": cl.labels(d, [x.unit for x in DRUGS]),
            "route": cl.labels(d, [x.route for x in DRUGS]),
            "frequency": cl.labels(d, [x.frequency for x in DRUGS]),
            "duration_days": cl.ints(days),
            "quantity": cl.decimals(quantity * 100, 10, 2),
            "refills": cl.ints(np.where(chronic, rng.integers(0, 3, m), 0)),
            "prescribed_at": cl.times(clock, prescribed),
            "status": cl.labels(status, ("active", "completed", "stopped")),
            "created_at": cl.times(clock, prescribed),
            "created_by_id": cl.ints(doctor),
        }
    )
    item = np.array([prices.index(f"DRUG-{x.key}") for x in DRUGS])[d]
    return table, Billable(ids, enc, item, quantity * 100, prescribed, np.ones(m, bool))
