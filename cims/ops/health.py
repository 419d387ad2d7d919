"""Is this installation healthy? Database, schema, disk, backups, audit chain, scheduler.

Each check says ok, warn or fail with a message key and its parameters, so the admin page
shows it translated and ``cims health`` prints it; ``cims health`` exits 1 on any failure.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from cims import migrate
from cims.base import utcnow
from cims.config import get_settings
from cims.ops.backup_store import backup_dir, list_backups
from cims.ops.scheduler import HEARTBEAT
from cims.security.models import AuditEvent, AuditSeal, SystemFlag

Level = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES: Final = 2 * 1024**3  # below this a backup or a busy day can fill the disk
BACKUP_MAX_AGE: Final = dt.timedelta(hours=26)  # daily backups, with an hour or two of slack
UNSEALED_WARN: Final = dt.timedelta(minutes=2)
HEARTBEAT_MAX_AGE: Final = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    """One health check's verdict."""

    name: str  # database, migrations, disk_data, disk_backups, backup, audit_chain, scheduler
    level: Level
    message: str  # i18n key under health.*
    params: dict[str, Any] = field(default_factory=dict)


def _database(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            version = str(conn.scalar(text("SHOW server_version")))
    except Exception as error:  # unreachable is a verdict, not a crash
        return Check("database", "fail", "health.database_down", {"error": type(error).__name__})
    major = int(version.split(".")[0])
    level: Level = "ok" if major >= 15 else "fail"
    return Check("database", level, "health.database_ok", {"version": version})


def _migrations(engine: Engine) -> Check:
    current = migrate.current_revision(engine.url.render_as_string(hide_password=False))
    head = migrate.head_revision()
    if current == head:
        return Check("migrations", "ok", "health.migrations_ok", {"revision": head})
    pending = {"current": current, "head": head}
    return Check("migrations", "fail", "health.migrations_pending", pending)


def _disk(name: str, folder: Path | None) -> Check | None:
    if folder is None:
        return None
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_gb = round(usage.free / 1024**3, 1)
    level: Level = "ok" if usage.free >= MIN_FREE_BYTES else "fail"
    return Check(name, level, "health.disk", {"path": str(folder), "free_gb": free_gb})


def _backup(folder: Path, now: dt.datetime) -> Check:
    """The newest finished backup file (its manifest's time) and whether it verified."""
    entries = list_backups(folder)
    if not entries:
        return Check("backup", "warn", "health.backup_none")
    newest = entries[0]
    hours = round((now - newest.created_at).total_seconds() / 3600, 1)
    if newest.verification is not None and not newest.verification.get("ok", False):
        return Check("backup", "fail", "health.backup_verify_failed", {"hours": hours})
    level: Level = "ok" if now - newest.created_at <= BACKUP_MAX_AGE else "fail"
    return Check("backup", level, "health.backup_age", {"hours": hours})


def _audit_chain(session: Session, now: dt.datetime) -> Check:
    sealed_to = session.scalar(select(func.max(AuditSeal.audit_id))) or 0
    oldest_unsealed = session.scalar(
        select(func.min(AuditEvent.occurred_at)).where(AuditEvent.id > sealed_to)
    )
    if oldest_unsealed is None or now - oldest_unsealed < UNSEALED_WARN:
        return Check("audit_chain", "ok", "health.audit_sealed", {"sealed": sealed_to})
    minutes = round((now - oldest_unsealed).total_seconds() / 60, 1)
    return Check("audit_chain", "warn", "health.audit_lagging", {"minutes": minutes})


def _scheduler(session: Session, now: dt.datetime) -> Check:
    flag = session.get(SystemFlag, HEARTBEAT)
    if flag is None:
        return Check("scheduler", "warn", "health.scheduler_never")
    seconds = round((now - flag.updated_at).total_seconds())
    level: Level = "ok" if now - flag.updated_at <= HEARTBEAT_MAX_AGE else "warn"
    return Check("scheduler", level, "health.scheduler_beat", {"seconds": seconds})


def health_report(
    engine: Engine, *, now: dt.datetime | None = None, backups: Path | None = None
) -> list[Check]:
    """Every check, in a fixed order; later checks are skipped if the database is down."""
    now = now or utcnow()
    settings = get_settings()
    backups = backups or backup_dir(settings)
    checks = [_database(engine)]
    if checks[0].level == "fail":
        return checks
    checks.append(_migrations(engine))
    for name, folder in (("disk_data", settings.data_dir), ("disk_backups", backups)):
        disk = _disk(name, folder)
        if disk is not None:
            checks.append(disk)
    with Session(engine) as session:
        checks.append(_backup(backups, now))
        checks += [_audit_chain(session, now), _scheduler(session, now)]
    return checks


def overall(checks: list[Check]) -> Level:
    """The worst level among the checks."""
    levels = {check.level for check in checks}
    return "fail" if "fail" in levels else "warn" if "warn" in levels else "ok"
