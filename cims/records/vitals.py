"""Vital signs at the bedside: plausibility checks, one observation per value, flags.

Codes, units and reference ranges match the demo hospital's vitals (cims/demo/vocab.py),
so a nurse's entry and the seeded history chart on the same lines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.patients.models import Patient
from cims.records.encounters import latest_open_encounter_id
from cims.records.models import Encounter, Observation
from cims.security import audit
from cims.security.care import clinical_access
from cims.security.rbac import Actor, Privilege, requires

_CLOCK_SLACK: Final = dt.timedelta(minutes=5)
_OLDEST: Final = dt.timedelta(days=7)  # later entry of an earlier reading, within reason


@dataclass(frozen=True)
class VitalSpec:
    """One vital sign: its code, unit, what is physically plausible, and what is normal."""

    field: str
    loinc: str
    name: str
    unit: str
    decimals: int
    plausible: tuple[Decimal, Decimal]
    low: Decimal | None = None
    high: Decimal | None = None
    crit_low: Decimal | None = None
    crit_high: Decimal | None = None


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _spec(
    field: str,
    loinc: str,
    name: str,
    unit: str,
    decimals: int,
    plausible: tuple[str, str],
    ranges: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
) -> VitalSpec:
    low, high, crit_low, crit_high = (_d(v) for v in ranges)
    bounds = (Decimal(plausible[0]), Decimal(plausible[1]))
    return VitalSpec(field, loinc, name, unit, decimals, bounds, low, high, crit_low, crit_high)


# In the order a nurse takes them.
VITALS: Final = (
    _spec("temperature_c", "8310-5", "体温 / Body temperature", "°C", 1, ("30", "45"),
          ("36.0", "37.3", "35.0", "40.0")),
    _spec("pulse_bpm", "8867-4", "心率 / Heart rate", "/min", 0, ("20", "250"),
          ("60", "100", "40", "150")),
    _spec("resp_rate", "9279-1", "呼吸频率 / Respiratory rate", "/min", 0, ("4", "80"),
          ("12", "20", "8", "30")),
    _spec("systolic", "8480-6", "收缩压 / Systolic blood pressure", "mmHg", 0, ("50", "280"),
          ("90", "139", "70", "180")),
    _spec("diastolic", "8462-4", "舒张压 / Diastolic blood pressure", "mmHg", 0, ("20", "180"),
          ("60", "89", "40", "120")),
    _spec("spo2", "59408-5", "血氧饱和度 / Oxygen saturation", "%", 0, ("50", "100"),
          ("95", "100", "88", None)),
    _spec("weight_kg", "29463-7", "体重 / Body weight", "kg", 1, ("0.3", "400")),
    _spec("height_cm", "8302-2", "身高 / Body height", "cm", 1, ("20", "260")),
    _spec("pain_score", "72514-3", "疼痛评分 / Pain severity (0-10)", "{score}", 0, ("0", "10"),
          (None, "3", None, "7")),
)  # fmt: skip
VITAL_INDEX: Final = {spec.field: spec for spec in VITALS}


class InvalidVitals(ValueError):
    """Readings that cannot be recorded; ``problems`` are i18n keys (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(", ".join(problems))


@dataclass(frozen=True)
class RecordedVital:
    """One stored reading and how it compares with the reference range."""

    observation_id: int
    field: str
    name: str
    value: Decimal
    unit: str
    flag: str | None  # N, L, H, LL, HH; None where no range applies

    @property
    def abnormal(self) -> bool:
        """Outside the reference range."""
        return self.flag not in (None, "N")


def abnormal_flag(spec: VitalSpec, value: Decimal) -> str | None:
    """N/L/H, or LL/HH at critical limits; None when the sign has no reference range."""
    if spec.low is None and spec.high is None:
        return None
    if spec.crit_low is not None and value <= spec.crit_low:
        return "LL"
    if spec.crit_high is not None and value >= spec.crit_high:
        return "HH"
    if spec.low is not None and value < spec.low:
        return "L"
    if spec.high is not None and value > spec.high:
        return "H"
    return "N"


def _number(spec: VitalSpec, given: object) -> Decimal:
    """The reading as a Decimal at the sign's precision, or a refusal key."""
    try:
        value = Decimal(str(given).strip())
    except InvalidOperation:
        raise InvalidVitals([f"vitals.bad_{spec.field}"]) from None
    if not value.is_finite():
        raise InvalidVitals([f"vitals.bad_{spec.field}"])
    value = value.quantize(Decimal(1).scaleb(-spec.decimals), rounding=ROUND_HALF_UP)
    if not spec.plausible[0] <= value <= spec.plausible[1]:
        raise InvalidVitals([f"vitals.bad_{spec.field}"])
    return value


def validate_vitals(
    readings: dict[str, object], observed_at: dt.datetime, now: dt.datetime
) -> dict[str, Decimal]:
    """Every reading checked; all problems at once, as i18n keys."""
    problems: list[str] = []
    values: dict[str, Decimal] = {}
    for spec in VITALS:
        given = readings.get(spec.field)
        if given is None or (isinstance(given, str) and not given.strip()):
            continue
        try:
            values[spec.field] = _number(spec, given)
        except InvalidVitals as bad:
            problems.extend(bad.problems)
    if not values and not problems:
        problems.append("vitals.nothing_entered")
    systolic, diastolic = values.get("systolic"), values.get("diastolic")
    if systolic is not None and diastolic is not None and systolic <= diastolic:
        problems.append("vitals.bp_order")
    if observed_at.tzinfo is None or observed_at > now + _CLOCK_SLACK:
        problems.append("vitals.time_future")
    elif observed_at < now - _OLDEST:
        problems.append("vitals.time_too_old")
    if problems:
        raise InvalidVitals(problems)
    return values


def _encounter_for(session: Session, patient_id: int, encounter_id: int | None) -> int | None:
    """The given encounter if it is the patient's, else the patient's latest open one."""
    if encounter_id is not None:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None or encounter.voided or encounter.patient_id != patient_id:
            raise InvalidVitals(["vitals.encounter_invalid"])
        return encounter.id
    return latest_open_encounter_id(session, patient_id)


@requires(Privilege.RECORD_VITALS)
def record_vitals(
    *,
    session: Session,
    actor: Actor,
    patient_id: int,
    encounter_id: int | None = None,
    temperature_c: object = None,
    pulse_bpm: object = None,
    resp_rate: object = None,
    systolic: object = None,
    diastolic: object = None,
    spo2: object = None,
    weight_kg: object = None,
    height_cm: object = None,
    pain_score: object = None,
    observed_at: dt.datetime | None = None,
) -> list[RecordedVital]:
    """Store a set of vital signs (one observation each) with reference ranges and flags."""
    patient = session.get(Patient, patient_id)
    if patient is None or patient.voided or patient.merged_into_id is not None:
        raise InvalidVitals(["vitals.patient_invalid"])
    clinical_access(session, actor, patient_id)
    now = utcnow()
    when = observed_at or now
    readings: dict[str, object] = {
        "temperature_c": temperature_c,
        "pulse_bpm": pulse_bpm,
        "resp_rate": resp_rate,
        "systolic": systolic,
        "diastolic": diastolic,
        "spo2": spo2,
        "weight_kg": weight_kg,
        "height_cm": height_cm,
        "pain_score": pain_score,
    }
    values = validate_vitals(readings, when, now)
    encounter = _encounter_for(session, patient_id, encounter_id)
    rows = []
    for field, value in values.items():
        spec = VITAL_INDEX[field]
        row = Observation(
            patient_id=patient_id,
            encounter_id=encounter,
            category="vital",
            code_system="LOINC",
            code=spec.loinc,
            name=spec.name,
            value_num=value,
            unit=spec.unit,
            ref_low=spec.low,
            ref_high=spec.high,
            abnormal_flag=abnormal_flag(spec, value),
            observed_at=when,
            recorded_by_id=actor.user_id,
            created_by_id=actor.user_id,
        )
        session.add(row)
        rows.append((spec, row))
    session.flush()
    recorded = [
        RecordedVital(
            observation_id=row.id,
            field=spec.field,
            name=spec.name,
            value=value,
            unit=spec.unit,
            flag=row.abnormal_flag,
        )
        for (spec, row), value in zip(rows, values.values(), strict=True)
    ]
    audit.record(
        session,
        actor,
        "records.record_vitals",
        patient_id=patient_id,
        object_type="observation",
        object_id=recorded[0].observation_id,
        detail={"count": len(recorded), "abnormal": sum(r.abnormal for r in recorded)},
    )
    return recorded
