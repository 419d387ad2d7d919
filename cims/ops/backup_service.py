"""Backups as audited services (the admin page) and as scheduled jobs (the scheduler)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from cims.clock import local_zone
from cims.config import get_settings
from cims.ops.backup import (
    BackupResult,
    Progress,
    VerifyReport,
    create_backup,
    verify_backup,
)
from cims.ops.backup_format import BackupError, backup_keys
from cims.ops.backup_store import BackupEntry, backup_dir, last_verification, list_backups, prune
from cims.security import audit
from cims.security.rbac import Actor, Privilege, requires
from cims.text_guard import InvalidText
from cims.text_limits import MAX_FILE_NAME, TOO_LONG_KEY, too_long

log = logging.getLogger("cims.backup")


class BackupVerificationFailed(BackupError):
    """The scheduled verification found a problem (the job is marked failed)."""


@dataclass(frozen=True)
class BackupOverview:
    """What the admin page shows: every backup, the newest, the latest verification."""

    folder: Path
    entries: list[BackupEntry]
    last_verified: tuple[BackupEntry, dict[str, Any]] | None
    private_key_configured: bool

    @property
    def latest(self) -> BackupEntry | None:
        """The newest backup, if any."""
        return self.entries[0] if self.entries else None


def _session_url(session: Session) -> URL:
    bind = session.get_bind()
    return bind.engine.url if isinstance(bind, Connection) else bind.url


def _folder(target_dir: Path | None) -> Path:
    return target_dir or backup_dir(get_settings())


def _private_key() -> Path | None:
    private = backup_keys(get_settings()).private_key
    return private if private is not None and private.exists() else None


@requires(Privilege.MANAGE_BACKUPS)
def backup_overview(
    *, session: Session, actor: Actor, target_dir: Path | None = None
) -> BackupOverview:
    """The backups in the target folder with their latest verification."""
    folder = _folder(target_dir)
    entries = list_backups(folder)
    audit.record(session, actor, "backup.view", detail={"backups": len(entries)})
    return BackupOverview(folder, entries, last_verification(entries), _private_key() is not None)


def _run_backup(
    session: Session, actor: Actor | None, target_dir: Path | None, progress: Progress | None
) -> BackupResult:
    settings = get_settings()
    folder = _folder(target_dir)
    try:
        result = create_backup(
            _session_url(session),
            target_dir=folder,
            public_key_path=backup_keys(settings).public_key,
            progress=progress,
        )
    except BackupError as failed:
        # The caller's transaction rolls back: the failure is recorded in a transaction of its
        # own, so a backup that could not be made is still in the audit trail.
        audit.record_separately(
            session.get_bind(), actor, "backup.create", username=None if actor else "system",
            outcome="failure", object_type="backup", object_id=folder.name,
            detail={"error": type(failed).__name__},
        )  # fmt: skip
        raise
    removed = prune(folder, settings, local_zone())
    audit.record(
        session, actor, "backup.create", username=None if actor else "system",
        object_type="backup", object_id=result.path.name,
        detail={"bytes": result.size, "seconds": round(result.seconds, 1), "pruned": len(removed)},
    )  # fmt: skip
    return result


@requires(Privilege.MANAGE_BACKUPS)
def back_up_now(
    *,
    session: Session,
    actor: Actor,
    progress: Progress | None = None,
    target_dir: Path | None = None,
) -> BackupResult:
    """Take a backup of this database now (then apply retention)."""
    return _run_backup(session, actor, target_dir, progress)


def _run_verify(session: Session, actor: Actor | None, path: Path, scratch: URL) -> VerifyReport:
    try:
        report = verify_backup(path, private_key_path=_private_key(), scratch_url=scratch)
    except OSError as error:  # e.g. a name longer than the file system allows
        report = VerifyReport(path=path, problems=[f"{path.name[:80]}: {error.strerror}"])
    audit.record(
        session, actor, "backup.verify", username=None if actor else "system",
        outcome="success" if report.ok else "failure",
        object_type="backup", object_id=path.name,
        detail={"restored": report.restored, "problems": len(report.problems)},
    )  # fmt: skip
    if not report.ok:
        log.error("backup %s failed verification: %s", path.name, report.problems)
    return report


@requires(Privilege.MANAGE_BACKUPS)
def verify_backup_file(
    *, session: Session, actor: Actor, name: str, target_dir: Path | None = None
) -> VerifyReport:
    """Verify one backup of the folder (a full restore drill when the private key is here)."""
    if too_long(name, MAX_FILE_NAME):
        raise InvalidText([TOO_LONG_KEY])
    path = _folder(target_dir) / Path(name).name  # a bare file name: never leave the folder
    return _run_verify(session, actor, path, _session_url(session))


def _skipped_in_tests() -> bool:
    """Test runs back up only into a folder they chose (never the project's var/backups)."""
    settings = get_settings()
    return settings.env == "test" and settings.backup_dir is None


def _alert(session: Session, event_key: str, message_key: str, params: dict[str, Any]) -> None:
    """Tell every administrator through their inbox (kept even though the job rolls back)."""
    from cims.engagement.reminders import alert_admins

    alert_admins(
        session.get_bind(),
        rule_code="backup_alert",
        event_key=event_key,
        message_key=message_key,
        params=params,
    )


def scheduled_backup(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Scheduler job: the daily backup, then retention."""
    if _skipped_in_tests():
        return {"skipped": "test run without CIMS_BACKUP_DIR"}
    result = _run_backup(session, None, None, None)
    return {"file": result.path.name, "bytes": result.size, "seconds": round(result.seconds, 1)}


def scheduled_verify(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Scheduler job: verify the newest backup (a full restore drill with the private key)."""
    if _skipped_in_tests():
        return {"skipped": "test run without CIMS_BACKUP_DIR"}
    entries = list_backups(_folder(None))
    if not entries:
        _alert(session, f"none:{now:%Y-%m-%d}", "reminder.backup_missing", {})
        raise BackupVerificationFailed("there is no backup to verify")
    report = _run_verify(session, None, entries[0].path, _session_url(session))
    if not report.ok:
        _alert(
            session,
            f"verify:{entries[0].name}",
            "reminder.backup_failed",
            {"file": entries[0].name, "problems": len(report.problems)},
        )
        # The job's transaction rolls back when it fails: keep the failure on record.
        audit.record_separately(
            session.get_bind(), None, "backup.verify", username="system", outcome="failure",
            object_type="backup", object_id=entries[0].name,
            detail={"restored": report.restored, "problems": len(report.problems)},
        )  # fmt: skip
        raise BackupVerificationFailed("; ".join(report.problems))
    return {"file": entries[0].name, "restored": report.restored}
