"""Command line (``python -m cims ...``): database set-up, demo data, users, serving."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from analytics.cli import analytics_app  # composition root: the CLI may use analytics
from cims import migrate as migrations
from cims.config import PROJECT_ROOT, get_settings
from cims.ops.backup_cli import backup_app
from cims.ops.health_cli import health
from cims.ops.jobs_cli import jobs_app, scheduler_loop
from cims.security.audit_cli import audit_app
from cims.security.rbac import Actor

app = typer.Typer(help="CIMS hospital patient-information system.", no_args_is_help=True)
app.add_typer(audit_app, name="audit", help="Tamper-evident audit chain: verify, seal, anchor.")
import_app = typer.Typer(help="Load reference tables from files.", no_args_is_help=True)
app.add_typer(
    import_app,
    name="import",
    help="Load data from files: clinical codes, Synthea, FHIR, HL7 lab results.",
)
app.add_typer(jobs_app, name="jobs", help="Daily housekeeping: run what is due, show status.")
app.command("scheduler", help="Run the job scheduler in the foreground (same as jobs scheduler).")(
    scheduler_loop
)
app.add_typer(backup_app, name="backup", help="Encrypted backups: create, verify, restore, list.")
app.add_typer(analytics_app, name="analytics", help="Analytics snapshot: refresh, status.")
app.command("health")(health)

# Risk models live outside cims/; the command line is a composition root and may list them.
from models.cli import score_command, train_command  # noqa: E402

app.command("train")(train_command)
app.command("score")(score_command)


def _url() -> str:
    from cims.db import database_url, ensure_database

    url = database_url()
    ensure_database(url)
    return url


def _backup_before_upgrade(url: str) -> None:
    """An upgrade of a database that holds data starts from a fresh backup, or not at all."""
    from cims.ops.backup import create_backup
    from cims.ops.backup_format import backup_keys
    from cims.ops.backup_store import backup_dir

    current = migrations.current_revision(url)
    if current is None or current == migrations.head_revision() or _patient_count(url) == 0:
        return
    settings = get_settings()
    typer.echo(f"pending migrations from {current}: backing up first ...", err=True)
    result = create_backup(
        url, target_dir=backup_dir(settings), public_key_path=backup_keys(settings).public_key
    )
    typer.echo(f"backup before upgrade: {result.path}", err=True)


def _prepare(url: str) -> None:
    """Back up if an upgrade is due, migrate to head, load the reference data."""
    from cims.security.bootstrap import ensure_roles_and_privileges

    _backup_before_upgrade(url)
    migrations.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session:
        ensure_roles_and_privileges(session)
        session.commit()
    engine.dispose()


@app.command("init-db")
def init_db() -> None:
    """Create the database if needed, migrate it to the newest schema, load roles."""
    url = _url()
    _prepare(url)
    typer.echo(f"database ready at revision {migrations.current_revision(url)}")


@app.command("migrate")
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision (default: newest).")] = "head",
    check: Annotated[
        bool, typer.Option("--check", help="Only report; exit 1 when migrations are pending.")
    ] = False,
) -> None:
    """Apply schema migrations (Alembic) to the configured database."""
    url = _url()
    if check:
        current, head = migrations.current_revision(url), migrations.head_revision()
        if current == head:
            typer.echo(f"up to date at {current}")
            return
        typer.echo(f"pending: database at {current}, code at {head}")
        raise typer.Exit(code=1)
    migrations.upgrade(url, revision)
    typer.echo(f"migrated to {migrations.current_revision(url)}")


def _patient_count(url: str) -> int:
    from cims.patients.models import Patient

    engine = create_engine(url)
    with Session(engine) as session:
        count = session.scalar(select(func.count(Patient.id))) or 0
    engine.dispose()
    return count


@app.command("seed-demo")
def seed_demo(
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same hospital).")] = 42,
    reset: Annotated[bool, typer.Option(help="Empty the database first.")] = False,
    today: Annotated[
        str | None, typer.Option(help="Anchor date YYYY-MM-DD (default: today).")
    ] = None,
) -> None:
    """Load the demo hospital; refuses a database that already holds patients."""
    from cims.demo.seed import DemoDataExists
    from cims.demo.seed import seed_demo as run_seed

    url = _url()
    _prepare(url)
    engine = create_engine(url)
    anchor = dt.date.fromisoformat(today) if today else None
    try:
        report = run_seed(
            engine,
            patients=patients,
            seed=seed,
            reference_date=anchor,
            reset=reset,
            progress=lambda message: typer.echo(message, err=True),
        )
    except DemoDataExists:
        engine.dispose()
        typer.echo("the database already holds patients; use --reset to replace them", err=True)
        raise typer.Exit(code=1) from None
    # The demo's audit rows join the chain before the command returns.
    from cims.security.audit_chain import anchor_head

    anchor_head(engine, reason="seed-demo")
    engine.dispose()
    typer.echo(f"demo hospital loaded in {report.seconds:.1f} s")
    for table, rows in sorted(report.rows.items()):
        typer.echo(f"  {table:28s} {rows:>10,}")


@app.command("create-user")
def create_user(
    username: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[list[str], typer.Option(help="Role code; repeat for several.")],
    department: Annotated[
        list[str] | None, typer.Option(help="Department code; repeat for several.")
    ] = None,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create a staff account; TOTP is enrolled at its first sign-in."""
    from cims.i18n import t
    from cims.org.models import Department
    from cims.security.accounts import InvalidAccount, create_account

    url = _url()
    _prepare(url)
    engine = create_engine(url)
    with Session(engine) as session:
        codes = department or []
        ids = dict(
            session.execute(
                select(Department.code, Department.id).where(Department.code.in_(codes))
            ).all()
        )
        unknown = sorted(set(codes) - set(ids))
        if unknown:
            typer.echo(f"unknown department(s): {', '.join(unknown)}", err=True)
            raise typer.Exit(code=1)
        try:
            user = create_account(
                session=session,
                username=username,
                display_name=name,
                password=password,
                roles=role,
                department_ids=[ids[c] for c in codes],
            )
        except InvalidAccount as exc:
            for problem in exc.problems:
                typer.echo(t(problem, "en"), err=True)
            raise typer.Exit(code=1) from None
        session.commit()
        typer.echo(f"created user {user.username} (id {user.id})")
    engine.dispose()


