"""Daily jobs run once per slot across processes, catch up after downtime, record failures."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

import factories
from cims.base import utcnow
from cims.governance.models import JobRun
from cims.ops import scheduler
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent, User

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def jobs_engine(fresh_database: Callable[[str], str]) -> Iterator[Engine]:
    """A database of its own: the scheduler commits, as it does in the app."""
    engine = create_engine(fresh_database("jobs"))
    with Session(engine) as session, session.begin():
        ensure_roles_and_privileges(session)
    yield engine
    engine.dispose()


def _local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def test_the_slot_is_todays_after_the_hour_and_yesterdays_before() -> None:
    assert scheduler.current_slot(_local(2026, 11, 26, 2, 59)) == _local(2026, 11, 25, 3, 0)
    assert scheduler.current_slot(_local(2026, 11, 26, 3, 0)) == _local(2026, 11, 26, 3, 0)
    assert scheduler.current_slot(_local(2026, 11, 26, 23, 0)) == _local(2026, 11, 26, 3, 0)
    half_hourly = scheduler.current_slot(_local(2026, 11, 26, 9, 47), 30)
    assert half_hourly == _local(2026, 11, 26, 9, 30)


def _counting_job(counter: list[int]) -> scheduler.DailyJob:
    def run(session: Session, now: dt.datetime) -> dict[str, Any]:
        counter.append(1)
        return {"n": len(counter)}

    return scheduler.DailyJob("count", run)


def test_many_processes_racing_run_a_slot_once(jobs_engine: Engine) -> None:
    counter: list[int] = []
    jobs = (_counting_job(counter),)
    now = _local(2026, 11, 26, 9, 0)
    start = threading.Barrier(6)

    def process() -> None:
        start.wait()
        scheduler.run_due_jobs(jobs_engine, now=now, jobs=jobs)

    threads = [threading.Thread(target=process) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter == [1]
    # Later the same day: still done. The next day (or after downtime): once more.
    assert scheduler.run_due_jobs(jobs_engine, now=now + dt.timedelta(hours=5), jobs=jobs) == []
    later = _local(2026, 11, 29, 8, 0)
    assert scheduler.run_due_jobs(jobs_engine, now=later, jobs=jobs) == ["count"]
    assert counter == [1, 1]
    run = scheduler.last_runs(jobs_engine)["count"]
    assert run.status == "succeeded" and run.detail == {"n": 2}
    assert run.scheduled_for == _local(2026, 11, 29, 3, 0)


def test_a_failing_job_is_recorded_and_its_writes_roll_back(jobs_engine: Engine) -> None:
    def broken(session: Session, now: dt.datetime) -> dict[str, Any]:
        factories.user(session, "nurse", username="half_written")
        raise RuntimeError("disk full")

    jobs = (scheduler.DailyJob("broken", broken),)
    assert scheduler.run_due_jobs(jobs_engine, now=utcnow(), jobs=jobs) == ["broken"]
    run = scheduler.last_runs(jobs_engine)["broken"]
    assert run.status == "failed" and run.detail == {"error": "RuntimeError"}
    assert run.finished_at is not None
    with Session(jobs_engine) as session:
        assert session.scalar(select(User).where(User.username == "half_written")) is None


def test_dormant_accounts_are_disabled_by_the_daily_job(jobs_engine: Engine) -> None:
    now = utcnow()
    with Session(jobs_engine) as session, session.begin():
        old = factories.user(session, "nurse", username="long_gone")
        recent = factories.user(session, "nurse", username="on_shift")
        old.last_login_at = now - dt.timedelta(days=120)
        recent.last_login_at = now - dt.timedelta(days=3)
    assert "disable_dormant_accounts" in scheduler.run_due_jobs(jobs_engine, now=now)
    with Session(jobs_engine) as session:
        active = dict(session.execute(select(User.username, User.is_active)).all())
        assert active["long_gone"] is False and active["on_shift"] is True
        audited = session.scalar(
            select(func.count()).where(AuditEvent.action == "admin.disable_dormant")
        )
        assert audited == 1
        run = session.scalar(select(JobRun).where(JobRun.job == "disable_dormant_accounts"))
        assert run is not None and run.status == "succeeded" and run.detail == {"disabled": 1}


def test_two_scheduler_processes_run_each_job_once(
    jobs_engine: Engine,
) -> None:
    import os
    import subprocess
    import sys

    from cims.config import PROJECT_ROOT

    env = dict(os.environ, CIMS_DATABASE_URL=jobs_engine.url.render_as_string(False))
    command = [sys.executable, "-m", "cims", "jobs", "run-due"]
    processes = [
        subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert all(p.returncode in (0, 1) for p in processes), outputs
    with Session(jobs_engine) as session:
        runs = session.execute(
            select(JobRun.job, JobRun.scheduled_for, func.count()).group_by(
                JobRun.job, JobRun.scheduled_for
            )
        ).all()
    assert runs and all(count == 1 for _, _, count in runs)
    assert {job.name for job in scheduler.JOBS} <= {job for job, _, _ in runs}


def test_old_successful_runs_of_frequent_jobs_are_pruned_daily(jobs_engine: Engine) -> None:
    now = utcnow()
    old, recent = now - dt.timedelta(days=20), now - dt.timedelta(days=2)
    rows = [
        ("import_hl7_drop", old, "succeeded"),  # every minute: pruned when old
        ("import_hl7_drop", old + dt.timedelta(minutes=1), "failed"),  # kept: a failure
        ("import_hl7_drop", recent, "succeeded"),  # kept: recent
        ("backup", old, "succeeded"),  # kept: a daily job's history
    ]
    with Session(jobs_engine) as session, session.begin():
        session.add_all(
            JobRun(job=job, scheduled_for=at, status=status, finished_at=at)
            for job, at, status in rows
        )
    jobs = tuple(job for job in scheduler.JOBS if job.name == "prune_job_runs")
    assert scheduler.run_due_jobs(jobs_engine, now=now, jobs=jobs) == ["prune_job_runs"]
    assert scheduler.last_runs(jobs_engine)["prune_job_runs"].detail == {"deleted": 1}
    with Session(jobs_engine) as session:
        left = session.execute(
            select(JobRun.job, JobRun.status).where(JobRun.job != "prune_job_runs")
        ).all()
    assert sorted(left) == [
        ("backup", "succeeded"),
        ("import_hl7_drop", "failed"),
        ("import_hl7_drop", "succeeded"),
    ]
