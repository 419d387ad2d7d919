"""The scheduled snapshot refresh (hourly: it copies only what changed), registered by
the composition roots (app, CLI) at start.

``cims`` never imports ``analytics``, so the job cannot sit in ``cims.ops.scheduler.JOBS``
from the start; the app and the command line append it when they start.
"""

from __future__ import annotations

from typing import Final

from cims.config import get_settings

JOB_NAME: Final = "analytics_snapshot"


def register_analytics_jobs(*, force: bool = False) -> bool:
    """Append the hourly snapshot refresh to the scheduler's jobs (once); True if added.

    Test processes skip it unless ``force``: their app pages start a scheduler, and a
    test database must not overwrite the shared snapshot.
    """
    from analytics.service import scheduled_refresh
    from cims.ops import scheduler

    if get_settings().env == "test" and not force:
        return False
    if any(job.name == JOB_NAME for job in scheduler.JOBS):
        return False
    job = scheduler.DailyJob(JOB_NAME, scheduled_refresh, every_minutes=60)
    scheduler.JOBS = (*scheduler.JOBS, job)
    return True