@import_app.command("codes")
def import_codes_command(
    file: Annotated[Path, typer.Argument(help="CSV: code,title_zh,title_en[,parent_code].")],
    system: Annotated[str, typer.Option(help="Code system, e.g. ICD-10.")] = "ICD-10",
) -> None:
    """Load a hospital's own code table (all rows or none); known codes are updated."""
    from cims.i18n import t
    from cims.records.codes import InvalidCodeFile, import_codes

    engine = create_engine(_url())
    try:
        with Session(engine) as session, session.begin():
            report = import_codes(session, file, code_system=system)
    except InvalidCodeFile as refusal:
        for line, problem in refusal.problems:
            typer.echo(f"line {line}: {t(problem, 'en')}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    typer.echo(f"imported {report.rows} {report.code_system} codes from {file.name}")


@import_app.command("synthea")
def import_synthea_command(
    folder: Annotated[Path, typer.Argument(help="Folder of a Synthea CSV export.")],
    as_user: Annotated[str, typer.Option("--as", help="Account running the import.")] = "admin",
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write rejected rows (CSV) here.")
    ] = None,
) -> None:
    """Import a Synthea CSV export (any recent layout): all rows or none; re-runs add nothing."""
    from cims.interop.cli_support import run_synthea_import

    run_synthea_import(_url(), folder, as_user=as_user, report_file=report_file)


@import_app.command("fhir")
def import_fhir_command(
    files: Annotated[list[Path], typer.Argument(help="FHIR R4 Bundle JSON file(s).")],
    as_user: Annotated[str, typer.Option("--as", help="Account running the import.")] = "admin",
) -> None:
    """Import FHIR R4 transaction Bundles (one patient each); re-imports add nothing."""
    from cims.interop.cli_support import run_fhir_import

    run_fhir_import(_url(), files, as_user=as_user)


@import_app.command("hl7")
def import_hl7_command(
    files: Annotated[list[Path], typer.Argument(help="Files of HL7 v2 ORU^R01 lab results.")],
    ack_dir: Annotated[
        Path | None, typer.Option("--ack-dir", help="Write <file>.ack here (default: stdout).")
    ] = None,
    as_user: Annotated[str, typer.Option("--as", help="Account running the import.")] = "admin",
) -> None:
    """Import lab results (HL7 ORU^R01) matched by MRN; exit 1 if any message was refused."""
    from cims.interop.hl7_drop import run_hl7_import

    run_hl7_import(_url(), files, as_user=as_user, ack_dir=ack_dir)


export_app = typer.Typer(help="Export data in standard formats.", no_args_is_help=True)
app.add_typer(export_app, name="export", help="Export data (FHIR R4 bundles).")


