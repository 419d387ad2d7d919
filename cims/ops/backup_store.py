"""The backup folder: what is in it, what each file's last verification said, and retention."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cims.config import Settings
from cims.ops.backup import MANIFEST_SUFFIX, SUFFIX, VERIFY_SUFFIX, manifest_path
from cims.ops.backup import verify_record_path as _verify_path


@dataclass(frozen=True)
class BackupEntry:
    """One finished backup file with its manifest facts and latest verification."""

    path: Path
    created_at: dt.datetime
    size: int
    verification: dict[str, Any] | None

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name


def backup_dir(settings: Settings) -> Path:
    """The configured backup folder (``<data_dir>/backups`` by default)."""
    return settings.backup_dir or settings.data_dir / "backups"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_backups(folder: Path) -> list[BackupEntry]:
    """Every finished backup in ``folder``, newest first (partial files are never listed)."""
    entries = []
    for path in folder.glob(f"*{SUFFIX}") if folder.exists() else ():
        manifest = _read_json(manifest_path(path)) or {}
        try:
            created = dt.datetime.fromisoformat(str(manifest["created_at"]))
        except (KeyError, ValueError):
            created = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        entries.append(
            BackupEntry(path, created, path.stat().st_size, _read_json(_verify_path(path)))
        )
    return sorted(entries, key=lambda entry: entry.created_at, reverse=True)


def last_verification(entries: Iterable[BackupEntry]) -> tuple[BackupEntry, dict[str, Any]] | None:
    """The most recently verified backup and its verification record."""
    checked = [(e, e.verification) for e in entries if e.verification is not None]
    if not checked:
        return None
    return max(checked, key=lambda pair: str(pair[1].get("checked_at", "")))


def backups_to_keep(
    times: Iterable[dt.datetime], *, daily: int, weekly: int, monthly: int, zone: ZoneInfo
) -> set[dt.datetime]:
    """Grandfather-father-son retention: which backup times survive pruning.

    The newest backup of each of the ``daily`` most recent local days that have one, of
    each of the ``weekly`` most recent ISO weeks, and of each of the ``monthly`` most
    recent months. The newest backup overall is always kept.
    """
    ordered = sorted(times, reverse=True)
    keep: set[dt.datetime] = set(ordered[:1])
    rules = (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    )
    for count, bucket_of in rules:
        seen: list[object] = []
        for moment in ordered:
            bucket = bucket_of(moment.astimezone(zone))
            if bucket in seen:
                continue
            if len(seen) == count:
                break
            seen.append(bucket)
            keep.add(moment)
    return keep


def prune(folder: Path, settings: Settings, zone: ZoneInfo) -> list[Path]:
    """Delete backups (and their manifest and verification) that retention does not keep."""
    entries = list_backups(folder)
    keep = backups_to_keep(
        (e.created_at for e in entries),
        daily=settings.backup_keep_daily,
        weekly=settings.backup_keep_weekly,
        monthly=settings.backup_keep_monthly,
        zone=zone,
    )
    removed = []
    for entry in entries:
        if entry.created_at in keep:
            continue
        for extra in (MANIFEST_SUFFIX, VERIFY_SUFFIX):
            entry.path.with_name(entry.name + extra).unlink(missing_ok=True)
        entry.path.unlink(missing_ok=True)
        removed.append(entry.path)
    # Leftovers of killed backups are never complete; clear them after a day.
    cutoff = dt.datetime.now(dt.UTC).timestamp() - 86400
    for partial in folder.glob("*.partial") if folder.exists() else ():
        if partial.stat().st_mtime < cutoff:
            partial.unlink(missing_ok=True)
    return removed
