"""Clinic-visit intents: chronic follow-ups, acute episodes and the demo's fixed scenes."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from cims.demo.patients import People
from cims.demo.reasons import (
    DEMO_CLINIC_SIZE,
    FORCE_BOOKED,
    FORCE_CHECKED_IN,
    FORCE_NONE,
    FORCE_SEEN,
    R_ACUTE,
    Intents,
    Stays,
    dept_index,
    eligible,
    reason_dept,
    uniform_days,
)
from cims.demo.vec import BoolArray, Clock, FloatArray, IntArray, pick_rows, poisson, repeat_index
from cims.demo.vocab import ACUTE, CHRONIC, CHRONIC_INDEX

# Tuned so that an average patient has ~4-6 encounters over five years.
VISIT_SCALE: Final = 0.75
ACUTE_PER_YEAR: Final = 0.2


def build_intents(
    people: People,
    clock: Clock,
    rng: np.random.Generator,
    has: BoolArray,
    onset: NDArray[np.datetime64],
    engagement: FloatArray,
    first_day: NDArray[np.datetime64],
    clinic: IntArray,
    portal: int,
) -> Intents:
    """Clinic-visit wishes: chronic follow-ups, acute episodes, and the demo's fixed scenes."""
    end_day = clock.horizon.astype("datetime64[D]")
    cp, cc = np.nonzero(has)
    lo = np.maximum(onset[cp, cc], first_day[cp])
    years = np.maximum((end_day - lo).astype(np.float64), 0) / 365.2425
    rate = np.array([c.visits_per_year for c in CHRONIC])[cc]
    # At most one follow-up a quarter per condition, however engaged the patient.
    k = poisson(rng, np.minimum(rate * engagement[cp] * VISIT_SCALE, 4.0) * years)
    rows = repeat_index(k)
    c_patient, c_reason = cp[rows], cc[rows]
    c_day = uniform_days(rng, lo[rows], np.full(len(rows), end_day))
    c_dept = reason_dept(c_reason, people.age_at(c_day, c_patient) < 14)
    alt = np.array([dept_index(c.alt_dept) if c.alt_dept else -1 for c in CHRONIC])[c_reason]
    use_alt = (alt >= 0) & (rng.random(len(rows)) < 0.35) & (people.age_at(c_day, c_patient) >= 14)
    c_dept = np.where(use_alt, alt, c_dept)

    n = people.n
    age_now = people.age_at(np.full(n, clock.today))
    factor = np.where(age_now < 14, 2.2, np.where(age_now >= 60, 1.3, 1.0))
    lam = ACUTE_PER_YEAR * clock.history_years * factor * engagement
    lam[people.unidentified] = 0
    k = poisson(rng, lam)
    a_patient = repeat_index(k)
    a_day = uniform_days(rng, first_day[a_patient], np.full(len(a_patient), end_day))
    a_age = people.age_at(a_day, a_patient)
    a_reason = R_ACUTE + pick_rows(rng, eligible(ACUTE, a_age, people.male[a_patient]))
    a_dept = reason_dept(a_reason, a_age < 14)

    # Fixed scenes: the demo doctor's full diabetic clinic today; the portal patient's visits.
    dm = CHRONIC_INDEX["T2DM"]
    f_patient = np.concatenate([clinic, [portal, portal]]).astype(np.int64)
    portal_reason = int(np.argmax(has[portal])) if has[portal].any() else R_ACUTE
    f_reason = np.concatenate([np.full(len(clinic), dm), [portal_reason, portal_reason]])
    f_dept = np.concatenate(
        [
            np.full(len(clinic), dept_index("ENDO")),
            reason_dept(np.array([portal_reason] * 2), np.zeros(2, bool)),
        ]
    )
    f_day = np.concatenate(
        [np.full(len(clinic), clock.today), [clock.today - 6, clock.today + 3]]
    ).astype("datetime64[D]")
    statuses = [FORCE_SEEN] * 3 + [FORCE_CHECKED_IN] * 2 + [FORCE_BOOKED] * DEMO_CLINIC_SIZE
    f_forced = np.array([*statuses[: len(clinic)], FORCE_SEEN, FORCE_BOOKED], np.int64)

    return Intents(
        patient=np.concatenate([c_patient, a_patient, f_patient]),
        dept=np.concatenate([c_dept, a_dept, f_dept]),
        reason=np.concatenate([c_reason, a_reason, f_reason]),
        day=np.concatenate([c_day, a_day, f_day]).astype("datetime64[D]"),
        chronic=np.concatenate(
            [np.ones(len(c_patient), bool), np.zeros(len(a_patient), bool), f_reason < R_ACUTE]
        ),
        forced=np.concatenate([np.full(len(c_patient) + len(a_patient), FORCE_NONE), f_forced]),
    )


def drop_conflicts(
    intents: Intents, stays: Stays, death_day: NDArray[np.datetime64], people: People
) -> Intents:
    """No clinic visits before birth, after death, or while the patient is admitted."""
    day = intents.day
    born = people.birth[intents.patient]
    ok = np.isnat(born) | (day >= born)
    died = death_day[intents.patient]
    ok &= np.isnat(died) | (day < died)
    order = np.lexsort((stays.start, stays.patient))
    s_day = stays.start[order].astype("datetime64[D]").astype(np.int64)
    s_end = (
        np.where(np.isnat(stays.end[order]), np.datetime64("2300-01-01"), stays.end[order])
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    s_patient = stays.patient[order]
    s_key = s_patient * (1 << 22) + s_day
    i_key = intents.patient * (1 << 22) + day.astype(np.int64)
    j = np.searchsorted(s_key, i_key, side="right") - 1
    jj = np.maximum(j, 0)
    inside = (
        (j >= 0) & (s_patient[jj] == intents.patient) & (day.astype(np.int64) <= s_end[jj])
        if len(s_key)
        else np.zeros(len(day), bool)
    )
    ok &= ~inside
    ok |= intents.forced != FORCE_NONE
    return Intents(
        intents.patient[ok],
        intents.dept[ok],
        intents.reason[ok],
        intents.day[ok],
        intents.chronic[ok],
        intents.forced[ok],
    )