@export_app.command("fhir")
def export_fhir_command(
    patient: Annotated[
        str | None, typer.Option("--patient", help="MRN of one patient (default: all).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    as_user: Annotated[str, typer.Option("--as", help="Account running the export.")] = "analyst",
) -> None:
    """Export one patient as a FHIR R4 Bundle, or every patient as NDJSON (one per line)."""
    from cims.interop.cli_support import run_fhir_export

    run_fhir_export(_url(), patient, output, as_user=as_user)


@app.command("db-url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the configured database."""
    from cims.db import database_url

    typer.echo(database_url())
    if not get_settings().database_url:
        typer.echo(
            "(embedded server: it runs while a CIMS process holds it, e.g. make run)", err=True
        )


@app.command("demo-otp")
def demo_otp(username: str) -> None:
    """Print the current TOTP code of an enrolled account (demo and test use only)."""
    from cims.security.crypto import load_cipher
    from cims.security.mfa import totp_code
    from cims.security.models import User

    if get_settings().env == "production":
        typer.echo("demo-otp is disabled in production", err=True)
        raise typer.Exit(code=1)
    engine = create_engine(_url())
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == username.lower()))
        if user is None or user.totp_secret_enc is None:
            typer.echo(f"{username} has no TOTP enrolment", err=True)
            raise typer.Exit(code=1)
        secret = load_cipher(session).decrypt_text(
            user.totp_secret_enc, table="users", column="totp_secret", row_id=user.id
        )
    engine.dispose()
    typer.echo(totp_code(secret))


@app.command("rotate-keys")
def rotate_keys_command(
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted rotation instead of adding a key.")
    ] = False,
) -> None:
    """Make a new data-encryption key current and re-encrypt every cell (no downtime)."""
    from cims.security.keys import rotate_keys

    engine = create_engine(_url())
    try:
        report = rotate_keys(engine, resume=resume, progress=lambda m: typer.echo(m, err=True))
    finally:
        engine.dispose()
    total = sum(report.reencrypted.values())
    typer.echo(f"key version {report.new_version} is current; {total} cells re-encrypted")


def _system_actor(session: Session, username: str) -> Actor:
    """The named admin account as the acting user of a command-line task."""
    from cims.security.accounts import build_actor
    from cims.security.models import User

    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or not user.is_active:
        typer.echo(f"no active account {username}", err=True)
        raise typer.Exit(code=1)
    return build_actor(session, user)


@app.command("security-report")
def security_report_command(
    days: Annotated[int, typer.Option(min=1, help="Period: the last N days.")] = 90,
    as_user: Annotated[str, typer.Option("--as", help="Admin account running it.")] = "admin",
) -> None:
    """Failed sign-ins, lockouts, break-glass, privilege changes, risky accounts (JSON)."""
    import json

    from cims.base import utcnow
    from cims.security.reviews import security_report

    engine = create_engine(_url())
    with Session(engine) as session:
        actor = _system_actor(session, as_user)
        end = utcnow()
        report = security_report(
            session=session,
            actor=actor,
            start=end - dt.timedelta(days=days),
            end=end,
        )
        session.commit()
    engine.dispose()
    typer.echo(json.dumps(report.__dict__, default=str, ensure_ascii=False, indent=1))


@app.command("disable-dormant")
def disable_dormant_command(
    days: Annotated[int, typer.Option(min=1, help="Disable after N days without sign-in.")] = 90,
) -> None:
    """Disable accounts that have not signed in for N days (run daily)."""
    from cims.base import utcnow
    from cims.security.reviews import disable_dormant

    engine = create_engine(_url())
    with Session(engine) as session:
        names = disable_dormant(session, now=utcnow(), days=days)
        session.commit()
    engine.dispose()
    typer.echo(f"disabled {len(names)} dormant account(s){': ' if names else ''}{', '.join(names)}")


@app.command("rewrap-keys")
def rewrap_keys_command() -> None:
    """Re-wrap the data keys under a new master key read from CIMS_NEW_MASTER_KEY."""
    from pydantic import SecretStr

    from cims.config import Settings
    from cims.security.crypto import DecryptionError
    from cims.security.keys import rewrap_data_keys

    new_text = os.environ.get("CIMS_NEW_MASTER_KEY", "")
    probe = Settings(env="development", master_key=SecretStr(new_text) if new_text else None)
    if not new_text or len(probe.key_bytes("master_key")) < 32:
        typer.echo("set CIMS_NEW_MASTER_KEY to a new key of at least 32 bytes", err=True)
        raise typer.Exit(code=1)
    engine = create_engine(_url())
    try:
        with Session(engine) as session, session.begin():
            count = rewrap_data_keys(
                session,
                old_master=get_settings().key_bytes("master_key"),
                new_master=probe.key_bytes("master_key"),
            )
    except DecryptionError:
        typer.echo("the configured CIMS_MASTER_KEY does not open the data keys", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    typer.echo(f"{count} data key(s) re-wrapped; now configure the new key as CIMS_MASTER_KEY")


@app.command("run")
def run(
    seed_if_empty: Annotated[
        bool, typer.Option(help="Load the demo hospital when the database has no patients.")
    ] = True,
) -> None:
    """Migrate, load the demo hospital on first start, then serve the app."""
    settings = get_settings()
    url = _url()  # starts the embedded server and holds it while the app runs
    _prepare(url)
    if seed_if_empty and settings.env != "production" and _patient_count(url) == 0:
        typer.echo("first start: loading the demo hospital ...", err=True)
        seed_demo(patients=2000, seed=42, reset=False, today=None)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PROJECT_ROOT / "server.py"),  # app.py plus the payment-callback route
        "--server.port",
        str(settings.port),
        "--server.address",
        "127.0.0.1",
    ]
    typer.echo(f"CIMS on http://127.0.0.1:{settings.port}", err=True)
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(os.environ))

    def stop(signum: int, _frame: object) -> None:
        # Pass the stop on, so no orphaned server keeps the port after we exit.
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        code = server.wait()
    raise typer.Exit(code=code)
