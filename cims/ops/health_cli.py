"""``cims health``: the installation's health checks; exit 1 when any check fails."""

from __future__ import annotations

import json

import typer
from sqlalchemy import create_engine

from cims.i18n import t
from cims.ops.health import health_report, overall


def health(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Database, migrations, disk, last backup, audit chain and scheduler heartbeat."""
    from cims.db import database_url

    engine = create_engine(database_url())
    try:
        checks = health_report(engine)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"check": c.name, "level": c.level, "message": t(c.message, "en", **c.params)}
                    for c in checks
                ],
                ensure_ascii=False,
            )
        )
    else:
        for check in checks:
            message = t(check.message, "en", **check.params)
            typer.echo(f"{check.level.upper():4}  {check.name:13} {message}")
    if overall(checks) == "fail":
        raise typer.Exit(code=1)
