"""Feature frames built from the database, point-in-time correct.

Every feature of a row uses only rows whose event time is before the row's prediction
time (``index_time``): the discharge for readmission, the booking for no-show. Labels
look past it, but only up to ``as_of``; a row whose outcome window has not closed by
``as_of`` gets no label (NaN) and is left out of training.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

READMISSION = "readmission_30d"
NO_SHOW = "no_show"
READMIT_DAYS = 30

# Charlson-like comorbidity groups from ICD-10 prefixes: (weight, prefixes).
CHARLSON: dict[str, tuple[int, tuple[str, ...]]] = {
    "mi": (1, ("I21", "I22", "I25.2")),
    "chf": (1, ("I50", "I11.0", "I13.0", "I13.2")),
    "pvd": (1, ("I70", "I71", "I73.9")),
    "cvd": (1, ("I60", "I61", "I62", "I63", "I64", "I65", "I66", "I67", "I69", "G45")),
    "dementia": (1, ("F00", "F01", "F02", "F03", "G30")),
    "pulmonary": (1, ("J40", "J41", "J42", "J43", "J44", "J45", "J46", "J47")),
    "rheumatic": (1, ("M05", "M06", "M32", "M33", "M34")),
    "ulcer": (1, ("K25", "K26", "K27", "K28")),
    "liver": (1, ("K70", "K73", "K74", "B18")),
    "diabetes": (1, ("E10", "E11", "E12", "E13", "E14")),
    "diabetes_complicated": (
        2,
        tuple(f"E1{d}.{c}" for d in "01234" for c in "2345"),
    ),
    "hemiplegia": (2, ("G81", "G82")),
    "renal": (2, ("N18", "N19", "N03", "N05")),
    "cancer": (2, tuple(f"C{n:02d}" for n in range(0, 77)) + tuple(f"C{n}" for n in range(81, 98))),
    "metastatic": (6, ("C77", "C78", "C79", "C80")),
    "hiv": (6, ("B20", "B21", "B22", "B23", "B24")),
}
CHRONIC_PREFIXES = ("I10", "E11", "E78", "I25", "I50", "J44", "N18", "J45", "E03", "M17")

READMISSION_FEATURES: tuple[str, ...] = (
    "age",
    "male",
    "length_of_stay",
    "emergency_admission",
    "charlson",
    "ed_visits_6m",
    "admissions_6m",
    "admissions_12m",
    "outpatient_visits_12m",
    "heart_failure",
    "copd",
    "renal_disease",
    "diabetes",
    "diagnoses_this_stay",
)
NO_SHOW_FEATURES: tuple[str, ...] = (
    "age",
    "male",
    "lead_days",
    "same_day",
    "channel_portal",
    "channel_phone",
    "past_appointments",
    "past_no_shows",
    "past_no_show_rate",
    "visits_12m",
    "chronic_conditions",
    "scheduled_hour",
    "scheduled_weekday",
)
# Named cohorts a risk report or ``cims score`` can choose, and their model.
COHORTS: dict[str, str] = {
    "discharged_7d": READMISSION,
    "discharged_30d": READMISSION,
    "booked_next_7d": NO_SHOW,
    "booked_next_30d": NO_SHOW,
}
AGE_BANDS = ((0, 45, "0-44"), (45, 65, "45-64"), (65, 75, "65-74"), (75, 200, "75+"))


@dataclass(frozen=True)
class ModelSpec:
    """What a risk model predicts, for which subjects, from which features."""

    name: str
    subject_type: str  # encounter | appointment
    features: tuple[str, ...]
    baseline: str  # the clinical baseline's score column


SPECS: dict[str, ModelSpec] = {
    READMISSION: ModelSpec(READMISSION, "encounter", READMISSION_FEATURES, "lace"),
    NO_SHOW: ModelSpec(NO_SHOW, "appointment", NO_SHOW_FEATURES, "past_no_show_rate"),
}


def charlson_groups(codes: Iterable[str]) -> set[str]:
    """The Charlson comorbidity groups a set of ICD-10 codes falls into."""
    found: set[str] = set()
    for code in codes:
        for group, (_, prefixes) in CHARLSON.items():
            if code.upper().startswith(prefixes):
                found.add(group)
    if "diabetes_complicated" in found:
        found.discard("diabetes")
    if "metastatic" in found:
        found.discard("cancer")
    return found


def charlson_index(codes: Iterable[str]) -> int:
    """Charlson-like comorbidity score of ICD-10 codes (weights 1, 2 and 6)."""
    return sum(CHARLSON[g][0] for g in charlson_groups(codes))


def lace_score(los_days: Any, emergency: Any, charlson: Any, ed_visits: Any) -> Any:
    """The LACE index (van Walraven 2010) from its four parts; vectorised."""
    los = np.asarray(los_days, dtype=float)
    length = np.select(
        [los < 1, los < 2, los < 3, los < 4, los < 7, los < 14], [0, 1, 2, 3, 4, 5], 7
    )
    acuity = np.where(np.asarray(emergency, dtype=float) > 0, 3, 0)
    comorb = np.minimum(np.asarray(charlson, dtype=float), 4)
    comorb = np.where(comorb >= 4, 5, comorb)
    ed = np.minimum(np.asarray(ed_visits, dtype=float), 4)
    return length + acuity + comorb + ed


def age_band(age: pd.Series) -> pd.Series:
    """Age bands used for the fairness tables."""
    out = pd.Series("unknown", index=age.index, dtype=object)
    for low, high, label in AGE_BANDS:
        out[(age >= low) & (age < high)] = label
    return out


def _frame(session: Session, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    result = session.execute(text(sql), params)
    return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def _age(birth: pd.Series, moment: pd.Series) -> pd.Series:
    born = pd.to_datetime(birth, errors="coerce")
    at = pd.to_datetime(moment, utc=True).dt.tz_localize(None)
    return ((at - born).dt.days / 365.25).astype(float)


def _subject_filter(subject_ids: Sequence[int] | None, column: str) -> str:
    return "" if subject_ids is None else f" AND {column} = ANY(:ids)"


_READMISSION_SQL = """
WITH idx AS (
  SELECT e.id AS subject_id, e.patient_id, e.started_at, e.ended_at AS index_time
  FROM encounters e JOIN patients p ON p.id = e.patient_id
  WHERE e.encounter_type = 'inpatient' AND NOT e.voided AND e.ended_at IS NOT NULL
    AND COALESCE(e.disposition, 'home') <> 'deceased'
    AND NOT p.voided AND p.merged_into_id IS NULL
    AND e.ended_at <= :as_of AND e.ended_at >= :since AND e.ended_at < :until {filter}
)
SELECT idx.*, p.sex, p.birth_date,
  (SELECT count(*) FROM encounters o WHERE o.patient_id = idx.patient_id AND NOT o.voided
     AND o.encounter_type = 'emergency' AND o.started_at < idx.started_at - interval '12 hours'
     AND o.started_at >= idx.started_at - interval '182 days') AS ed_visits_6m,
  (SELECT count(*) FROM encounters o WHERE o.patient_id = idx.patient_id AND NOT o.voided
     AND o.encounter_type = 'emergency' AND o.disposition = 'admitted'
     AND o.started_at <= idx.started_at
     AND o.started_at >= idx.started_at - interval '2 days') AS emergency_admission,
  (SELECT count(*) FROM encounters o WHERE o.patient_id = idx.patient_id AND NOT o.voided
     AND o.encounter_type = 'inpatient' AND o.ended_at <= idx.started_at
     AND o.started_at >= idx.started_at - interval '182 days') AS admissions_6m,
  (SELECT count(*) FROM encounters o WHERE o.patient_id = idx.patient_id AND NOT o.voided
     AND o.encounter_type = 'inpatient' AND o.ended_at <= idx.started_at
     AND o.started_at >= idx.started_at - interval '365 days') AS admissions_12m,
  (SELECT count(*) FROM encounters o WHERE o.patient_id = idx.patient_id AND NOT o.voided
     AND o.encounter_type = 'outpatient' AND o.started_at < idx.started_at
     AND o.started_at >= idx.started_at - interval '365 days') AS outpatient_visits_12m,
  (SELECT count(*) FROM diagnoses d WHERE d.encounter_id = idx.subject_id AND NOT d.voided
     AND d.diagnosed_at <= idx.index_time) AS diagnoses_this_stay,
  (SELECT coalesce(array_agg(DISTINCT d.code), '{{}}') FROM diagnoses d
     WHERE d.patient_id = idx.patient_id AND NOT d.voided
     AND d.diagnosed_at <= idx.index_time) AS codes,
  (SELECT min(o.started_at) FROM encounters o WHERE o.patient_id = idx.patient_id
     AND NOT o.voided AND o.encounter_type = 'inpatient' AND o.started_at > idx.index_time
     AND o.started_at <= :as_of) AS next_admission
