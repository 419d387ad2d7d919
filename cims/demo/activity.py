"""Who comes to the hospital, when, and why: conditions, admissions, emergencies, clinic visits.

Chronic conditions are drawn by age and drive follow-up visits and admissions; acute episodes
add the rest. Admissions never overlap for one patient, heart failure, COPD, age and
multi-morbidity raise 30-day readmission, and nothing happens after a patient's death.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cims.demo.admissions import deaths, finish_stays, subset_stays
from cims.demo.intents import build_intents, drop_conflicts
from cims.demo.patients import People
from cims.demo.reasons import (
    DEMO_CLINIC_SIZE,
    ER_INDEX,
    R_ER,
    R_NEWBORN,
    REASON_INDEX,
    REASONS,
    Emergencies,
    Intents,
    Stays,
    eligible,
    uniform_days,
)
from cims.demo.vec import (
    DAY,
    HOUR,
    BoolArray,
    Clock,
    FloatArray,
    IntArray,
    minutes,
    pick_rows,
    poisson,
    repeat_index,
)
from cims.demo.vocab import AGE_EDGES, CHRONIC, CHRONIC_INDEX, EMERGENCY, INPATIENT

_ER_PER_YEAR: Final = 0.05
_OTHER_ADMISSIONS_PER_YEAR: Final = 0.01
_DELIVERIES_PER_YEAR: Final = 0.03
_RANDOM_ADMISSIONS: Final = ("PNEU", "STROKE", "APPY", "CHOLE", "HERNIA", "HIPFX")


@dataclass
class Activity:
    """All generated activity before scheduling."""

    has: BoolArray  # patient x chronic condition
    onset: NDArray[np.datetime64]  # patient x condition, datetime64[D]
    engagement: FloatArray
    stays: Stays
    er: Emergencies
    intents: Intents
    death_day: NDArray[np.datetime64]
    demo_clinic: IntArray  # rows of the demo doctor's patients today
    portal: int  # row of the portal demo patient


def _conditions(
    people: People, clock: Clock, rng: np.random.Generator
) -> tuple[BoolArray, NDArray[np.datetime64]]:
    """Chronic conditions by age and sex, with an onset day each."""
    n = people.n
    age = people.age_at(np.full(n, clock.today))
    band = np.clip(
        np.searchsorted(np.array(AGE_EDGES), age, side="right") - 1, 0, len(AGE_EDGES) - 1
    )
    has = np.zeros((n, len(CHRONIC)), bool)
    idx = CHRONIC_INDEX
    for c, cond in enumerate(CHRONIC):
        p = np.array(cond.prevalence)[band]
        if cond.male_factor != 1.0:
            p = p * np.where(people.male, cond.male_factor, 1 / cond.male_factor)
        key = cond.reason.key
        if key == "T2DM":
            p = p + 0.06 * has[:, idx["HTN"]]
        elif key == "LIPID":
            p = p + 0.08 * has[:, idx["T2DM"]]
        elif key == "HF":
            p = p + 0.02 * has[:, idx["HTN"]] + 0.12 * has[:, idx["CHD"]]
        elif key == "CKD":
            p = p + 0.04 * has[:, idx["T2DM"]] + 0.02 * has[:, idx["HTN"]]
        if cond.reason.sex == "F":
            p = p * ~people.male
        has[:, c] = rng.random(n) < p
    has[people.newborn | people.unidentified] = False
    age_days = np.nan_to_num(age * 365.2425, nan=45 * 365.0)
    back = np.clip(age_days - 2 * 365, 60, 15 * 365)
    offset = 30 + rng.random((n, len(CHRONIC))) * (back[:, None] - 30)
    onset = clock.today - offset.astype(np.int64).astype("m8[D]")
    onset = np.where(has, onset, np.datetime64("NaT", "D"))
    return has, onset


def _pick_demo(
    people: People, has: BoolArray, age: FloatArray, rng: np.random.Generator
) -> tuple[IntArray, int]:
    """The demo doctor's diabetic clinic today, and the portal demo patient."""
    ordinary = ~people.newborn & ~people.unidentified
    dm = has[:, CHRONIC_INDEX["T2DM"]]
    score = has.sum(axis=1) + rng.random(people.n)  # richest histories first, ties at random
    pool = np.flatnonzero(ordinary & dm & (age >= 40) & (age <= 85))
    clinic = pool[np.argsort(-score[pool], kind="stable")][:DEMO_CLINIC_SIZE]
    if len(clinic) < DEMO_CLINIC_SIZE:
        extra = np.flatnonzero(ordinary & (age >= 30) & ~np.isin(np.arange(people.n), clinic))
        extra = extra[np.argsort(-score[extra], kind="stable")]
        clinic = np.concatenate([clinic, extra[: DEMO_CLINIC_SIZE - len(clinic)]])
    rest = ordinary & ~np.isin(np.arange(people.n), clinic) & (age >= 30) & (age <= 75)
    candidates = np.flatnonzero(rest & has.any(axis=1))
    if len(candidates) == 0:
        candidates = np.flatnonzero(rest) if rest.any() else np.flatnonzero(ordinary)
    portal = int(rng.choice(candidates)) if len(candidates) else 0
    return clinic.astype(np.int64), portal


