"""The bodies of ``cims import synthea|fhir`` and ``cims export fhir`` (typer stays in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.governance.models import ImportRun
from cims.interop.fhir_export import PatientNotFound, export_all_fhir, export_patient_fhir
from cims.interop.fhir_import import import_fhir_bundle
from cims.interop.synthea import ImportReport, InvalidImport, import_synthea
from cims.security.accounts import build_actor
from cims.security.incidents import LockdownActive
from cims.security.models import User
from cims.security.rbac import AccessDenied, Actor


def _actor(session: Session, username: str) -> Actor:
    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or not user.is_active:
        typer.echo(f"no active account {username}", err=True)
        raise typer.Exit(code=1)
    return build_actor(session, user)


def _record_failure(url: str, source: str, label: str, error: str) -> None:
    """A failed import leaves no data, but its run record says it failed and why."""
    engine = create_engine(url)
    with Session(engine) as session:
        session.add(
            ImportRun(
                source_system=source,
                source_label=label,
                status="failed",
                finished_at=utcnow(),
                unknown={"error": error[:500]},
            )
        )
        session.commit()
    engine.dispose()


def _print(report: ImportReport) -> None:
    typer.echo(
        f"run {report.run_id} ({report.layout}) in {report.seconds:.1f} s"
        f" on {report.connections} connection{'s' if report.connections > 1 else ''}"
    )
    for table, rows in sorted(report.added.items()):
        typer.echo(f"  added {table:28s} {rows:>9,}")
    for stem, rows in sorted(report.skipped.items()):
        if rows:
            typer.echo(f"  already imported {stem:19s} {rows:>9,}")
    for stem, rows in sorted(report.rejected_counts.items()):
        typer.echo(f"  rejected {stem:27s} {rows:>9,}")
    for name in report.unknown.get("files", []):
        typer.echo(f"  unknown file {name}")
    for name, columns in report.unknown.get("columns", {}).items():
        typer.echo(f"  unknown columns in {name}: {', '.join(columns)}")


def run_synthea_import(url: str, folder: Path, *, as_user: str, report_file: Path | None) -> None:
    """Import a Synthea folder in one transaction and print the report."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            report = import_synthea(
                session=session,
                actor=_actor(session, as_user),
                folder=folder,
                progress=lambda fraction, step: typer.echo(f"{fraction:4.0%} {step}", err=True),
            )
    except InvalidImport as refusal:
        typer.echo(f"refused: {', '.join(refusal.problems)}", err=True)
        raise typer.Exit(code=1) from None
    except AccessDenied:
        typer.echo(f"{as_user} may not import data", err=True)
        raise typer.Exit(code=1) from None
    except Exception as failure:
        _record_failure(url, "synthea", folder.name, f"{type(failure).__name__}: {failure}")
        raise
    finally:
        engine.dispose()
    _print(report)
    if report_file is not None:
        report_file.write_text(report.rejected_csv(), encoding="utf-8")


def run_fhir_import(url: str, files: list[Path], *, as_user: str) -> None:
    """Import FHIR Bundles, all files in one transaction."""
    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            actor = _actor(session, as_user)
            for file in files:
                report = import_fhir_bundle(
                    session=session,
                    actor=actor,
                    bundle=file.read_text(encoding="utf-8"),
                    label=file.name,
                )
                added = sum(report.added.values())
                rejected = sum(report.rejected_counts.values())
                typer.echo(f"{file.name}: added {added}, rejected {rejected}")
    except InvalidImport as refusal:
        typer.echo(f"refused: {', '.join(refusal.problems)}", err=True)
        raise typer.Exit(code=1) from None
    except AccessDenied:
        typer.echo(f"{as_user} may not import data", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()


def run_fhir_export(url: str, mrn: str | None, output: Path | None, *, as_user: str) -> None:
    """Write one patient's Bundle (JSON) or every patient's (NDJSON)."""
    engine = create_engine(url)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with Session(engine) as session, session.begin():
            actor = _actor(session, as_user)
            if mrn:
                bundle = export_patient_fhir(session=session, actor=actor, mrn=mrn)
                out.write(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n")
            else:
                for line in export_all_fhir(session=session, actor=actor):
                    out.write(line + "\n")
    except PatientNotFound:
        typer.echo(f"no patient with MRN {mrn}", err=True)
        raise typer.Exit(code=1) from None
    except (AccessDenied, LockdownActive) as refusal:
        typer.echo(f"export refused: {refusal}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
        if output:
            out.close()
