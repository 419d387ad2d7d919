"""``cims jobs ...``: run the daily housekeeping now (for cron) and show how it last went."""

from __future__ import annotations

import typer
from sqlalchemy import Engine, create_engine

from cims.clock import to_local
from cims.ops import scheduler

jobs_app = typer.Typer(help="Scheduled daily jobs.", no_args_is_help=True)


def _engine() -> Engine:
    from cims.db import database_url

    return create_engine(database_url())


@jobs_app.command("run-due")
def run_due() -> None:
    """Run every daily job whose current slot has not run anywhere yet; exit 1 if one failed."""
    engine = _engine()
    try:
        ran = scheduler.run_due_jobs(engine)
        runs = scheduler.last_runs(engine)
    finally:
        engine.dispose()
    if not ran:
        typer.echo("nothing due: every job's current slot has already run")
    failed = False
    for name in ran:
        run = runs[name]
        typer.echo(f"{name}: {run.status} {run.detail or {}}")
        failed |= run.status == "failed"
    if failed:
        raise typer.Exit(code=1)


@jobs_app.command("status")
def status() -> None:
    """The last run of each daily job: slot, outcome and summary."""
    engine = _engine()
    try:
        runs = scheduler.last_runs(engine)
    finally:
        engine.dispose()
    for job in scheduler.JOBS:
        run = runs.get(job.name)
        if run is None:
            typer.echo(f"{job.name}: never run")
            continue
        slot = to_local(run.scheduled_for)
        typer.echo(f"{job.name}: {slot:%Y-%m-%d %H:%M} {run.status} {run.detail or {}}")


@jobs_app.command("scheduler")
def scheduler_loop(
    interval: float = typer.Option(60.0, help="Seconds between checks for due jobs."),
) -> None:
    """Run the scheduler in the foreground (instead of inside the app processes)."""
    engine = _engine()
    worker = scheduler.Scheduler(engine, interval)
    typer.echo(f"scheduler running (every {interval:g} s); Ctrl-C stops it", err=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(1.0)
    except KeyboardInterrupt:
        worker.stop()
    finally:
        engine.dispose()