def build_activity(people: People, clock: Clock, rng: np.random.Generator) -> Activity:
    """Generate conditions, admissions, emergencies and clinic-visit intents for everyone."""
    n = people.n
    today = clock.today
    start_day = clock.history_start
    age_now = people.age_at(np.full(n, today))
    has, onset = _conditions(people, clock, rng)
    engagement = rng.gamma(2.0, 0.5, n)
    clinic, portal = _pick_demo(people, has, age_now, rng)
    engagement[clinic] *= 1.5
    born = np.where(np.isnat(people.birth), start_day, people.birth)
    first_day = np.maximum(born, start_day)
    n_chronic = has.sum(axis=1)

    # --- admissions ---
    cp, cc = np.nonzero(has)
    window_lo = np.maximum(onset[cp, cc], first_day[cp])
    years = np.maximum((today - window_lo).astype(np.float64), 0) / 365.2425
    rate = np.array([c.admissions_per_year for c in CHRONIC])[cc] * np.where(
        age_now[cp] >= 75, 1.5, 1.0
    )
    k = poisson(rng, rate * years)
    rows = repeat_index(k)
    s_patient = cp[rows]
    s_reason = np.array([REASON_INDEX[c.admit] for c in CHRONIC], np.int64)[cc[rows]]
    s_day = uniform_days(rng, window_lo[rows], np.full(len(rows), today))

    other = (
        (_OTHER_ADMISSIONS_PER_YEAR * clock.history_years)
        * np.where(age_now >= 60, 2.5, 1.0)
        * engagement
    )
    other[people.newborn | people.unidentified] = 0
    k = poisson(rng, other)
    o_patient = repeat_index(k)
    o_day = uniform_days(rng, first_day[o_patient], np.full(len(o_patient), today))
    o_age = people.age_at(o_day, o_patient)
    random_reasons = tuple(r for r in INPATIENT if r.key in _RANDOM_ADMISSIONS)
    o_reason = np.array([REASON_INDEX[r.key] for r in random_reasons], np.int64)[
        pick_rows(rng, eligible(random_reasons, o_age, people.male[o_patient]))
    ]
    mothers_age_ok = ~people.male & (age_now >= 20) & (age_now <= 42) & ~people.unidentified
    k = poisson(rng, np.where(mothers_age_ok, _DELIVERIES_PER_YEAR * clock.history_years, 0.0))
    d_patient = repeat_index(k)
    d_day = uniform_days(rng, first_day[d_patient], np.full(len(d_patient), today))
    d_reason = np.where(
        rng.random(len(d_patient)) < 0.62, REASON_INDEX["DELIV"], REASON_INDEX["CSEC"]
    )

    # Newborns: born here, rooming in with their mother after her delivery.
    babies = np.flatnonzero(people.newborn)
    b_mother = people.mother[babies]
    b_day = people.birth[babies]

    # --- emergencies ---
    lam = (
        _ER_PER_YEAR
        * clock.history_years
        * np.where(age_now >= 65, 2.0, np.where(age_now < 14, 1.5, 1.0))
    )
    lam[people.unidentified | people.newborn] = 0
    k = poisson(rng, lam * engagement)
    e_patient = repeat_index(k)
    e_day = uniform_days(rng, first_day[e_patient], np.full(len(e_patient), today))
    e_reason = R_ER + pick_rows(
        rng, eligible(EMERGENCY, people.age_at(e_day, e_patient), people.male[e_patient])
    )
    unknown = np.flatnonzero(people.unidentified)
    forced_er = np.array([ER_INDEX[k] for k in ("E_HEAD", "E_FALL", "E_WEAK")])
    e_patient = np.concatenate([e_patient, unknown])
    e_day = np.concatenate([e_day, today - rng.integers(0, 10, len(unknown)).astype("m8[D]")])
    e_reason = np.concatenate([e_reason, forced_er[rng.integers(0, 3, len(unknown))]])
    hour = (rng.normal(15.0, 6.0, len(e_patient)) % 24.0) * 60
    e_start = e_day.astype("datetime64[s]") + minutes(hour)
    e_end = e_start + minutes(rng.uniform(80, 360, len(e_patient)))
    keep = e_end <= clock.now
    e_patient, e_reason, e_start, e_end = (
        e_patient[keep],
        e_reason[keep],
        e_start[keep],
        e_end[keep],
    )
    admit_rate = np.array([r.admit_rate for r in REASONS])[e_reason]
    admit_rate[people.unidentified[e_patient]] = 0.5
    u = rng.random(len(e_patient))
    outcome = np.where(u < admit_rate, 1, np.where(u > 0.96, 3, np.where(u > 0.945, 2, 0)))
    admit_key = np.array([REASON_INDEX.get(r.admit or "", 0) for r in REASONS], np.int64)
    fallback = REASON_INDEX["PNEU"]
    er_admit_reason = np.where(admit_key[e_reason] > 0, admit_key[e_reason], fallback)

    # --- assemble stays ---
    er_rows = np.flatnonzero(outcome == 1)
    patient = np.concatenate(
        [s_patient, o_patient, d_patient, b_mother, babies, e_patient[er_rows]]
    )
    reason = np.concatenate(
        [
            s_reason,
            o_reason,
            d_reason,
            np.full(len(babies), REASON_INDEX["DELIV"]),
            np.full(len(babies), R_NEWBORN),
            er_admit_reason[er_rows],
        ]
    )
    days_ = np.concatenate([s_day, o_day, d_day, b_day, b_day])
    elective = days_.astype("datetime64[s]") + 9 * HOUR + minutes(rng.uniform(0, 180, len(days_)))
    begin = np.concatenate([elective, e_end[er_rows]])
    er_row = np.concatenate([np.full(len(days_), -1), er_rows])
    stays = finish_stays(patient, reason, begin, er_row, people, clock, rng, n_chronic, has)

    # Demo patients are at home today: no current admission for them.
    demo_mask = np.isin(stays.patient, np.append(clinic, portal))
    drop = demo_mask & (
        np.isnat(stays.end) | (stays.end >= clock.today.astype("datetime64[s]") - 2 * DAY)
    )
    stays = subset_stays(stays, ~drop)
    death_day = deaths(stays, people, has, clock, rng, np.append(clinic, portal))
    alive_at = np.where(np.isnat(death_day), np.datetime64("2300-01-01"), death_day).astype(
        "datetime64[s]"
    )
    stays = subset_stays(stays, stays.start <= alive_at[stays.patient])

    # Emergency visits: drop those after death, and those whose admission was dropped.
    admitted_kept = np.zeros(len(e_patient), bool)
    admitted_kept[stays.er_row[stays.er_row >= 0]] = True
    outcome = np.where((outcome == 1) & ~admitted_kept, 0, outcome)
    keep = e_start < alive_at[e_patient]
    remap = np.cumsum(keep) - 1
    stays.er_row = np.where(stays.er_row >= 0, remap[np.maximum(stays.er_row, 0)], -1)
    er = Emergencies(
        e_patient[keep],
        e_reason[keep],
        e_start[keep],
        e_end[keep],
        outcome[keep] == 1,
        outcome[keep],
    )

    intents = build_intents(people, clock, rng, has, onset, engagement, first_day, clinic, portal)
    intents = drop_conflicts(intents, stays, death_day, people)
    return Activity(has, onset, engagement, stays, er, intents, death_day, clinic, portal)
