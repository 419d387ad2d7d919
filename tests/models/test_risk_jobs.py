"""The nightly scoring job scores the cohorts with the active models, once per night."""

from __future__ import annotations

from pathlib import Path

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


def test_managers_see_risk_by_department_in_the_snapshot(
    risk_url: str, risk_engine: Engine, trained: dict[str, int], tmp_path: Path
) -> None:
    import datetime as dt

    from analytics.queries import Filters, risk_by_department
    from analytics.snapshot import build_snapshot, connect
    from cims.clock import local_today

    with Session(risk_engine) as session:
        nightly_scoring(session, utcnow())
        session.commit()
    info = build_snapshot(risk_url, folder=tmp_path)
    assert info.rows["risk_scores"] > 0
    today = local_today()  # scores are stamped in hospital-local time
    with connect(info.path) as con:
        frame = risk_by_department(con, Filters(today - dt.timedelta(days=3), today, (), ()))
        columns = {row[0] for row in con.execute("DESCRIBE risk_scores").fetchall()}
    assert "patient_id" not in columns and "patient_key" in columns  # pseudonymised
    assert set(frame["model_name"]) <= {"readmission_30d", "no_show"} and len(frame) > 0
    assert (frame.loc[~frame["suppressed"], "patients"] >= 5).all()