FROM idx JOIN patients p ON p.id = idx.patient_id
ORDER BY idx.index_time, idx.subject_id
"""


def readmission_frame(
    session: Session,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    subject_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per inpatient discharge up to ``as_of``: features, LACE, 30-day label."""
    params: dict[str, Any] = {
        "as_of": as_of,
        "since": since or dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
        "until": until or as_of + dt.timedelta(seconds=1),
        "ids": list(subject_ids or []),
    }
    sql = _READMISSION_SQL.format(filter=_subject_filter(subject_ids, "e.id"))
    raw = _frame(session, sql, params)
    out = pd.DataFrame(
        {
            "subject_id": raw["subject_id"].astype("int64"),
            "patient_id": raw["patient_id"].astype("int64"),
            "index_time": pd.to_datetime(raw["index_time"], utc=True),
        }
    )
    out["age"] = _age(raw["birth_date"], raw["index_time"]).values
    out["male"] = (raw["sex"] == "M").astype(float).values
    started = pd.to_datetime(raw["started_at"], utc=True)
    out["length_of_stay"] = ((out["index_time"] - started).dt.total_seconds() / 86400).values
    out["emergency_admission"] = (raw["emergency_admission"] > 0).astype(float).values
    groups = [charlson_groups(codes or ()) for codes in raw["codes"]]
    out["charlson"] = [float(sum(CHARLSON[g][0] for g in found)) for found in groups]
    for column in ("ed_visits_6m", "admissions_6m", "admissions_12m", "outpatient_visits_12m"):
        out[column] = raw[column].astype(float).values
    out["heart_failure"] = [float("chf" in g) for g in groups]
    out["copd"] = [float("pulmonary" in g) for g in groups]
    out["renal_disease"] = [float("renal" in g) for g in groups]
    out["diabetes"] = [float(bool({"diabetes", "diabetes_complicated"} & g)) for g in groups]
    out["diagnoses_this_stay"] = raw["diagnoses_this_stay"].astype(float).values
    out["lace"] = lace_score(
        out["length_of_stay"], out["emergency_admission"], out["charlson"], out["ed_visits_6m"]
    ).astype(float)
    out["sex"] = raw["sex"].values
    out["age_band"] = age_band(out["age"]).values
    out["label"] = _readmission_label(out["index_time"], raw["next_admission"], as_of)
    return out


