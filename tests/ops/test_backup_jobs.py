"""Backups from the scheduler and the admin page: daily backup, daily verification, alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from test_pages import _signed_in_page

import factories
from cims.config import get_settings
from cims.engagement.models import Reminder
from cims.governance.models import JobRun
from cims.ops import scheduler
from cims.ops.backup_format import generate_key_pair
from cims.ops.backup_store import list_backups
from cims.security.bootstrap import ensure_roles_and_privileges
from cims.security.models import AuditEvent

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAGE = "pages/admin_backups.py"
BACKUP_JOBS = tuple(j for j in scheduler.JOBS if j.name in ("backup", "verify_latest_backup"))


@pytest.fixture(scope="module")
def backup_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Backups into a folder of the test's own, under a key pair of its own."""
    folder = tmp_path_factory.mktemp("backup_env")
    public, private = folder / "public.pem", folder / "private.pem"
    generate_key_pair(public, private, bits=2048)
    patch = pytest.MonkeyPatch()
    patch.setenv("CIMS_BACKUP_DIR", str(folder / "backups"))
    patch.setenv("CIMS_BACKUP_PUBLIC_KEY", str(public))
    patch.setenv("CIMS_BACKUP_PRIVATE_KEY", str(private))
    get_settings.cache_clear()
    yield folder / "backups"
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture
def jobs_engine(fresh_database: Callable[[str], str], backup_env: Path) -> Iterator[Engine]:
    """A small database of its own: the scheduler commits, as in the app."""
    engine = create_engine(fresh_database("backup_jobs"))
    with Session(engine) as session, session.begin():
        ensure_roles_and_privileges(session)
        for _ in range(5):
            factories.patient(session)
    yield engine
    engine.dispose()


def _local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI).astimezone(dt.UTC)  # type: ignore[misc]


def test_the_backup_slot_follows_its_own_setting(backup_env: Path) -> None:
    assert get_settings().backup_at == dt.time(2, 0)
    slot = scheduler.current_slot(_local(2026, 11, 26, 2, 30), None, "backup_at")
    assert slot == _local(2026, 11, 26, 2, 0)
    assert scheduler.current_slot(_local(2026, 11, 26, 2, 30)) == _local(2026, 11, 25, 3, 0)


def test_daily_backup_and_verification_run_and_a_failure_is_on_record(
    jobs_engine: Engine, backup_env: Path
) -> None:
    now = _local(2026, 11, 26, 4, 0)
    assert scheduler.run_due_jobs(jobs_engine, now=now, jobs=BACKUP_JOBS) == [
        "backup",
        "verify_latest_backup",
    ]
    [entry] = list_backups(backup_env)
    assert entry.verification is not None
    assert entry.verification["ok"] and entry.verification["restored"]
    with Session(jobs_engine) as session:
        runs = dict(session.execute(select(JobRun.job, JobRun.status)).all())
        assert runs == {"backup": "succeeded", "verify_latest_backup": "succeeded"}
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert {"backup.create", "backup.verify"} <= set(actions)

    # The next night's backup is damaged before its verification: the job fails, on record,
    # and every administrator finds it in their inbox.
    with Session(jobs_engine) as session, session.begin():
        admin_id = factories.user(session, "admin", username="night_admin").id
    later = now + dt.timedelta(days=1)
    scheduler.run_due_jobs(jobs_engine, now=later, jobs=BACKUP_JOBS[:1])
    newest = list_backups(backup_env)[0].path
    newest.write_bytes(newest.read_bytes()[:-10])
    assert scheduler.run_due_jobs(jobs_engine, now=later, jobs=BACKUP_JOBS) == [
        "verify_latest_backup"
    ]
    assert list_backups(backup_env)[0].verification["ok"] is False  # type: ignore[index]
    with Session(jobs_engine) as session:
        failed = session.scalar(
            select(JobRun.status)
            .where(JobRun.job == "verify_latest_backup")
            .order_by(JobRun.scheduled_for.desc())
        )
        assert failed == "failed"
        outcome = session.scalar(
            select(AuditEvent.outcome)
            .where(AuditEvent.action == "backup.verify")
            .order_by(AuditEvent.id.desc())
        )
        assert outcome == "failure"
        alerts = session.scalars(
            select(Reminder.message_key).where(Reminder.recipient_user_id == admin_id)
        ).all()
        assert alerts == ["reminder.backup_failed"]


@pytest.fixture(scope="module")
def page_url(
    seeded_app_database: Callable[..., AbstractContextManager[str]], backup_env: Path
) -> Iterator[tuple[str, Path]]:
    """A small seeded hospital the page under test backs up, and the page's backup folder."""
    folder = backup_env.parent / "page_backups"
    patch = pytest.MonkeyPatch()
    patch.setenv("CIMS_BACKUP_DIR", str(folder))
    with seeded_app_database("backup_page", patients=30, seed=3) as url:
        yield url, folder
    patch.undo()


def _click(at: AppTest, label: str, index: int = 0) -> AppTest:
    buttons = [b for b in at.button if b.label == label]
    return buttons[index].click().run()


def test_admin_backs_up_now_and_verifies_from_the_page(page_url: tuple[str, Path]) -> None:
    url, folder = page_url
    at = _signed_in_page(url, "admin", PAGE)
    assert not at.exception, at.exception
    assert at.title[0].value == "Backups and restore"
    at = _click(at, "Back up now")
    assert not at.exception, at.exception
    assert next(s.value for s in at.success).startswith("Backup finished: cims-")
    names = [e.name for e in list_backups(folder)]
    at = _click(at, "Verify")
    assert not at.exception, at.exception
    assert any("row counts and checksums match" in s.value for s in at.success)

    # A damaged file: verification fails and the page says so in red.
    newest = folder / names[0]
    newest.write_bytes(newest.read_bytes()[:-5])
    at = _click(at, "Verify")
    assert any("failed verification" in e.value for e in at.error)
    at.run()
    assert any("failed" in e.value for e in at.error)
    assert any(":red[" in m.value for m in at.markdown)


def test_page_refuses_a_non_admin(page_url: tuple[str, Path]) -> None:
    at = _signed_in_page(page_url[0], "doctor", PAGE)
    assert "Your role is not allowed to do this." in [e.value for e in at.error]
    assert not [b for b in at.button if b.label == "Back up now"]


def test_a_test_run_without_a_backup_folder_never_backs_up_into_the_project(
    backup_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cims.ops.backup_service import scheduled_backup, scheduled_verify

    monkeypatch.delenv("CIMS_BACKUP_DIR")
    get_settings.cache_clear()
    try:
        assert get_settings().env == "test"
        now = dt.datetime.now(dt.UTC)
        assert "skipped" in scheduled_backup(None, now)  # type: ignore[arg-type]
        assert "skipped" in scheduled_verify(None, now)  # type: ignore[arg-type]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
