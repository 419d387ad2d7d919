"""Health checks: each verdict from real state, and `cims health` exits 1 on a failure."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.orm import Session

from cims.base import utcnow
from cims.config import PROJECT_ROOT
from cims.governance.models import Backup
from cims.ops import scheduler
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
    health_db: tuple[str, Engine],
) -> None:
    _, engine = health_db
    levels = _levels(engine)
    assert levels["database"] == levels["migrations"] == levels["disk_data"] == "ok"
    assert levels["backup"] == "warn" and levels["scheduler"] == "warn"
    scheduler.beat(engine)
    assert _levels(engine)["scheduler"] == "ok"
    assert _levels(engine, utcnow() + dt.timedelta(minutes=10))["scheduler"] == "warn"


def test_an_old_or_unverified_backup_fails_and_a_recent_one_passes(
    health_db: tuple[str, Engine],
) -> None:
    _, engine = health_db
    now = utcnow()
    with Session(engine) as db, db.begin():
        db.add(Backup(status="succeeded", finished_at=now - dt.timedelta(hours=30)))
    assert _levels(engine, now)["backup"] == "fail"
    with Session(engine) as db, db.begin():
        db.add(Backup(status="succeeded", finished_at=now - dt.timedelta(hours=2)))
    checks = health_report(engine, now=now)
    assert {c.name: c.level for c in checks}["backup"] == "ok"
    with Session(engine) as db, db.begin():
        db.add(
            Backup(
                status="succeeded", finished_at=now - dt.timedelta(hours=1), verify_status="failed"
            )
        )
    assert _levels(engine, now)["backup"] == "fail"
    assert overall(health_report(engine, now=now)) == "fail"


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


def test_the_health_command_exits_non_zero_on_a_failure(health_db: tuple[str, Engine]) -> None:
    url, engine = health_db
    with Session(engine) as db, db.begin():
        db.add(Backup(status="succeeded", finished_at=utcnow() - dt.timedelta(days=3)))
    env = dict(os.environ, CIMS_DATABASE_URL=url)
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
