"""Scheduled jobs that run once per slot across every app process, and catch up after downtime.

Each job has one slot a day (hospital-local time, ``settings.daily_jobs_at``) or one every
N minutes. A process claims a slot by inserting ``(job, scheduled_for)`` into ``job_runs``,
whose unique constraint lets exactly one claimant win however many processes race for it;
the winner runs the job in its own transaction, holding a PostgreSQL advisory lock per job
(so a slow run is never overlapped by the next slot's), and records how it ended. A process
that was down at the slot time claims it at its next tick, so a missed night still runs once.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.clock import local_zone
from cims.config import get_settings
from cims.governance.models import JobRun
from cims.security.models import SystemFlag

log = logging.getLogger("cims.jobs")


@dataclass(frozen=True)
class DailyJob:
    """A named piece of housekeeping and the function that does it (returns a summary).

    Daily at ``settings.daily_jobs_at`` unless ``every_minutes`` gives a shorter period;
    ``at_setting`` names another Settings time field for the daily slot (``backup_at``).
    """

    name: str
    run: Callable[[Session, dt.datetime], dict[str, Any]]
    every_minutes: int | None = None
    at_setting: str | None = None


def _disable_dormant(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.security.reviews import disable_dormant

    names = disable_dormant(session, now=now, days=get_settings().dormant_days)
    return {"disabled": len(names)}


def _generate_slots(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.appointments.booking import generate_slots

    start = now.astimezone(local_zone()).date()
    return {"slots": generate_slots(session, start=start, days=get_settings().slot_horizon_days)}


def _mark_no_shows(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.appointments.booking import mark_no_shows

    return {"no_shows": mark_no_shows(session, now=now)}


def _reconcile_payments(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.billing.online import reconcile
    from cims.billing.sandbox import SandboxProvider

    return reconcile(session, SandboxProvider(), now=now).summary()


def _evaluate_reminders(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.engagement.reminders import evaluate_reminders

    return evaluate_reminders(session, now)


def _backup(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.ops.backup_service import scheduled_backup

    return scheduled_backup(session, now)


def _verify_latest_backup(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.ops.backup_service import scheduled_verify

    return scheduled_verify(session, now)


def _import_hl7_drop(session: Session, now: dt.datetime) -> dict[str, Any]:
    from cims.interop.hl7_drop import scheduled_drop_import

    return scheduled_drop_import(session, now)


# Runs of jobs that come round more often than hourly are kept this long when they
# succeeded (the drop-folder check alone would add 1,440 rows a day); failures and the
# daily jobs' history are kept.
FREQUENT_RUNS_KEPT: Final = dt.timedelta(days=14)


def _prune_job_runs(session: Session, now: dt.datetime) -> dict[str, Any]:
    frequent = [job.name for job in JOBS if job.every_minutes and job.every_minutes < 60]
    result = session.execute(
        delete(JobRun).where(
            JobRun.job.in_(frequent),
            JobRun.status == "succeeded",
            JobRun.scheduled_for < now - FREQUENT_RUNS_KEPT,
        )
    )
    return {"deleted": int(result.rowcount or 0)}  # type: ignore[attr-defined]


JOBS: tuple[DailyJob, ...] = (
    DailyJob("disable_dormant_accounts", _disable_dormant),
    DailyJob("generate_slots", _generate_slots),
    DailyJob("mark_no_shows", _mark_no_shows, every_minutes=30),
    DailyJob("reconcile_payments", _reconcile_payments, every_minutes=15),
    DailyJob("evaluate_reminders", _evaluate_reminders, every_minutes=15),
    DailyJob("import_hl7_drop", _import_hl7_drop, every_minutes=1),
    DailyJob("backup", _backup, at_setting="backup_at"),
    DailyJob("verify_latest_backup", _verify_latest_backup),
    DailyJob("prune_job_runs", _prune_job_runs),
)


def current_slot(
    now: dt.datetime, every_minutes: int | None = None, at_setting: str | None = None
) -> dt.datetime:
    """The latest slot at or before ``now`` (UTC): daily at the local hour, or every N minutes."""
    if every_minutes:
        period = every_minutes * 60
        return dt.datetime.fromtimestamp(int(now.timestamp()) // period * period, dt.UTC)
    local = now.astimezone(local_zone())
    at: dt.time = getattr(get_settings(), at_setting or "daily_jobs_at")
    slot = dt.datetime.combine(local.date(), at, tzinfo=local_zone())
    if slot > local:
        slot -= dt.timedelta(days=1)
    return slot.astimezone(dt.UTC)


def _claim(engine: Engine, job: str, slot: dt.datetime) -> int | None:
    """Insert this slot's run row; None if another process already has it."""
    with Session(engine) as session, session.begin():
        claimed = session.scalar(
            insert(JobRun)
            .values(job=job, scheduled_for=slot, status="running")
            .on_conflict_do_nothing(index_elements=["job", "scheduled_for"])
            .returning(JobRun.id)
        )
    return None if claimed is None else int(claimed)


