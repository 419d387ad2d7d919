"""Post-visit satisfaction surveys: one per completed visit, results for managers.

Ratings are 1–5 (waiting, doctor, environment, billing); "would you recommend us" is 0–10,
from which the Net Promoter Score is (promoters 9–10 minus detractors 0–6) per cent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import local_zone, to_local
from cims.engagement.errors import InvalidEngagement, refuse_if
from cims.engagement.models import Survey
from cims.org.models import Department
from cims.records.models import Encounter
from cims.security import audit
from cims.security.rbac import AccessDenied, Actor, Privilege, requires

SURVEY_DAYS: Final = 30  # a visit can be rated for this long after it ended
MAX_COMMENT: Final = 500


@dataclass(frozen=True)
class VisitToRate:
    """A completed visit of mine that has no answered survey yet."""

    encounter_id: int
    ended_at: dt.datetime  # hospital-local
    encounter_type: str
    department_zh: str
    department_en: str


@requires(Privilege.PORTAL_SELF)
def list_visits_to_rate(*, session: Session, actor: Actor) -> list[VisitToRate]:
    """My visits of the last 30 days that ended and are not yet rated."""
    if actor.patient_id is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    since = utcnow() - dt.timedelta(days=SURVEY_DAYS)
    rows = session.execute(
        select(Encounter, Department)
        .join(Department, Department.id == Encounter.department_id)
        .outerjoin(Survey, Survey.encounter_id == Encounter.id)
        .where(
            Encounter.patient_id == actor.patient_id,
            Encounter.status == "closed",
            Encounter.voided.is_(False),
            Encounter.ended_at >= since,
            or_(Survey.id.is_(None), Survey.completed_at.is_(None)),
        )
        .order_by(Encounter.ended_at.desc())
    ).all()
    audit.record(
        session,
        actor,
        "engagement.list_surveys",
        patient_id=actor.patient_id,
        object_type="survey",
        detail={"rows": len(rows)},
    )
    return [
        VisitToRate(
            encounter_id=e.id,
            ended_at=to_local(e.ended_at) or e.started_at,
            encounter_type=e.encounter_type,
            department_zh=d.name_zh,
            department_en=d.name_en,
        )
        for e, d in rows
    ]


def _rating_problems(ratings: dict[str, int], recommend: int, comment: str) -> list[str]:
    problems = [f"survey.bad_{name}" for name, value in ratings.items() if not 1 <= value <= 5]
    if not 0 <= recommend <= 10:
        problems.append("survey.bad_recommend")
    if len(comment) > MAX_COMMENT:
        problems.append("survey.comment_too_long")
    return problems


@requires(Privilege.PORTAL_SELF)
def submit_survey(
    *,
    session: Session,
    actor: Actor,
    encounter_id: int,
    waiting: int,
    doctor: int,
    environment: int,
    billing: int,
    recommend: int,
    comment: str = "",
) -> Survey:
    """Answer the survey of one of my completed visits (once per visit)."""
    if actor.patient_id is None:
        raise AccessDenied(Privilege.PORTAL_SELF, actor)
    ratings = {"waiting": waiting, "doctor": doctor, "environment": environment, "billing": billing}
    text = " ".join(comment.split())
    refuse_if(_rating_problems(ratings, recommend, text))
    # Locking the visit serialises two submissions of the same survey.
    visit = session.get(Encounter, encounter_id, with_for_update=True)
    if visit is None or visit.voided or visit.patient_id != actor.patient_id:
        raise LookupError(encounter_id)
    refuse_if(["survey.visit_not_finished"] if visit.status != "closed" else [])
    survey = session.scalar(select(Survey).where(Survey.encounter_id == encounter_id))
    if survey is not None and survey.completed_at is not None:
        raise InvalidEngagement(["survey.already_answered"])
    now = utcnow()
    if survey is None:
        survey = Survey(
            patient_id=visit.patient_id,
            encounter_id=visit.id,
            department_id=visit.department_id,
            sent_at=now,
        )
        session.add(survey)
    survey.completed_at = now
    survey.rating_waiting, survey.rating_doctor = waiting, doctor
    survey.rating_environment, survey.rating_billing = environment, billing
    survey.recommend = recommend
    survey.comment = text or None
    session.flush()
    audit.record(
        session,
        actor,
        "engagement.submit_survey",
        patient_id=visit.patient_id,
        object_type="survey",
        object_id=survey.id,
        detail={"recommend": recommend},
    )
    return survey


@dataclass(frozen=True)
class SurveyResult:
    """Averages and NPS of the answered surveys of one department in one month."""

    department_id: int | None
    department_zh: str | None
    department_en: str | None
    month: dt.date
    answered: int
    waiting: float | None
    doctor: float | None
    environment: float | None
    billing: float | None
    nps: float | None


@requires(Privilege.VIEW_ANALYTICS)
def survey_results(
    *, session: Session, actor: Actor, start: dt.date, end: dt.date
) -> list[SurveyResult]:
    """Answered surveys by department and (hospital-local) month completed in [start, end)."""
    zone = str(local_zone())
    month = func.date_trunc("month", func.timezone(zone, Survey.completed_at))
    local_day = func.date(func.timezone(zone, Survey.completed_at))
    promoters = func.count().filter(Survey.recommend >= 9)
    detractors = func.count().filter(Survey.recommend <= 6)
    scored = func.count(Survey.recommend)
    rows = session.execute(
        select(
            Survey.department_id,
            Department.name_zh,
            Department.name_en,
            month,
            func.count(),
            func.avg(Survey.rating_waiting),
            func.avg(Survey.rating_doctor),
            func.avg(Survey.rating_environment),
            func.avg(Survey.rating_billing),
            (promoters - detractors) * 100.0 / func.nullif(scored, 0),
        )
        .outerjoin(Department, Department.id == Survey.department_id)
        .where(
            and_(Survey.completed_at.is_not(None), local_day >= start, local_day < end),
        )
        .group_by(Survey.department_id, Department.name_zh, Department.name_en, month)
        .order_by(month, Department.name_en)
    ).all()
    audit.record(session, actor, "engagement.view_survey_results", detail={"rows": len(rows)})

    def avg(value: object) -> float | None:
        return None if value is None else round(float(value), 2)  # type: ignore[arg-type]

    return [
        SurveyResult(
            department_id=dept,
            department_zh=zh,
            department_en=en,
            month=m.date() if isinstance(m, dt.datetime) else m,
            answered=int(n),
            waiting=avg(w),
            doctor=avg(d),
            environment=avg(env),
            billing=avg(b),
            nps=avg(nps),
        )
        for dept, zh, en, m, n, w, d, env, b, nps in rows
    ]
