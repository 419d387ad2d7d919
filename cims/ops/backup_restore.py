"""Restoring a backup: into a new database, a given one, or over the live database.

The data goes into ``<name>_restoring`` first and is renamed only once pg_restore has
finished, the fingerprints match the backup, the restored audit head is anchored and the
restore is audited; a killed restore never leaves a half-restored database under the final
name. Operations guide: docs/operations-backup.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from cims.ops import backup_pg as pg
from cims.ops.backup import check_integrity, configured_url, create_backup, restore_checked
from cims.ops.backup_format import BackupError


@dataclass(frozen=True)
class RestoreResult:
    """Where a backup was restored, and the safety backup taken before a live replace."""

    database: str
    url: str
    safety_backup: Path | None = None
    replaced_as: str | None = None


def restore_backup(
    path: Path,
    *,
    private_key_path: Path,
    target_url: str | URL | None = None,
    replace_live: bool = False,
    live_url: str | URL | None = None,
    public_key_path: Path | None = None,
    backup_dir: Path | None = None,
) -> RestoreResult:
    """Restore into a new database (default), ``target_url``, or over the live one.

    The data goes into ``<name>_restoring`` first and is renamed only once pg_restore has
    finished and the fingerprints match the backup, so a killed restore never leaves a
    half-restored database under the final name. ``replace_live`` first takes a fresh
    backup of the live database, then keeps the old database as ``<name>_replaced_<time>``.
    """
    manifest, problems = check_integrity(path)
    if problems:
        raise BackupError("; ".join(problems))
    live = pg.as_url(live_url) if live_url is not None else configured_url()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    if replace_live:
        target = live
    elif target_url is not None:
        target = pg.as_url(target_url)
    else:
        target = live.set(database=f"cims_restore_{stamp}")
    final = str(target.database)
    if not replace_live and pg.database_exists(target, final):
        raise BackupError(f"database {final} already exists: choose another --target")
    staging = f"{final[:50]}_restoring"
    safety = None
    if replace_live:
        if public_key_path is None or backup_dir is None:
            raise BackupError("replacing the live database needs a fresh backup first")
        safety = create_backup(live, target_dir=backup_dir, public_key_path=public_key_path).path
    pg.drop_database(target, staging)  # left by a restore killed earlier
    pg.create_empty_database(target, staging)
    try:
        staged = target.set(database=staging)
        _, differences = restore_checked(path, staged, private_key_path)
        if differences:
            raise BackupError("restored data differs from the backup: " + "; ".join(differences))
        _after_restore(staged, target, path, manifest or {})
    except BaseException:
        pg.drop_database(target, staging)
        raise
    replaced_as = None
    if replace_live:
        replaced_as = f"{final[:40]}_replaced_{stamp}"
        pg.rename_database(target, final, replaced_as, force=True)
    pg.rename_database(target, staging, final)
    return RestoreResult(final, pg.url_text(target), safety, replaced_as)


def _after_restore(staging: URL, final: URL, path: Path, manifest: dict[str, Any]) -> None:
    """Anchor the restored audit head and audit the restore, before the rename.

    The restore anchor goes to the final database's anchor folder (it explains anchors the
    restore made obsolete) and is written before any sealer can reach the data under its
    final name; the audit row arrives with the data.
    """
    from sqlalchemy.orm import Session

    from cims.security import audit
    from cims.security.audit_chain import RESTORE, anchor_head, default_anchor_dir

    engine = create_engine(pg.url_text(staging))
    final_engine = create_engine(pg.url_text(final))
    try:
        anchor_head(engine, default_anchor_dir(final_engine), RESTORE)
        with Session(engine) as session, session.begin():
            audit.record(
                session, None, "backup.restore", username="system",
                object_type="backup", object_id=path.name,
                detail={"backup_created_at": manifest.get("created_at")},
            )  # fmt: skip
    finally:
        engine.dispose()
        final_engine.dispose()
