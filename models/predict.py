"""Scoring: a cohort (or one subject) with the active model, with reasons, stored in risk_scores.

``cims score`` and the risk report page both go through ``_score_cohort``, so they list
the same patients. Scoring runs with one OpenMP thread: HistGradientBoosting's single-row
latency spikes to hundreds of milliseconds with the default thread pool.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from cims.base import utcnow
from cims.governance.models import ModelVersion, RiskScore
from cims.patients.models import Patient
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires
from models.explain import Factor, contributions, top_factors
from models.features import COHORTS, READMISSION, SPECS, build_frame
from models.registry import ModelError, active_version, load_version
from models.train import predict

BATCH = 5000


def cohort_frame(session: Session, cohort: str, as_of: dt.datetime) -> pd.DataFrame:
    """The feature frame of a named cohort at ``as_of``."""
    model_name = COHORTS.get(cohort)
    if model_name is None:
        raise ModelError("models.error.unknown_cohort")
    days = 7 if cohort.endswith("7d") else 30
    window = dt.timedelta(days=days)
    if model_name == READMISSION:
        return build_frame(session, model_name, as_of=as_of, since=as_of - window)
    return build_frame(
        session,
        model_name,
        as_of=as_of,
        statuses=("booked",),
        scheduled_from=as_of,
        scheduled_to=as_of + window,
    )


@dataclass(frozen=True)
class Scored:
    """One scored subject."""

    subject_id: int
    patient_id: int
    index_time: dt.datetime
    score: float
    factors: tuple[Factor, ...]


def score_frame(version: ModelVersion, frame: pd.DataFrame) -> list[Scored]:
    """Scores and reasons of every row of ``frame`` (streamed in batches, one thread)."""
    model = load_version(version)
    features = list(version.features)
    kind = str(version.metrics.get("kind", "hgb"))
    explain_meta = version.metrics.get("explain", {})
    out: list[Scored] = []
    with threadpool_limits(1):
        for start in range(0, len(frame), BATCH):
            part = frame.iloc[start : start + BATCH]
            x = part[features]
            scores = predict(model, x)
            matrix = contributions(kind, model, x, explain_meta, lambda z: predict(model, z))
            reasons = top_factors(x, matrix)
            for i, row in enumerate(part.itertuples(index=False)):
                out.append(
                    Scored(
                        int(row.subject_id),
                        int(row.patient_id),
                        row.index_time.to_pydatetime(),
                        float(scores[i]),
                        tuple(reasons[i]),
                    )
                )
    return out


def _store(session: Session, version: ModelVersion, scored: list[Scored]) -> None:
    if not scored:
        return
    subject_type = SPECS[version.model_name].subject_type
    session.execute(
        insert(RiskScore),
        [
            {
                "model_version_id": version.id,
                "patient_id": s.patient_id,
                "subject_type": subject_type,
                "subject_id": s.subject_id,
                "score": Decimal(f"{min(max(s.score, 0.0), 0.99999):.5f}"),
                "factors": [f.as_json() for f in s.factors],
            }
            for s in scored
        ],
    )


def _version(session: Session, model_name: str, version_id: int | None) -> ModelVersion:
    if version_id is not None:
        version = session.get(ModelVersion, version_id)
        if version is None or version.model_name != model_name:
            raise ModelError("models.error.unknown_version")
        return version
    version = active_version(session, model_name)
    if version is None:
        raise ModelError("models.error.no_active_model")
    return version


def _score_cohort(
    session: Session, cohort: str, as_of: dt.datetime | None, version_id: int | None
) -> tuple[ModelVersion, list[Scored]]:
    """Score a cohort with the chosen (default: active) version, store, rank high to low."""
    model_name = COHORTS.get(cohort)
    if model_name is None:
        raise ModelError("models.error.unknown_cohort")
    version = _version(session, model_name, version_id)
    scored = score_frame(version, cohort_frame(session, cohort, as_of or utcnow()))
    _store(session, version, scored)
    scored.sort(key=lambda s: (-s.score, s.subject_id))
    return version, scored


@requires(Privilege.RUN_RISK_REPORTS)
def score_cohort(
    *,
    session: Session,
    actor: Actor,
    cohort: str,
    as_of: dt.datetime | None = None,
    version_id: int | None = None,
) -> tuple[ModelVersion, list[Scored]]:
    """Score a cohort and store the scores (``cims score``); ranked high to low."""
    version, scored = _score_cohort(session, cohort, as_of, version_id)
    audit.record(
        session,
        actor,
        "models.score",
        object_type="model_version",
        object_id=version.id,
        detail={"cohort": cohort, "rows": len(scored)},
    )
    return version, scored


@dataclass(frozen=True)
class ReportRow:
    """A line of the risk report: who, how high, and why."""

    rank: int
    patient_id: int
    mrn: str
    name: str
    subject_id: int
    index_time: dt.datetime
    score: float
    factors: tuple[Factor, ...]


@dataclass(frozen=True)
class RiskReport:
    """A ranked risk list of one cohort."""

    model_name: str
    version: int
    cohort: str
    generated_at: dt.datetime
    rows: tuple[ReportRow, ...]


@requires(Privilege.RUN_RISK_REPORTS)
def risk_report(
    *,
    session: Session,
    actor: Actor,
    cohort: str,
    as_of: dt.datetime | None = None,
    version_id: int | None = None,
) -> RiskReport:
    """The ranked list of a cohort with MRN and name (the access is audited)."""
    version, scored = _score_cohort(session, cohort, as_of, version_id)
    ids = {s.patient_id for s in scored}
    people = dict(
        (pid, (mrn, name))
        for pid, mrn, name in session.execute(
            select(Patient.id, Patient.mrn, Patient.full_name).where(Patient.id.in_(ids))
        )
    )
    rows = tuple(
        ReportRow(
            rank,
            s.patient_id,
            people[s.patient_id][0],
            people[s.patient_id][1],
            s.subject_id,
            s.index_time,
            s.score,
            s.factors,
        )
        for rank, s in enumerate(scored, start=1)
    )
    audit.record(
        session,
        actor,
        "models.risk_report",
        object_type="model_version",
        object_id=version.id,
        detail={"cohort": cohort, "rows": len(rows)},
    )
    return RiskReport(version.model_name, version.version, cohort, utcnow(), rows)


def iter_scores(session: Session, version: ModelVersion, frame: pd.DataFrame) -> Iterator[Scored]:
    """Stream scores of a large frame batch by batch (bench and batch jobs)."""
    for start in range(0, len(frame), BATCH):
        yield from score_frame(version, frame.iloc[start : start + BATCH])


def single_score(version: ModelVersion, row: pd.DataFrame) -> float:
    """Score one row (one thread): the latency a page waits for."""
    model = load_version(version)
    with threadpool_limits(1):
        return float(predict(model, row[list(version.features)])[0])