def _readmission_label(index_time: pd.Series, next_admission: pd.Series, as_of: dt.datetime) -> Any:
    nxt = pd.to_datetime(next_admission, utc=True)
    window = pd.Timedelta(days=READMIT_DAYS)
    closed = index_time + window <= pd.Timestamp(as_of)
    hit = (nxt.notna() & (nxt - index_time <= window)).values
    label = np.where(hit, 1.0, 0.0)
    # A readmission already seen is final; otherwise the window must have closed.
    return np.where(hit | closed.values, label, np.nan)


_NO_SHOW_SQL = """
SELECT a.id AS subject_id, a.patient_id, a.booked_at AS index_time, a.scheduled_at,
  a.channel, a.status, p.sex, p.birth_date,
  (SELECT count(*) FROM appointments b WHERE b.patient_id = a.patient_id AND b.id <> a.id
     AND b.status IN ('seen', 'checked_in', 'no_show')
     AND b.scheduled_at < a.booked_at - interval '1 hour') AS past_appointments,
  (SELECT count(*) FROM appointments b WHERE b.patient_id = a.patient_id AND b.id <> a.id
     AND b.status = 'no_show'
     AND b.scheduled_at < a.booked_at - interval '1 hour') AS past_no_shows,
  (SELECT count(*) FROM appointments b WHERE b.patient_id = a.patient_id AND b.id <> a.id
     AND b.status IN ('seen', 'checked_in') AND b.scheduled_at < a.booked_at
     AND b.scheduled_at >= a.booked_at - interval '365 days') AS visits_12m,
  (SELECT count(DISTINCT left(d.code, 3)) FROM diagnoses d
     WHERE d.patient_id = a.patient_id AND NOT d.voided AND d.diagnosed_at < a.booked_at
     AND left(d.code, 3) = ANY(:chronic)) AS chronic_conditions
FROM appointments a JOIN patients p ON p.id = a.patient_id
WHERE a.status = ANY(:statuses) AND a.booked_at <= :as_of
  AND NOT p.voided AND p.merged_into_id IS NULL
  AND a.scheduled_at >= :scheduled_from AND a.scheduled_at < :scheduled_to {filter}
ORDER BY a.booked_at, a.id
"""
OUTCOME_STATUSES = ("seen", "checked_in", "no_show")