def _finish(engine: Engine, run_id: int, status: str, detail: dict[str, Any]) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(status=status, finished_at=utcnow(), detail=detail)
        )


def run_due_jobs(
    engine: Engine, *, now: dt.datetime | None = None, jobs: tuple[DailyJob, ...] | None = None
) -> list[str]:
    """Run every job whose current slot no process has claimed yet; returns the ones run here."""
    now = now or utcnow()
    ran = []
    # JOBS is read at call time: composition roots may register more jobs at start-up.
    for job in JOBS if jobs is None else jobs:
        run_id = _claim(engine, job.name, current_slot(now, job.every_minutes, job.at_setting))
        if run_id is None:
            continue
        try:
            with Session(engine) as session, session.begin():
                # A slow run of this job (an earlier slot, another process) still holding its
                # advisory lock means this slot is skipped rather than run alongside it.
                locked = session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"),
                    {"name": f"cims.job.{job.name}"},
                )
                detail = job.run(session, now) if locked else {"skipped": "still running"}
        except Exception as error:  # recorded, and the next slot tries again
            log.exception("job %s failed", job.name)
            _finish(engine, run_id, "failed", {"error": type(error).__name__})
        else:
            _finish(engine, run_id, "succeeded", detail)
            log.info("job %s succeeded", job.name, extra={"job": job.name, "summary": detail})
        ran.append(job.name)
    return ran


def last_runs(engine: Engine) -> dict[str, JobRun]:
    """The most recent run of each job (for the admin's status view and the CLI)."""
    with Session(engine) as session:
        rows = session.scalars(
            select(JobRun)
            .ext(distinct_on(JobRun.job))
            .order_by(JobRun.job, JobRun.scheduled_for.desc())
        ).all()
        session.expunge_all()
    return {row.job: row for row in rows}


HEARTBEAT: Final = "scheduler_heartbeat"


def beat(engine: Engine) -> None:
    """Record that a scheduler is alive (the health check reads its age)."""
    with Session(engine) as session, session.begin():
        session.execute(
            insert(SystemFlag)
            .values(key=HEARTBEAT, value={"pid": os.getpid()}, updated_at=utcnow())
            .on_conflict_do_update(
                index_elements=["key"],
                set_={"value": {"pid": os.getpid()}, "updated_at": utcnow()},
            )
        )


class Scheduler(threading.Thread):
    """A daemon thread that checks for due jobs every ``interval`` seconds."""

    def __init__(self, engine: Engine, interval: float = 60.0) -> None:
        super().__init__(name="cims-scheduler", daemon=True)
        self.engine = engine
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Tick until stopped; a database hiccup is logged and retried next tick."""
        while not self._stop_event.is_set():
            try:
                beat(self.engine)
                run_due_jobs(self.engine)
            except Exception:
                log.exception("scheduler tick failed")
            self._stop_event.wait(self.interval)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait briefly for it."""
        self._stop_event.set()
        self.join(timeout)


_process_scheduler: Scheduler | None = None
_process_lock = threading.Lock()


def ensure_scheduler(engine: Engine, interval: float = 60.0) -> Scheduler:
    """The one scheduler thread of this process, started on first call."""
    global _process_scheduler
    with _process_lock:
        if _process_scheduler is None:
            _process_scheduler = Scheduler(engine, interval)
            _process_scheduler.start()
            atexit.register(_process_scheduler.stop, 2.0)
        return _process_scheduler
