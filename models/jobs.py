"""The nightly risk scoring, registered by the composition roots (app, CLI) at start.

``cims`` never imports ``models``, so the job joins ``cims.ops.scheduler.JOBS`` when the
app or the command line starts. Each night the active models score the patients to act on
(discharged in the last 7 days, booked for the next 7), so the doctor's summary and the
high-risk reminder rule see fresh scores.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy.orm import Session

from cims.config import get_settings

JOB_NAME: Final = "score_risk_models"
NIGHTLY_COHORTS: Final = ("discharged_7d", "booked_next_7d")


def nightly_scoring(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Score each nightly cohort with its active model; a model not yet trained is skipped."""
    from models.predict import _score_cohort
    from models.registry import ModelError

    done: dict[str, Any] = {}
    for cohort in NIGHTLY_COHORTS:
        try:
            version, scored = _score_cohort(session, cohort, now, None)
        except ModelError as missing:
            done[cohort] = missing.key  # e.g. no active model yet
            continue
        done[cohort] = {"version": version.version, "rows": len(scored)}
    return done


def register_risk_jobs(*, force: bool = False) -> bool:
    """Append the nightly scoring to the scheduler's jobs (once); True if added."""
    from cims.ops import scheduler

    if get_settings().env == "test" and not force:
        return False
    if any(job.name == JOB_NAME for job in scheduler.JOBS):
        return False
    scheduler.JOBS = (*scheduler.JOBS, scheduler.DailyJob(JOB_NAME, nightly_scoring))
    return True
