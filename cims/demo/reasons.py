"""Visit reasons (one index space over every vocabulary list) and the activity records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from cims.demo.vec import BoolArray, FloatArray, IntArray, TimeArray
from cims.demo.vocab import ACUTE, CHRONIC, DEPT_INDEX, EMERGENCY, INPATIENT, Reason

NEWBORN: Final = Reason("NEWBORN", "Z38.0", "单胎活产婴儿 / Single liveborn infant, in hospital",
                        "新生儿出生", "OBGYN", los=3)  # fmt: skip
REASONS: Final = (*(c.reason for c in CHRONIC), *ACUTE, *INPATIENT, *EMERGENCY, NEWBORN)
R_ACUTE: Final = len(CHRONIC)
R_INPATIENT: Final = R_ACUTE + len(ACUTE)
R_ER: Final = R_INPATIENT + len(INPATIENT)
R_NEWBORN: Final = len(REASONS) - 1
REASON_INDEX: Final = {r.key: i for i, r in enumerate(REASONS) if i < R_ER or i == R_NEWBORN}
ER_INDEX: Final = {r.key: R_ER + i for i, r in enumerate(EMERGENCY)}

OUT, INP, ER = 0, 1, 2  # encounter kinds
FORCE_NONE, FORCE_SEEN, FORCE_CHECKED_IN, FORCE_BOOKED = -1, 0, 1, 2
DEMO_CLINIC_SIZE: Final = 15


@dataclass
class Stays:
    """Inpatient stays (one row each; end is NaT while the patient is still admitted)."""

    patient: IntArray
    reason: IntArray
    start: TimeArray
    end: TimeArray
    er_row: IntArray  # emergency visit that led to the admission, -1 if direct
    deceased: BoolArray


@dataclass
class Emergencies:
    """Emergency department visits."""

    patient: IntArray
    reason: IntArray
    start: TimeArray
    end: TimeArray
    admitted: BoolArray
    outcome: IntArray  # 0 home, 1 admitted, 2 transferred, 3 left against advice


@dataclass
class Intents:
    """Wishes to see a clinic doctor on a day; scheduling turns them into appointments."""

    patient: IntArray
    dept: IntArray  # index into vocab.DEPARTMENTS
    reason: IntArray
    day: NDArray[np.datetime64]
    chronic: BoolArray
    forced: IntArray  # FORCE_* status for the demo's fixed scenes


def dept_index(code: str) -> int:
    """Position of a department code in vocab.DEPARTMENTS."""
    return DEPT_INDEX[code]


def reason_dept(reason: IntArray, child: BoolArray) -> IntArray:
    """Department of each reason (the paediatric one for children where it exists)."""
    adult = np.array([dept_index(r.dept) for r in REASONS], np.int64)
    kids = np.array([dept_index(r.child_dept or r.dept) for r in REASONS], np.int64)
    out: IntArray = np.where(child, kids[reason], adult[reason])
    return out


def eligible(reasons: tuple[Reason, ...], age: FloatArray, male: BoolArray) -> FloatArray:
    """Weight matrix rows x reasons, zero where age or sex rules a reason out."""
    lo = np.array([r.ages[0] for r in reasons], np.float64)
    hi = np.array([r.ages[1] for r in reasons], np.float64)
    w = np.array([r.weight for r in reasons], np.float64)
    sex_ok = np.array(
        [[r.sex in (None, "M") for r in reasons], [r.sex in (None, "F") for r in reasons]]
    )
    ok = (age[:, None] >= lo) & (age[:, None] <= hi) & sex_ok[np.where(male, 0, 1)]
    out: FloatArray = ok * w
    return out


def uniform_days(
    rng: np.random.Generator, lo: NDArray[np.datetime64], hi: NDArray[np.datetime64]
) -> NDArray[np.datetime64]:
    """A uniformly random day in [lo, hi) per row (lo when the range is empty)."""
    span = np.maximum((hi - lo).astype(np.int64), 1)
    out: NDArray[np.datetime64] = lo + np.floor(rng.random(len(lo)) * span).astype(np.int64).astype(
        "m8[D]"
    )
    return out
