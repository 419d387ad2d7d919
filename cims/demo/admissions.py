"""Admissions: lengths of stay, 30-day readmissions, one bed at a time, and deaths."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cims.demo.patients import People
from cims.demo.reasons import R_NEWBORN, REASON_INDEX, REASONS, Stays
from cims.demo.vec import DAY, HOUR, BoolArray, Clock, FloatArray, IntArray, TimeArray, minutes
from cims.demo.vocab import CHRONIC_INDEX


def subset_stays(stays: Stays, keep: BoolArray) -> Stays:
    """The stays selected by ``keep``."""
    return Stays(
        stays.patient[keep],
        stays.reason[keep],
        stays.start[keep],
        stays.end[keep],
        stays.er_row[keep],
        stays.deceased[keep],
    )


def _length_of_stay(reason: IntArray, age: FloatArray, rng: np.random.Generator) -> IntArray:
    """Days in hospital: the reason's median, longer for the old, log-normally spread."""
    median = np.array([r.los or 3 for r in REASONS])[reason]
    factor = np.exp(rng.normal(0.0, 0.35, len(reason))) * (
        1 + 0.01 * np.maximum(np.nan_to_num(age) - 60, 0)
    )
    return np.maximum(np.round(median * factor), 1).astype(np.int64)


def _discharge(begin: TimeArray, los: IntArray, rng: np.random.Generator) -> TimeArray:
    """Discharge time: late morning ``los`` days after admission."""
    day = begin.astype("datetime64[D]") + los.astype("m8[D]")
    out: TimeArray = (
        day.astype("datetime64[s]") + 10 * HOUR + minutes(rng.uniform(0, 150, len(los)))
    )
    return out


def finish_stays(
    patient: IntArray,
    reason: IntArray,
    begin: TimeArray,
    er_row: IntArray,
    people: People,
    clock: Clock,
    rng: np.random.Generator,
    n_chronic: IntArray,
    has: BoolArray,
) -> Stays:
    """Lengths of stay, 30-day readmissions, no overlaps per patient, current admissions."""
    age = people.age_at(begin, patient)
    end = _discharge(begin, _length_of_stay(reason, age, rng), rng)
    hf = has[:, CHRONIC_INDEX["HF"]]
    copd = has[:, CHRONIC_INDEX["COPD"]]
    no_readmit = np.isin(reason, [REASON_INDEX["DELIV"], REASON_INDEX["CSEC"], R_NEWBORN])
    parts = [(patient, reason, begin, end, er_row)]
    src_patient, src_reason, src_end = patient, reason, end
    src_ok = ~no_readmit
    for _round in range(2):
        a = people.age_at(src_end, src_patient)
        p = (
            0.03
            + 0.10 * hf[src_patient]
            + 0.07 * copd[src_patient]
            + 0.04 * (a >= 75)
            + 0.015 * n_chronic[src_patient]
        )
        hit = src_ok & (src_end < clock.now) & (rng.random(len(src_patient)) < np.minimum(p, 0.45))
        r_patient, r_reason = src_patient[hit], src_reason[hit]
        r_begin = (
            src_end[hit].astype("datetime64[D]").astype("datetime64[s]")
            + rng.integers(2, 30, hit.sum()) * DAY
            + minutes(rng.uniform(8 * 60, 22 * 60, hit.sum()))
        )
        r_end = _discharge(
            r_begin, _length_of_stay(r_reason, people.age_at(r_begin, r_patient), rng), rng
        )
        parts.append((r_patient, r_reason, r_begin, r_end, np.full(len(r_patient), -1)))
        src_patient, src_reason, src_end, src_ok = (
            r_patient,
            r_reason,
            r_end,
            np.ones(len(r_patient), bool),
        )
    patient = np.concatenate([p[0] for p in parts])
    reason = np.concatenate([p[1] for p in parts])
    begin = np.concatenate([p[2] for p in parts])
    end = np.concatenate([p[3] for p in parts])
    er_row = np.concatenate([p[4] for p in parts])
    born = np.where(np.isnat(people.birth), clock.history_start, people.birth)[patient]
    ok = (begin < clock.now) & (begin.astype("datetime64[D]") >= born)
    patient, reason, begin, end, er_row = patient[ok], reason[ok], begin[ok], end[ok], er_row[ok]
    # One bed at a time: drop any stay that starts before an earlier stay of the patient ends.
    order = np.lexsort((begin, patient))
    patient, reason, begin, end, er_row = (
        patient[order],
        reason[order],
        begin[order],
        end[order],
        er_row[order],
    )
    end_s = np.minimum(end, clock.now + 1000 * DAY).astype(np.int64)
    key = patient.astype(np.int64) * (1 << 40) + end_s
    running = np.maximum.accumulate(key)
    prev = np.concatenate([[-1], running[:-1]])
    same = np.concatenate([[False], patient[1:] == patient[:-1]])
    overlap = same & (begin.astype(np.int64) + patient.astype(np.int64) * (1 << 40) < prev)
    keep = ~overlap
    end = np.where(end > clock.now, np.datetime64("NaT"), end).astype("datetime64[s]")
    return Stays(
        patient[keep],
        reason[keep],
        begin[keep],
        end[keep],
        er_row[keep],
        np.zeros(int(keep.sum()), bool),
    )


def deaths(
    stays: Stays,
    people: People,
    has: BoolArray,
    clock: Clock,
    rng: np.random.Generator,
    protected: IntArray,
) -> NDArray[np.datetime64]:
    """A few elderly, multi-morbid patients die at the end of an admission."""
    severe = np.isin(
        stays.reason, [REASON_INDEX[k] for k in ("HF_IP", "STROKE", "COPD_IP", "HIPFX")]
    )
    age = people.age_at(stays.start, stays.patient)
    closed = ~np.isnat(stays.end) & (stays.end < clock.now - DAY)
    eligible = (
        closed
        & (age >= 60)
        & ~np.isin(stays.patient, protected)
        & ~people.unidentified[stays.patient]
    )
    p = 0.004 + 0.003 * has.sum(axis=1)[stays.patient] + 0.008 * (age >= 80) + 0.01 * severe
    dies = eligible & (rng.random(len(p)) < p)
    death_day = np.full(people.n, np.datetime64("NaT"), "datetime64[D]")
    rows = np.flatnonzero(dies)
    rows = rows[np.lexsort((stays.start[rows], stays.patient[rows]))]
    first = (
        rows[np.concatenate([[True], stays.patient[rows][1:] != stays.patient[rows][:-1]])]
        if len(rows)
        else rows
    )
    death_day[stays.patient[first]] = stays.end[first].astype("datetime64[D]")
    stays.deceased[first] = True
    return death_day
