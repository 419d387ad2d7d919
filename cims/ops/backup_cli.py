"""``cims backup ...``: create, verify, restore and list encrypted backups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from cims.clock import local_zone, to_local
from cims.config import get_settings
from cims.ops.backup_format import BackupError, backup_keys
from cims.ops.backup_store import backup_dir, list_backups, prune

backup_app = typer.Typer(help="Encrypted backups that prove they restore.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _private_key() -> Path:
    private = backup_keys(get_settings()).private_key
    if private is None or not private.exists():
        raise _fail("no private key: set CIMS_BACKUP_PRIVATE_KEY to the backup private key file")
    return private


def _audit(action: str, object_id: str, detail: dict[str, object], outcome: str) -> None:
    """Record a command-line backup action in the live database as the system."""
    from cims.db import database_url
    from cims.security import audit

    engine = create_engine(database_url())
    try:
        with Session(engine) as session, session.begin():
            audit.record(
                session, None, action, username="system", outcome=outcome,
                object_type="backup", object_id=object_id, detail=detail,
            )  # fmt: skip
    finally:
        engine.dispose()


@backup_app.command("create")
def create(
    target: Annotated[
        Path | None, typer.Option(help="Folder for the backup (default: CIMS_BACKUP_DIR).")
    ] = None,
) -> None:
    """Back up the configured database; the last line printed is the backup file's path."""
    from cims.db import database_url
    from cims.ops.backup import create_backup

    settings = get_settings()
    folder = target or backup_dir(settings)
    try:
        result = create_backup(
            database_url(),
            target_dir=folder,
            public_key_path=backup_keys(settings).public_key,
            progress=lambda fraction, step: typer.echo(f"{fraction:4.0%} {step}", err=True),
        )
    except BackupError as error:
        raise _fail(str(error)) from None
    removed = prune(folder, settings, local_zone())
    for path in removed:
        typer.echo(f"retention removed {path.name}", err=True)
    _audit("backup.create", result.path.name, {"bytes": result.size}, "success")
    typer.echo(f"{result.size / 1e6:.1f} MB in {result.seconds:.1f} s", err=True)
    typer.echo(str(result.path))


@backup_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The .cimsbak file.")],
    integrity_only: Annotated[
        bool, typer.Option(help="Check size and sha256 only (no private key, no restore).")
    ] = False,
    scratch: Annotated[
        str | None, typer.Option(help="Server URL for the scratch database (default: live).")
    ] = None,
) -> None:
    """Check the file against its manifest, then restore it into a scratch database and
    compare row counts and checksums; exit 1 on any failure."""
    from cims.ops.backup import verify_backup

    private = None if integrity_only else _private_key()
    report = verify_backup(file, private_key_path=private, scratch_url=scratch)
    for problem in report.problems:
        typer.echo(f"FAIL: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(code=1)
    drill = "restored and compared" if report.restored else "integrity checked"
    typer.echo(f"OK: {file.name} {drill} in {report.seconds:.1f} s")


@backup_app.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(help="The .cimsbak file.")],
    target: Annotated[
        str | None, typer.Option(help="Database URL to create and restore into.")
    ] = None,
    replace_live: Annotated[
        bool, typer.Option(help="Replace the live database (after a fresh backup of it).")
    ] = False,
) -> None:
    """Restore into a new database (default), into --target, or over the live database."""
    from cims.ops.backup_restore import restore_backup

    if target and replace_live:
        raise _fail("use either --target or --replace-live")
    settings = get_settings()
    try:
        result = restore_backup(
            file,
            private_key_path=_private_key(),
            target_url=target,
            replace_live=replace_live,
            public_key_path=backup_keys(settings).public_key,
            backup_dir=backup_dir(settings),
        )
    except BackupError as error:
        raise _fail(str(error)) from None
    if result.safety_backup is not None:
        typer.echo(f"fresh backup of the replaced database: {result.safety_backup}", err=True)
    if result.replaced_as is not None:
        typer.echo(f"the previous live database is kept as {result.replaced_as}", err=True)
    typer.echo(f"restored into database {result.database}")


@backup_app.command("list")
def list_command(
    target: Annotated[Path | None, typer.Option(help="Backup folder.")] = None,
) -> None:
    """Every backup in the folder, newest first, with its last verification."""
    folder = target or backup_dir(get_settings())
    entries = list_backups(folder)
    if not entries:
        typer.echo(f"no backups in {folder}")
    for entry in entries:
        check = entry.verification
        status = "never verified"
        if check is not None:
            status = ("verified" if check.get("ok") else "FAILED") + f" {check.get('checked_at')}"
        created = to_local(entry.created_at)
        typer.echo(f"{entry.name}  {created:%Y-%m-%d %H:%M}  {entry.size / 1e6:8.1f} MB  {status}")