def no_show_frame(
    session: Session,
    *,
    as_of: dt.datetime,
    statuses: Sequence[str] = OUTCOME_STATUSES,
    scheduled_from: dt.datetime | None = None,
    scheduled_to: dt.datetime | None = None,
    subject_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per appointment booked up to ``as_of``: features, past no-show rate, label."""
    params: dict[str, Any] = {
        "as_of": as_of,
        "statuses": list(statuses),
        "scheduled_from": scheduled_from or dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
        "scheduled_to": scheduled_to or dt.datetime(2999, 1, 1, tzinfo=dt.UTC),
        "chronic": list(CHRONIC_PREFIXES),
        "ids": list(subject_ids or []),
    }
    sql = _NO_SHOW_SQL.format(filter=_subject_filter(subject_ids, "a.id"))
    raw = _frame(session, sql, params)
    index_time = pd.to_datetime(raw["index_time"], utc=True)
    scheduled = pd.to_datetime(raw["scheduled_at"], utc=True)
    out = pd.DataFrame(
        {
            "subject_id": raw["subject_id"].astype("int64"),
            "patient_id": raw["patient_id"].astype("int64"),
            "index_time": index_time,
        }
    )
    out["age"] = _age(raw["birth_date"], raw["scheduled_at"]).values
    out["male"] = (raw["sex"] == "M").astype(float).values
    out["lead_days"] = ((scheduled - index_time).dt.total_seconds() / 86400).clip(lower=0).values
    out["same_day"] = (out["lead_days"] < 1).astype(float)
    out["channel_portal"] = (raw["channel"] == "portal").astype(float).values
    out["channel_phone"] = (raw["channel"] == "phone").astype(float).values
    past = raw["past_appointments"].astype(float)
    missed = raw["past_no_shows"].astype(float)
    out["past_appointments"] = past.values
    out["past_no_shows"] = missed.values
    # Smoothed towards a 5% prior so a first visit is not scored as zero risk.
    out["past_no_show_rate"] = ((missed + 0.05 * 2) / (past + 2)).values
    out["visits_12m"] = raw["visits_12m"].astype(float).values
    out["chronic_conditions"] = raw["chronic_conditions"].astype(float).values
    local = scheduled.dt.tz_convert("Asia/Shanghai")
    out["scheduled_hour"] = local.dt.hour.astype(float).values
    out["scheduled_weekday"] = local.dt.day_of_week.astype(float).values
    out["sex"] = raw["sex"].values
    out["age_band"] = age_band(out["age"]).values
    status = raw["status"]
    out["label"] = np.where(
        status == "no_show", 1.0, np.where(status.isin(["seen", "checked_in"]), 0.0, np.nan)
    )
    return out


def build_frame(session: Session, model_name: str, **filters: Any) -> pd.DataFrame:
    """The feature frame of ``model_name`` (see the two builders for the filters)."""
    if model_name == READMISSION:
        return readmission_frame(session, **filters)
    if model_name == NO_SHOW:
        return no_show_frame(session, **filters)
    raise KeyError(model_name)
