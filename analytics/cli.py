"""``cims analytics ...``: refresh the de-identified snapshot now, or show its age.

Importing this module (the CLI does) also registers the daily refresh job, so
``cims jobs run-due`` and ``cims jobs scheduler`` include it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from sqlalchemy import create_engine

from analytics.jobs import register_analytics_jobs
from analytics.snapshot import SnapshotBusy, build_snapshot, read_info, snapshot_path
from cims.clock import to_local

analytics_app = typer.Typer(help="Analytics snapshot: refresh, status.", no_args_is_help=True)
register_analytics_jobs()


@analytics_app.command("refresh")
def refresh(
    parquet: Annotated[bool, typer.Option(help="Also write partitioned Parquet.")] = False,
    full: Annotated[
        bool, typer.Option(help="Copy everything, not only what changed since the last refresh.")
    ] = False,
) -> None:
    """Bring the snapshot up to date from the configured database and swap it in atomically."""
    from cims.db import database_url

    engine = create_engine(database_url())
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    try:
        info = build_snapshot(
            url,
            parquet=parquet,
            full=full or None,
            progress=lambda f, step: typer.echo(f"{f:4.0%} {step}", err=True),
        )
    except SnapshotBusy:
        typer.echo("a refresh is already running", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"snapshot {info.path} built in {info.seconds:.1f} s ({info.mode})")
    for table, rows in sorted(info.rows.items()):
        typer.echo(f"  {table:14s} {rows:>12,}")


@analytics_app.command("status")
def status() -> None:
    """When the snapshot was built and how many rows each table holds."""
    info = read_info()
    if info is None:
        typer.echo(f"no snapshot yet at {snapshot_path()}")
        raise typer.Exit(code=1)
    age = dt.datetime.now(dt.UTC) - info.built_at
    built = to_local(info.built_at)
    hours = age.total_seconds() / 3600
    typer.echo(f"snapshot {info.path}: built {built:%Y-%m-%d %H:%M} ({hours:.1f} h ago)")
    for table, rows in sorted(info.rows.items()):
        typer.echo(f"  {table:14s} {rows:>12,}")
