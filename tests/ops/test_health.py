"""Health checks: each verdict from real state, and `cims health` exits 1 on a failure."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import PROJECT_ROOT
from cims.ops import scheduler
from cims.ops.backup import SUFFIX, manifest_path, verify_record_path
from cims.ops.health import health_report, overall
from cims.security.models import AuditEvent


@pytest.fixture
def health_db(fresh_database: Callable[[str], str]) -> Iterator[tuple[str, Engine]]:
    url = fresh_database("health")
    engine = create_engine(url)
    yield url, engine
    engine.dispose()


def _levels(engine: Engine, now: dt.datetime | None = None) -> dict[str, str]:
    return {check.name: check.level for check in health_report(engine, now=now)}


def test_a_fresh_installation_warns_about_backups_and_the_scheduler(
    health_db: tuple[str, Engine], tmp_path: Path
) -> None:
    _, engine = health_db
    levels = {c.name: c.level for c in health_report(engine, backups=tmp_path)}
    assert levels["database"] == levels["migrations"] == levels["disk_data"] == "ok"
    assert levels["backup"] == "warn" and levels["scheduler"] == "warn"
    scheduler.beat(engine)
    assert _levels(engine)["scheduler"] == "ok"
    assert _levels(engine, utcnow() + dt.timedelta(minutes=10))["scheduler"] == "warn"


def _backup_file(folder: Path, made: dt.datetime, verified: bool | None = None) -> None:
    """A finished backup as the backup module leaves it: file, manifest, verification."""
    path = folder / f"cims-{made:%Y%m%d-%H%M%S}{SUFFIX}"
    path.write_bytes(b"encrypted")
    manifest_path(path).write_text(json.dumps({"created_at": made.isoformat()}))
    if verified is not None:
        verify_record_path(path).write_text(json.dumps({"ok": verified}))


def test_an_old_or_unverified_backup_fails_and_a_recent_one_passes(
    health_db: tuple[str, Engine], tmp_path: Path
) -> None:
    _, engine = health_db
    now = utcnow()

    def level() -> str:
        checks = health_report(engine, now=now, backups=tmp_path)
        return {c.name: c.level for c in checks}["backup"]

    assert level() == "warn"  # none yet
    _backup_file(tmp_path, now - dt.timedelta(hours=30))
    assert level() == "fail"
    _backup_file(tmp_path, now - dt.timedelta(hours=2), verified=True)
    assert level() == "ok"
    _backup_file(tmp_path, now - dt.timedelta(hours=1), verified=False)
    assert level() == "fail"
    assert overall(health_report(engine, now=now, backups=tmp_path)) == "fail"


def test_audit_rows_left_unsealed_are_a_warning(health_db: tuple[str, Engine]) -> None:
    _, engine = health_db
    with Session(engine) as db, db.begin():
        db.execute(
            insert(AuditEvent).values(
                action="test.unsealed", occurred_at=utcnow() - dt.timedelta(minutes=10)
            )
        )
    assert _levels(engine)["audit_chain"] == "warn"


def test_an_unreachable_database_is_one_failing_check() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    checks = health_report(engine)
    assert [(c.name, c.level) for c in checks] == [("database", "fail")]
    engine.dispose()


def test_the_health_command_exits_non_zero_on_a_failure(
    health_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _ = health_db
    _backup_file(tmp_path, utcnow() - dt.timedelta(days=3))
    env = dict(os.environ, CIMS_DATABASE_URL=url, CIMS_BACKUP_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "cims", "health"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  backup" in done.stdout and "OK    migrations" in done.stdout
