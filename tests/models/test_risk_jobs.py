"""The nightly scoring job scores the cohorts with the active models, once per night."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.governance.models import RiskScore
from models.jobs import JOB_NAME, nightly_scoring, register_risk_jobs


def test_nightly_scoring_stores_fresh_scores(risk_engine: Engine, trained: dict[str, int]) -> None:
    with Session(risk_engine) as session:
        before = session.scalar(select(func.count(RiskScore.id))) or 0
        done = nightly_scoring(session, utcnow())
        session.flush()
        after = session.scalar(select(func.count(RiskScore.id))) or 0
        session.rollback()
    assert set(done) == {"discharged_7d", "booked_next_7d"}
    rows = sum(d["rows"] for d in done.values() if isinstance(d, dict))
    assert rows > 0 and after - before == rows


def test_the_job_registers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from cims.ops import scheduler

    monkeypatch.setattr(scheduler, "JOBS", scheduler.JOBS)  # restored after the test
    register_risk_jobs(force=True)
    register_risk_jobs(force=True)
    assert [job.name for job in scheduler.JOBS].count(JOB_NAME) == 1
