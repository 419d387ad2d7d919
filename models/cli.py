"""``cims train MODEL`` and ``cims score MODEL --cohort ...`` (registered in cims/cli.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.security.rbac import Actor
from models.features import COHORTS, SPECS
from models.jobs import register_risk_jobs

register_risk_jobs()  # `cims jobs run-due` and `cims scheduler` run it too


def _engine_url() -> str:
    from cims.db import database_url, ensure_database

    url = database_url()
    ensure_database(url)
    return url


def _actor(session: Session, username: str) -> Actor:
    from cims.security.accounts import build_actor
    from cims.security.models import User

    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or not user.is_active:
        typer.echo(f"no active account {username}", err=True)
        raise typer.Exit(code=1)
    return build_actor(session, user)


def train_command(
    model: Annotated[str, typer.Argument(help="readmission_30d or no_show.")],
    kind: Annotated[str, typer.Option(help="lr or hgb.")] = "hgb",
    activate: Annotated[
        bool, typer.Option("--promote", help="Make it the active version.")
    ] = False,
    as_user: Annotated[str, typer.Option("--as", help="Data-staff account.")] = "analyst",
) -> None:
    """Train a risk model, register it as a candidate version, print its metrics (JSON)."""
    from models.registry import ModelError, promote, train_model

    if model not in SPECS:
        typer.echo(f"unknown model {model}; choose from {', '.join(SPECS)}", err=True)
        raise typer.Exit(code=1)
    engine = create_engine(_engine_url())
    try:
        with Session(engine) as session:
            actor = _actor(session, as_user)
            try:
                version = train_model(session=session, actor=actor, model_name=model, kind=kind)
                if activate:
                    promote(session=session, actor=actor, version_id=version.id)
            except ModelError as error:
                typer.echo(error.key, err=True)
                raise typer.Exit(code=1) from None
            session.commit()
            summary = {
                "model": model,
                "version": version.version,
                "status": version.status,
                "rows": version.n_train,
                "grouped_cv": version.metrics["grouped_cv"],
            }
    finally:
        engine.dispose()
    typer.echo(json.dumps(summary, ensure_ascii=False))


def score_command(
    model: Annotated[str, typer.Argument(help="readmission_30d or no_show.")],
    cohort: Annotated[str, typer.Option(help=f"One of: {', '.join(COHORTS)}.")],
    as_user: Annotated[str, typer.Option("--as", help="Data-staff account.")] = "analyst",
    limit: Annotated[int, typer.Option(min=1, help="Rows to print.")] = 50,
) -> None:
    """Score a cohort with the active version; prints the ranked list as JSON lines."""
    from models.predict import score_cohort
    from models.registry import ModelError

    if COHORTS.get(cohort) != model:
        typer.echo(f"cohort {cohort} does not belong to model {model}", err=True)
        raise typer.Exit(code=1)
    engine = create_engine(_engine_url())
    try:
        with Session(engine) as session:
            actor = _actor(session, as_user)
            try:
                version, scored = score_cohort(session=session, actor=actor, cohort=cohort)
            except ModelError as error:
                typer.echo(error.key, err=True)
                raise typer.Exit(code=1) from None
            number = version.version
            session.commit()
    finally:
        engine.dispose()
    for row in scored[:limit]:
        line = {
            "patient_id": row.patient_id,
            "subject_id": row.subject_id,
            "score": round(row.score, 4),
            "reasons": [f.en for f in row.factors],
        }
        typer.echo(json.dumps(line, ensure_ascii=False))
    typer.echo(f"{len(scored)} scored with {model} v{number}", err=True)
